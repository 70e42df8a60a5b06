"""Reading a lost stack's offsite bucket from the recovering stack's backup host
(``./podium recover`` when the source stack keeps its copies in a bucket; decision 0282).

Everything runs on B's backup host with rclone (installed there by the backup role), against
A's bucket with A's key pair. The key pair and the repository's passphrase travel over SSH on
stdin into files under RUN_DIR (0711: the postgres user reaches its own 0700 subfolder but
cannot list the folder or read root's 0600 rclone.conf), never on a command line, and the
folder is removed when the reading ends, failed or not.

What A's bucket holds (decision 0281): pgBackRest's repository under the repository path
(``var/lib/pgbackrest/``: the same layout as on disk, so a copy of it is a posix
repository), ``<prefix>/media/current/`` (the media copy) and ``<prefix>/secrets/`` (the
age-encrypted secrets copies).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass

from kit.drillkit import STANZA, Remote
from kit.errors import PodiumError

RUN_DIR = "/run/podium-recover"
REMOTE = "lost"  # rclone remote name of A's bucket in RUN_DIR/rclone.conf
S3_CA = "/etc/pgbackrest/s3-ca.crt"  # the store's CA, put there by B's backup role
OFFSITE_PREFIX = "podium-offsite"
REPO_PREFIX = "var/lib/pgbackrest"


@dataclass(frozen=True)
class Bucket:
    """A's bucket as B's backup host reaches it."""

    endpoint: str
    bucket: str
    region: str
    key: str
    secret: str

    def rclone_conf(self) -> str:
        return "\n".join([f"[{REMOTE}]", "type = s3", "provider = Other",
                          f"access_key_id = {self.key}", f"secret_access_key = {self.secret}",
                          f"endpoint = https://{self.endpoint}", f"region = {self.region}",
                          "force_path_style = true", "no_check_bucket = true", ""])

    def path(self, *parts: str) -> str:
        return "/".join([f"{REMOTE}:{self.bucket}", *parts])


def run_with_input(remote: Remote, host: str, command: str, data: bytes,
                   timeout: float = 120) -> str:
    """``command`` on ``host`` with ``data`` on its stdin (secrets stay off command lines)."""
    from kit import ssh

    address = f"{remote.stack.admin.user}@{remote.host(host).address}"
    result = subprocess.run(["ssh", *ssh.base_args(remote.paths), address, command],
                            input=data, capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise PodiumError(f"on {host}: `{command[:160]}` failed (exit {result.returncode})",
                          f"look at the host: ./podium ssh --stack {remote.stack.name} {host}",
                          detail=result.stderr.decode(errors="replace")[-2000:])
    return result.stdout.decode(errors="replace")


class BucketReader:
    """rclone on B's backup host against A's bucket; use as a context manager."""

    def __init__(self, remote: Remote, host: str, bucket: Bucket) -> None:
        self.remote, self.host, self.bucket = remote, host, bucket
        self.rclone = (f"sudo rclone --config {RUN_DIR}/rclone.conf --ca-cert {S3_CA} "
                       "--fast-list")

    def __enter__(self) -> BucketReader:
        run_with_input(self.remote, self.host,
                       f"sudo install -d -m 0711 {RUN_DIR} && sudo sh -c 'umask 077 && "
                       f"cat > {RUN_DIR}/rclone.conf'", self.bucket.rclone_conf().encode())
        return self

    def __exit__(self, *exc: object) -> None:
        self.remote.run(self.host, f"sudo rm -rf {RUN_DIR}", check=False)

    def _rclone(self, args: str, timeout: float = 300) -> str:
        return self.remote.run(self.host, f"{self.rclone} {args}", timeout=timeout)

    def newest_secrets_copy(self) -> tuple[str, bytes]:
        """(name, encrypted bytes) of the newest ``secrets-*.tar.age`` in the bucket."""
        where = self.bucket.path(OFFSITE_PREFIX, "secrets")
        listing = json.loads(self._rclone(f"lsjson --files-only {shlex.quote(where + '/')}"))
        copies = sorted((e for e in listing if e["Name"].endswith(".tar.age")),
                        key=lambda e: e["ModTime"])
        if not copies:
            raise PodiumError(f"no secrets copy in {where}/ (bucket {self.bucket.bucket})",
                              "without it the platform's identity cannot come back; check "
                              "that the lost stack's offsite push ran (podium-offsite-copy)")
        name = copies[-1]["Name"]
        blob = self.remote.read_bytes(self.host, f"{self.rclone} cat "
                                                 f"{shlex.quote(where + '/' + name)}")
        return name, blob

    def copy_repository(self, dest: str) -> int:
        """A's repository into ``dest`` on the host (a posix repository owned by postgres);
        returns its size in bytes."""
        source = self.bucket.path(REPO_PREFIX)
        self._rclone(f"copy {shlex.quote(source + '/')} {shlex.quote(dest + '/')}",
                     timeout=3600)
        self.remote.run(self.host, f"sudo chown -R postgres:postgres {shlex.quote(dest)} && "
                                   f"sudo chmod 0750 {shlex.quote(dest)}")
        return _size(self.remote, self.host, dest)

    def copy_media(self, dest: str) -> int:
        """A's media copy into ``dest`` (owned by the media copy's user, as a push leaves it)."""
        source = self.bucket.path(OFFSITE_PREFIX, "media", "current")
        self._rclone(f"copy {shlex.quote(source + '/')} {shlex.quote(dest + '/')}",
                     timeout=3600)
        self.remote.run(self.host, f"sudo chown -R podium-media:podium-media "
                                   f"{shlex.quote(dest)}")
        return _size(self.remote, self.host, dest)


def repository_info(remote: Remote, host: str, repo_path: str, cipher_pass: str) -> dict:
    """``pgbackrest info`` of the posix repository at ``repo_path`` read with A's passphrase
    (a configuration file of its own: B's pgbackrest.conf still has B's)."""
    conf = "\n".join(["[global]", f"repo1-path={repo_path}", "repo1-cipher-type=aes-256-cbc",
                      f"repo1-cipher-pass={cipher_pass}", "log-level-console=warn", "",
                      f"[{STANZA}]", "pg1-path=/var/lib/postgresql/17/main", ""])
    run_with_input(remote, host,
                   f"sudo install -d -m 0700 -o postgres {RUN_DIR}/pgbackrest && "
                   f"sudo -u postgres sh -c 'umask 077 && cat > {RUN_DIR}/pgbackrest/info.conf'",
                   conf.encode())
    out = remote.run(host, f"sudo -u postgres pgbackrest --config={RUN_DIR}/pgbackrest/info.conf "
                           f"--stanza={STANZA} --output=json info")
    return json.loads(out)[0]


def move_prefix(remote: Remote, host: str, prefix: str, to: str) -> None:
    """Set aside ``prefix`` of the host's own bucket (its rclone remote ``offsite``) under
    ``to``; nothing is deleted. Nothing there (a new bucket) is not an error."""
    conf = "/etc/podium-offsite/rclone.conf"
    remote.run(host, f"sudo rclone --config {conf} --ca-cert {S3_CA} move "
                     f"offsite:{shlex.quote(prefix)} offsite:{shlex.quote(to)}",
               timeout=3600)


def _size(remote: Remote, host: str, path: str) -> int:
    return int(remote.run(host, f"sudo du -sb {shlex.quote(path)}").split()[0])
