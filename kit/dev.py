"""./podium dev: the app alone on 127.0.0.1 against a throwaway PostgreSQL and Redis.

Mail goes to a local SMTP sink (aiosmtpd) that writes every message into a Maildir, so the
whole sign-up flow (confirmation link, password reset) works without a lab; tests and people
read the messages there. Everything is removed on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

from kit import appservices, host
from kit.ansible import VENV_BIN
from kit.errors import PodiumError
from kit.paths import REPO


def _spawn(args: list[str], env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, start_new_session=True)


def run(port: int, mode: str, registration: str) -> int:
    host.check_root()
    host.ensure_packages(appservices.PACKAGES, lambda text: print(f"==> {text}", file=sys.stderr))
    python = str(VENV_BIN / "python")
    services = appservices.AppServices().start()
    procs: list[subprocess.Popen] = []
    try:
        maildir = services.root / "mail"
        smtp_port = appservices.free_port()
        env = {**os.environ,
               "PODIUM_ENV_FILE": "/dev/null",
               "PODIUM_DATABASE_URL": services.database_url,
               "PODIUM_DATABASE_PGBOUNCER": "false",
               "PODIUM_REDIS_URL": services.redis_url,
               "PODIUM_SECRET_KEY": secrets.token_urlsafe(32),
               "PODIUM_SMTP_HOST": "127.0.0.1", "PODIUM_SMTP_PORT": str(smtp_port),
               "PODIUM_SMTP_STARTTLS": "false",
               "PODIUM_BIND_HOST": "127.0.0.1", "PODIUM_BIND_PORT": str(port),
               "PODIUM_MODE": mode, "PODIUM_REGISTRATION_MODE": registration}
        log = (services.root / "dev.log").open("ab")
        procs.append(_spawn([python, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
                             "-c", "aiosmtpd.handlers.Mailbox", str(maildir)], env, log))
        migrate = subprocess.run([python, "-m", "podium_app", "migrate"], env=env,
                                 capture_output=True, text=True)
        if migrate.returncode != 0:
            raise PodiumError("podium-app migrate failed on the throwaway database",
                              detail=migrate.stdout + migrate.stderr)
        owner = subprocess.run([python, "-m", "podium_app", "create-user", "owner",
                                "owner@podium.test", "--role", "owner", "--publisher"],
                               env=env, capture_output=True, text=True)
        procs.append(_spawn([python, "-m", "podium_app", "worker"], env, log))
        procs.append(_spawn([python, "-m", "podium_app", "serve"], env, log))
        print(f"Podium app:   http://127.0.0.1:{port}/  (mode {mode}, registration "
              f"{registration})\n"
              f"owner:        {owner.stdout.strip().replace(chr(10), ', ')}\n"
              f"mail (Maildir): {maildir}/new\n"
              f"PostgreSQL:   {services.database_url}\nRedis:        {services.redis_url}\n"
              f"log:          {services.root / 'dev.log'}\nCtrl-C stops everything.",
              flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        raise PodiumError("a dev process exited", detail=(services.root / "dev.log").read_text(
            errors="replace")[-3000:])
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        services.stop()
