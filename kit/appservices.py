"""Throwaway PostgreSQL, Redis and mail sink on this host, for the app tier and ./podium dev.

Each lives in its own temporary directory, listens on 127.0.0.1 on a free port (PostgreSQL
also on a unix socket in that directory), and is removed when stopped. The system's own
PostgreSQL and Redis services are never touched. PostgreSQL runs as the `postgres` user
(initdb refuses root) with durability off: this data is meant to be thrown away.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kit.errors import PodiumError

# chromium: the web front's browser tests (tests/app/test_web_browser.py) drive Debian's build.
# nginx-core: the WebDAV origin the media tests write to (started by the test on loopback);
# ffmpeg: ffprobe/ffmpeg for video uploads (the app hosts need it too).
PACKAGES = ["postgresql", "redis-server", "chromium", "nginx-core", "ffmpeg"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise PodiumError("PostgreSQL server binaries were not found in /usr/lib/postgresql",
                          "apt-get install postgresql (./podium test installs it)")
    return versions[-1].parent


def _wait_port(port: int, what: str, proc: subprocess.Popen, log: Path, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PodiumError(f"{what} exited during start (status {proc.returncode})",
                              detail=log.read_text(errors="replace")[-2000:])
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise PodiumError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s",
                      detail=log.read_text(errors="replace")[-2000:])


@dataclass
class AppServices:
    """Start with start(), stop with stop(); or use as a context manager."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="podium-app-")))
    pg_port: int = 0
    redis_port: int = 0
    _procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/podium"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> AppServices:
        try:
            self._start_postgres()
            self._start_redis()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_postgres(self) -> None:
        bindir = _pg_bin()
        data = self.root / "pg"
        data.mkdir()
        shutil.chown(self.root, "postgres")
        shutil.chown(data, "postgres")
        log = self.root / "postgres.log"
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, user="postgres", stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        self.pg_port = free_port()
        with log.open("wb") as out:
            shutil.chown(log, "postgres")
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(self.pg_port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                user="postgres", stdout=out, stderr=subprocess.STDOUT)
        self._procs.append(proc)
        _wait_port(self.pg_port, "PostgreSQL", proc, log)
        for _ in range(50):
            done = subprocess.run([str(bindir / "createdb"), "-h", str(self.root), "-p",
                                   str(self.pg_port), "-U", "postgres", "podium"],
                                  user="postgres", capture_output=True, text=True)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise PodiumError("createdb podium failed on the throwaway PostgreSQL",
                          detail=done.stderr)

    def _start_redis(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(server).exists():
            raise PodiumError("redis-server was not found",
                              "apt-get install redis-server (./podium test installs it)")
        self.redis_port = free_port()
        log = self.root / "redis.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [server, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.root),
                 "--daemonize", "no"], stdout=out, stderr=subprocess.STDOUT)
        self._procs.append(proc)
        _wait_port(self.redis_port, "redis-server", proc, log)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for clients).
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> AppServices:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
