"""The pieces both drills share: checks made before anything is touched, commands on the
stack's hosts over the lab's SSH, a writer that posts through the proxy, the timeline and the
Markdown report (docs/drills/).

Drills are step-by-step operations with timing, not convergence: they run here, over the
same SSH key and inventory names Ansible uses, and hand every configuration step to Ansible
(decision 0111).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import io
import itertools
import json
import re
import secrets
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from invoke.exceptions import CommandTimedOut
from paramiko.ssh_exception import SSHException

from kit import reach, ssh
from kit.console import Progress, fmt_seconds
from kit.errors import PodiumError
from kit.paths import REPO, StackPaths, shown, stack_file
from kit.stack import Host, Stack, role_ports

REPORTS_DIR = REPO / "docs" / "drills"
APP_CLI = ("sudo -u podium-app env PODIUM_ENV_FILE=/etc/podium/app.env "
           "/opt/podium/app/current/venv/bin/podium-app")
# The postgres role's cluster (Debian 13: PostgreSQL 17) and the media role's origin folder.
PG_CLUSTER = "17-main"
PG_DATA = "/var/lib/postgresql/17/main"
# Debian's per-cluster boot switch: auto (start at boot), manual, disabled.
PG_START_CONF = "/etc/postgresql/17/main/start.conf"
MEDIA_ROOT = "/srv/media"
STANZA = "podium"
# Where the backup role keeps the age-encrypted copies of the stack's secrets folder.
SECRETS_COPIES = "/var/backups/podium-secrets"
# Ansible reads group_vars next to the inventory: the kit records the current primary there
# after a failover, so every later converge and test agrees on it (decision 0111).
PRIMARY_VARS = Path("group_vars") / "all" / "podium-postgres-primary.yml"


# ---------------------------------------------------------------- checks before any change

def parse_target(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A --to time: ISO 8601 with a time zone, in the past. Raises PodiumError otherwise."""
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PodiumError(
            f"--to '{text}' is not a time",
            "give an ISO 8601 time with its zone, e.g. --to 2026-11-21T17:05:00Z "
            "or --to '2026-11-21 18:05:00+01:00'") from None
    if when.tzinfo is None:
        raise PodiumError(
            f"--to '{text}' has no time zone: the database would read it in its own zone",
            "add the zone, e.g. --to 2026-11-21T17:05:00Z")
    if when > now:
        raise PodiumError(
            f"--to {when.isoformat()} is in the future (now is "
            f"{now.replace(microsecond=0).isoformat()})",
            "a restore goes back in time: give a moment that has passed")
    # Milliseconds: what pgBackRest's --target carries (pgbackrest_time); the manifest and
    # the list of posts after the target use the same instant.
    when = when.astimezone(dt.UTC)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def pgbackrest_time(when: dt.datetime) -> str:
    """A UTC time as pgBackRest's --target reads it (it refuses ISO 8601's "T" and
    microseconds: `YYYY-MM-DD HH:MM:SS.mmm+00`). PostgreSQL reads the same text."""
    utc = when.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d}+00"


def check_drill_stack(stack: Stack, allow_cloud: bool, needs: dict[str, int],
                      cloud_ready: bool = False) -> None:
    """Refuse a cloud stack without --allow-cloud (or at all, unless the command drives cloud
    stacks: ``cloud_ready``), and a stack missing a role the drill needs (role -> how many
    hosts at least)."""
    if stack.provider != "local":
        if not allow_cloud:
            raise PodiumError(
                f"stack '{stack.name}' is a {stack.provider} stack: "
                + ("recovery replaces its database and secrets" if cloud_ready else
                   "a drill destroys and rebuilds hosts there"),
                ("use lab stacks to rehearse, or, knowing what it replaces, add --allow-cloud"
                 if cloud_ready else "drill on a lab stack (./podium up --stack local-...) or, "
                 "knowing what it destroys, add --allow-cloud"))
        if not cloud_ready:
            raise PodiumError(
                f"drills on cloud stacks are not implemented yet (stack '{stack.name}')",
                "run the drill on a lab stack; docs/runbooks/cross-provider-recovery.md has "
                "the steps by hand")
    missing = [f"{n} {role} host{'s' if n > 1 else ''}" for role, n in needs.items()
               if len(stack.groups().get(role, [])) < n]
    if missing:
        raise PodiumError(
            f"stack '{stack.name}' lacks what the drill needs: {', '.join(missing)}",
            f"add them to {shown(REPO / 'infra' / 'stacks' / f'Pulumi.{stack.name}.yaml')} "
            "and run ./podium up")


def configured_primary(stack: Stack, paths: StackPaths) -> str:
    """The primary Ansible will configure: the recorded one after a failover, else the
    first postgres host."""
    recorded = paths.state / PRIMARY_VARS
    if recorded.is_file():
        match = re.search(r"podium_postgres_primary:\s*(\S+)", recorded.read_text())
        if match:
            return match.group(1)
    return stack.groups()["postgres"][0]


def record_primary(paths: StackPaths, name: str) -> None:
    target = paths.state / PRIMARY_VARS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("---\n# Written by ./podium drill failover: the current PostgreSQL "
                      "primary (playbooks/group_vars/all/postgres.yml reads it).\n"
                      f"podium_postgres_primary: {name}\n")


# ---------------------------------------------------------------- commands on the hosts

@dataclass
class Remote:
    """Commands on the stack's hosts as the admin user (sudo inside the command), run with
    Fabric over the inventory Ansible uses (kit/reach.py: lab and cloud stacks alike). One
    connection per command: a drill destroys and re-creates hosts under it."""

    stack: Stack
    paths: StackPaths

    def host(self, name: str) -> Host:
        return self.stack.host(name)

    @cached_property
    def reach(self) -> reach.Reach:
        return reach.of_stack(self.stack, self.paths)

    def ssh_command(self, name: str, *options: str) -> list[str]:
        """``ssh`` with the stack's options to the host's admin user (a command follows);
        ``options`` go before the destination."""
        return self.reach.ssh(name, *options)

    def _ssh(self, name: str, command: str, timeout: float, data: bytes | None = None
             ) -> subprocess.CompletedProcess:
        """``command`` on the host through Fabric, in ``ssh``'s terms: exit 255 and the
        reason on stderr when the host cannot be reached. ``data`` (text) goes to stdin."""
        conn = self.reach.connection(name)
        try:
            result = conn.run(command, hide=True, warn=True, timeout=timeout,
                              in_stream=io.StringIO(data.decode()) if data is not None
                              else False)
        except CommandTimedOut:
            raise PodiumError(f"on {name}: `{command[:120]}` took longer than {timeout:.0f}s",
                              f"look at the host: ./podium ssh --stack {self.stack.name} "
                              f"{name}") from None
        except (SSHException, OSError, EOFError) as err:
            # Refused, timed out, unknown or changed host key, key not accepted.
            reason = f"ssh to {conn.user}@{conn.host}: {type(err).__name__}: {err}"
            return subprocess.CompletedProcess(command, 255, b"", reason.encode())
        finally:
            conn.close()
        return subprocess.CompletedProcess(command, result.exited, result.stdout.encode(),
                                           result.stderr.encode())

    def run(self, name: str, command: str, timeout: float = 300, check: bool = True) -> str:
        result = self._ssh(name, command, timeout)
        stdout = result.stdout.decode(errors="replace")
        if check and result.returncode != 0:
            raise PodiumError(
                f"on {name}: `{command[:160]}` failed (exit {result.returncode})",
                f"look at the host: ./podium ssh --stack {self.stack.name} {name}",
                detail=(result.stderr.decode(errors="replace") or stdout)[-2000:])
        return stdout

    def answers(self, name: str, timeout: float = 30) -> bool:
        """Whether the host runs a command over SSH at all."""
        try:
            return self._ssh(name, "true", timeout).returncode == 0
        except PodiumError:
            return False

    def read_bytes(self, name: str, command: str, timeout: float = 120,
                   data: bytes | None = None) -> bytes:
        """``command``'s output as bytes; ``data`` goes to its stdin (secrets stay off
        command lines)."""
        # Fabric hands output over as text: the bytes cross as base64, and pipefail keeps
        # the command's own exit status.
        wrapped = f"bash -c {shlex.quote(f'set -o pipefail; {command} | base64 -w0')}"
        result = self._ssh(name, wrapped, timeout, data)
        if result.returncode != 0:
            raise PodiumError(f"on {name}: `{command[:160]}` failed (exit {result.returncode})",
                              f"look at the host: ./podium ssh --stack {self.stack.name} {name}",
                              detail=result.stderr.decode(errors="replace")[-2000:])
        return base64.b64decode(result.stdout)

    @contextmanager
    def forward(self, name: str, address: str, port: int) -> Iterator[int]:
        """A local port on 127.0.0.1 forwarded through ``name`` to ``address:port`` (an
        address on the stack's private network, which the controller reaches only through
        a host in the cloud); closed on leaving."""
        with socket.socket() as probe:  # a free port, given back to ssh just below
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()[1]
        tunnel = subprocess.Popen(
            self.ssh_command(name, "-N", "-o", "ExitOnForwardFailure=yes",
                             "-L", f"127.0.0.1:{local}:{address}:{port}"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while not ssh.port_open("127.0.0.1", local, timeout=0.5):
                if tunnel.poll() is not None or time.monotonic() > deadline:
                    raise PodiumError(
                        f"could not forward a local port through {name} to {address}:{port}",
                        f"check SSH to the host: ./podium ssh --stack {self.stack.name} {name}",
                        detail=(tunnel.stderr.read().decode(errors="replace")
                                if tunnel.poll() is not None and tunnel.stderr else ""))
                time.sleep(0.2)
            yield local
        finally:
            tunnel.terminate()
            try:
                tunnel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tunnel.kill()

    def psql(self, name: str, sql: str, timeout: float = 120) -> list[list[str]]:
        out = self.run(name, "sudo -u postgres psql -d podium -XAtq -F '|' -v ON_ERROR_STOP=1 "
                       f"-c {shlex.quote(sql)}", timeout=timeout)
        return [line.split("|") for line in out.splitlines() if line]

    def in_recovery(self, name: str) -> bool | None:
        """True on a replica, False on a primary, None when PostgreSQL does not answer."""
        try:
            result = self._ssh(name, "sudo -u postgres psql -XAtq -c "
                                     "'SELECT pg_is_in_recovery()'", timeout=30)
        except PodiumError:
            return None
        if result.returncode != 0:
            return None
        return result.stdout.strip() == b"t"

    def wait_primary(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_recovery(name) is False:
                return
            time.sleep(1)
        raise PodiumError(f"PostgreSQL on {name} did not become a primary in {timeout:.0f}s",
                          f"read its log: ./podium ssh --stack {self.stack.name} {name} -- "
                          "sudo tail -50 /var/log/postgresql/postgresql-17-main.log")

    def app_cli(self, app: str, args: str) -> str:
        return self.run(app, f"{APP_CLI} {args}")


def current_timeline(remote: Remote, primary: str) -> int:
    """The timeline the primary writes on (from its current WAL file's name)."""
    name, = remote.psql(primary, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
    return int(name[:8], 16)


def newest_backup_timelines(remote: Remote, backup: str) -> dict[int, int | None]:
    """Per pgBackRest repository (its key: 1, and 2 when the bucket is a second repository,
    decision 0281), the timeline of its newest backup (None: it has none)."""
    info = json.loads(remote.run(
        backup, f"sudo -u postgres pgbackrest --stanza={STANZA} --output=json info"))[0]
    keys = [repo["key"] for repo in info.get("repo", [])] or [1]
    newest: dict[int, int | None] = dict.fromkeys(keys)
    for entry in info.get("backup", []):  # oldest first
        key = entry.get("database", {}).get("repo-key", 1)
        newest[key] = int(entry["archive"]["start"][:8], 16)
    return newest


def newest_backup_timeline(remote: Remote, backup: str) -> int | None:
    """The timeline of the oldest among the repositories' newest backups (None: a repository
    has no backup): the timeline every repository has a backup on."""
    newest = newest_backup_timelines(remote, backup).values()
    return None if None in newest else min(newest)


def backup_new_timeline(remote: Remote, backup: str, primary: str, why: str) -> str:
    """Take an incremental backup in each repository whose newest backup is not on the
    primary's timeline.

    A promotion (failover, or the end of a restore) starts a new timeline. A restore of the
    newest backup replays WAL from that backup's timeline and must find a path of history
    files to the timeline it is asked for; after a restore to a past time, the newest backup
    sits on a branch the database has left. A backup on the current timeline makes the next
    restore start where the database is (the backup role does the same at every converge)."""
    current = current_timeline(remote, primary)
    behind = {key: tl for key, tl in newest_backup_timelines(remote, backup).items()
              if tl != current}
    if not behind:
        return f"the newest backup is on timeline {current} already"
    began = time.monotonic()
    for key in behind:
        remote.run(backup, f"sudo -u postgres pgbackrest --stanza={STANZA} --repo={key} "
                           "--type=incr backup", timeout=3600)
    was = ", ".join(f"repo{key}: timeline {tl}" for key, tl in behind.items())
    return (f"took an incremental backup on timeline {current} in "
            f"{fmt_seconds(time.monotonic() - began)} ({why}; the newest backup was on {was})")


def decrypt_secrets_copy(remote: Remote, backup: str, paths: StackPaths) -> tuple[str, bytes]:
    """The newest secrets copy on the stack's backup host, decrypted with the stack's operator
    identity (``<secrets>-backup-identity.txt``): (its name, the tar)."""
    identity_file(paths)  # missing: say so before reading anything
    newest = remote.run(backup, f"sudo sh -c 'ls -t {SECRETS_COPIES}/*.tar.age 2>/dev/null "
                                "| head -1'").strip()
    if not newest:
        raise PodiumError(f"no secrets copy on {backup} of '{paths.stack}' "
                          f"({SECRETS_COPIES}/)", "converge the stack: the backup role copies the "
                          "secrets folder there; without a copy the identity cannot be restored")
    blob = remote.read_bytes(backup, f"sudo cat {shlex.quote(newest)}")
    return Path(newest).name, decrypt_copy(blob, f"{newest} on {backup}", paths)


def identity_file(paths: StackPaths) -> Path:
    identity = Path(f"{paths.secrets}-backup-identity.txt")
    if not identity.is_file():
        raise PodiumError(f"the age identity {shown(identity)} of '{paths.stack}' is missing: "
                          "its secrets copy cannot be read",
                          "put the operator's identity back there from where it is kept")
    return identity


def decrypt_copy(blob: bytes, where: str, paths: StackPaths) -> bytes:
    """An age-encrypted secrets copy of stack ``paths.stack`` (read from ``where``) as a tar."""
    identity = identity_file(paths)
    plain = subprocess.run(["age", "-d", "-i", str(identity)], input=blob, capture_output=True,
                           check=False)
    if plain.returncode != 0:
        raise PodiumError(f"the secrets copy {where} does not decrypt with {shown(identity)}",
                          detail=plain.stderr.decode(errors="replace"))
    return plain.stdout


# ---------------------------------------------------------------- the platform's API

@dataclass
class Api:
    """The platform's API through the proxy (HAProxy's frontend, plain HTTP on the private
    network), as the edges reach it."""

    address: str
    domain: str
    port: int = field(default_factory=lambda: role_ports()["proxy"][0]["port"])

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None,
             raw: bytes | None = None, content_type: str | None = None,
             timeout: float = 10) -> tuple[int, dict | list | None]:
        headers = {"Host": self.domain, "X-Forwarded-Proto": "https"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return resp.status, parsed

    def post(self, token: str, text: str, media_ids: list[str] | None = None) -> str:
        status, answer = self.call("POST", "/api/v1/statuses", token,
                                   {"status": text, **({"media_ids": media_ids}
                                                       if media_ids else {})})
        if status != 200 or not isinstance(answer, dict):
            raise PodiumError(f"posting through the proxy {self.address} answered {status}",
                              "check the app: ./podium status, then the app's journal",
                              detail=json.dumps(answer)[:500])
        return answer["id"]

    def read(self, token: str, status_id: str) -> dict | None:
        status, answer = self.call("GET", f"/api/v1/statuses/{status_id}", token)
        return answer if status == 200 and isinstance(answer, dict) else None

    def upload_png(self, token: str) -> str:
        boundary = secrets.token_hex(12)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"drill.png\"\r\nContent-Type: image/png\r\n\r\n").encode() \
            + _png() + f"\r\n--{boundary}--\r\n".encode()
        status, answer = self.call("POST", "/api/v2/media", token, raw=body,
                                   content_type=f"multipart/form-data; boundary={boundary}",
                                   timeout=30)
        if status not in (200, 202) or not isinstance(answer, dict):
            raise PodiumError(f"uploading an image through the proxy answered {status}",
                              detail=json.dumps(answer)[:500])
        return answer["id"]


def platform_entry(stack: Stack) -> tuple[str, str, int]:
    """Where the edges send platform requests, and the host the controller goes through to
    reach it: (via host, private address, port). The first proxy host's own address, or,
    with ``load_balancer: provider`` (no proxy host), the provider load balancer's private
    address through the first edge, on the port the proxy would use."""
    port = role_ports()["proxy"][0]["port"]
    groups = stack.groups()
    if groups.get("proxy"):
        proxy = groups["proxy"][0]
        return proxy, str(stack.host(proxy).address), port
    if stack.load_balancer == "provider" and groups.get("edge"):
        return groups["edge"][0], stack.load_balancer_address, port
    raise PodiumError(f"stack '{stack.name}' has no proxy host and no provider load balancer "
                      "with an edge: the platform has no entry to test through",
                      f"add them to {shown(stack_file(stack.name))}")


@contextmanager
def proxy_api(remote: Remote) -> Iterator[Api]:
    """The API at the platform's entry (``platform_entry``), reached over an SSH forward: in
    the cloud the controller reaches the private network only so, and ``./podium recover``
    and the restore drill's smoke take the same path in the lab (decision 0298)."""
    via, address, port = platform_entry(remote.stack)
    with remote.forward(via, address, port) as local:
        yield Api("127.0.0.1", remote.stack.domain, local)


def _png(size: int = 16) -> bytes:
    """A small PNG with random pixels: each drill run adds a new file to the media origin
    (names are content addresses, so the same picture would be stored once)."""
    rows = b"".join(b"\0" + secrets.token_bytes(size * 3) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0,
                                                              0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def publisher(remote: Remote, app: str, domain: str, prefix: str) -> tuple[str, str]:
    """A new publisher account and its API token, made with the app's CLI (name, token)."""
    name = f"{prefix}{secrets.token_hex(3)}"
    remote.app_cli(app, f"create-user {name} {name}@{domain} --publisher </dev/null")
    out = remote.app_cli(app, f"tokens create {name}")
    match = re.search(r"token: (\S+)", out)
    if not match:
        raise PodiumError(f"the app's CLI on {app} printed no token for {name}", detail=out)
    return name, match.group(1)


@dataclass
class Write:
    id: str
    at: float  # wall-clock time the app acknowledged it
    began: float = 0.0  # when the request was sent


@dataclass
class Writer:
    """A steady writer: one post every ``interval`` seconds through the proxy, each
    acknowledged write kept with its time, each failure counted with its time."""

    api: Api
    token: str
    interval: float = 0.25
    acked: list[Write] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="drill-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            began = time.time()
            try:
                status, answer = self.api.call("POST", "/api/v1/statuses", self.token,
                                               {"status": f"drill write {n}"}, timeout=5)
                if status == 200 and isinstance(answer, dict):
                    self.acked.append(Write(answer["id"], time.time(), began))
                else:
                    self.failures.append((began, f"HTTP {status}"))
            except (OSError, http.client.HTTPException) as err:
                self.failures.append((began, type(err).__name__))
            self._stop.wait(max(0.0, self.interval - (time.time() - began)))

    def last_ok_before(self, moment: float) -> float | None:
        times = [w.at for w in self.acked if w.at <= moment]
        return max(times) if times else None

    def first_ok_after(self, moment: float) -> float | None:
        """When the first write sent after ``moment`` was acknowledged."""
        times = [w.at for w in self.acked if w.began > moment]
        return min(times) if times else None


def write_outage(acks: list[float], stopped: float,
                 steady_gap: float = 2.0) -> tuple[float, float] | None:
    """The write outage around a failover, from the times writes were acknowledged: from the
    start of the first gap over ``steady_gap`` seconds that ends after ``stopped`` to the end
    of the last such gap, so a write slipping through between two pauses (a load balancer
    still marking the app down) does not end it. Without such a gap: the longest gap that
    ends after ``stopped``. None when no write was acknowledged after ``stopped``."""
    times = sorted(acks)
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b > stopped]
    if not gaps:
        return None
    long = [(a, b) for a, b in gaps if b - a > steady_gap]
    if long:
        return long[0][0], long[-1][1]
    return max(gaps, key=lambda gap: gap[1] - gap[0])


def present_ids(remote: Remote, primary: str, table: str, api_ids: list[str]) -> set[str]:
    """Which of these API IDs exist in ``table`` on ``primary``. The API shows an ID as the
    decimal form of the row's UUID (app/src/podium_app/ids.py)."""
    by_uuid = {str(uuid.UUID(int=int(i))): i for i in api_ids if i.isdigit()}
    found: set[str] = set()
    keys = list(by_uuid)
    for start in range(0, len(keys), 500):
        literal = ",".join(f"'{k}'" for k in keys[start:start + 500])
        rows = remote.psql(primary, f"SELECT id FROM {table} WHERE id IN ({literal})")
        found |= {by_uuid[r[0]] for r in rows if r[0] in by_uuid}
    return found


# ---------------------------------------------------------------- timeline and report

@dataclass
class Timeline:
    """Steps with wall-clock start and end, printed as they go (kit.console.Progress)."""

    total: int
    progress: Progress = field(init=False)
    started: float = field(default_factory=time.time)
    phases: list[tuple[str, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.progress = Progress(self.total)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        began = time.time()
        with self.progress.step(title):
            yield
        self.phases.append((title, began, time.time()))

    def note(self, text: str, host: str | None = None) -> None:
        self.progress.note(text, host)


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S")


def timeline_chart(timeline: Timeline, marks: dict[str, float]) -> list[str]:
    """A mermaid gantt (rendered by GitHub and most Markdown viewers) and the same as a text
    bar chart for terminals and plain viewers."""
    t0 = timeline.started
    out = ["```mermaid", "gantt", "    dateFormat X", "    axisFormat %M:%S",
           "    section drill"]
    for i, (title, began, ended) in enumerate(timeline.phases):
        label = re.sub(r"[:#;]", " ", title)[:60]
        out.append(f"    {label} :p{i}, {int(began - t0)}, {max(1, int(ended - t0))}")
    if marks:
        out.append("    section moments")
        for i, (name, at) in enumerate(marks.items()):
            out.append(f"    {re.sub(r'[:#;]', ' ', name)} :milestone, m{i}, {int(at - t0)}, 0")
    out += ["```", "", "```text"]
    end = max([e for _, _, e in timeline.phases] + list(marks.values()) + [t0 + 1])
    width, scale = 50, 50 / max(1.0, end - t0)
    for title, began, ended in timeline.phases:
        lead = int((began - t0) * scale)
        bar = max(1, int((ended - began) * scale))
        out.append(f"{title[:44]:<44} {' ' * lead}{'#' * bar}{' ' * (width - lead - bar)} "
                   f"{fmt_seconds(ended - began):>7}")
    for name, at in marks.items():
        out.append(f"{('* ' + name)[:44]:<44} {' ' * int((at - t0) * scale)}| "
                   f"at +{fmt_seconds(at - t0)}")
    out.append("```")
    return out


def write_report(kind: str, stack: Stack, lines: list[str]) -> Path:
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
    path = REPORTS_DIR / f"{stamp}-{kind}-{stack.name}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    print(f"\nreport saved: {shown(path)}", file=sys.stderr, flush=True)
    return path


def lost_writes_section(lost: list[Write], t_last: float | None) -> list[str]:
    if not lost:
        return ["No acknowledged write was lost."]
    out = [f"**{len(lost)} acknowledged write(s) lost** (acknowledged by the app, absent after "
           "the drill), by ID:", "", "| status ID | acknowledged at (UTC) |", "|---|---|"]
    out += [f"| `{w.id}` | {_clock(w.at)} |" for w in lost]
    if t_last is not None:
        out.append("")
        out.append(f"The last write made was acknowledged at {_clock(t_last)} UTC.")
    return out
