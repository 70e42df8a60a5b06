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

Where A's repository goes depends on where B keeps its own (decision 0283): a folder on B's
backup host's disk (the lab's default), or a staging prefix in B's own bucket when B's
repo1 is there, as in the cloud. Either way it is checked with ``pgbackrest info`` under A's
passphrase before anything of B's is replaced.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from kit.drillkit import STANZA, Remote
from kit.errors import PodiumError

RUN_DIR = "/run/podium-recover"
REMOTE = "lost"  # rclone remote name of A's bucket in RUN_DIR/rclone.conf
OWN_REMOTE = "own"  # and of B's own bucket there, when A's repository is copied into it
OWN_CONFIG = "/etc/podium-offsite/rclone.conf"  # B's own remote "offsite", by its backup role
S3_CA = "/etc/pgbackrest/s3-ca.crt"  # the store's CA, put there by B's backup role
OFFSITE_PREFIX = "podium-offsite"
REPO_PREFIX = "var/lib/pgbackrest"


@dataclass(frozen=True)
class Bucket:
    """A bucket as B's backup host reaches it: A's (remote ``lost``), or B's own (``own``).
    ``ca_file``: the CA of the endpoint's certificate on the host (the lab store's), or ""
    for a provider's endpoint, which the system's CAs verify."""

    endpoint: str
    bucket: str
    region: str
    key: str
    secret: str
    remote: str = REMOTE
    ca_file: str = S3_CA

    def rclone_conf(self) -> str:
        return "\n".join([f"[{self.remote}]", "type = s3", "provider = Other",
                          f"access_key_id = {self.key}", f"secret_access_key = {self.secret}",
                          f"endpoint = https://{self.endpoint}", f"region = {self.region}",
                          "force_path_style = true", "no_check_bucket = true", ""])

    def path(self, *parts: str) -> str:
        return "/".join([f"{self.remote}:{self.bucket}", *parts])

    def repo_lines(self, path: str) -> list[str]:
        """pgBackRest's repo1 settings for ``path`` (absolute) in this bucket."""
        return ["repo1-type=s3", f"repo1-path={path}", f"repo1-s3-endpoint={self.endpoint}",
                f"repo1-s3-bucket={self.bucket}", f"repo1-s3-region={self.region}",
                f"repo1-s3-key={self.key}", f"repo1-s3-key-secret={self.secret}",
                "repo1-s3-uri-style=path",
                *([f"repo1-storage-ca-file={self.ca_file}"] if self.ca_file else [])]


def posix_repo_lines(path: str) -> list[str]:
    return [f"repo1-path={path}"]


def run_with_input(remote: Remote, host: str, command: str, data: bytes,
                   timeout: float = 120) -> str:
    """``command`` on ``host`` with ``data`` on its stdin (secrets stay off command lines)."""
    return remote.read_bytes(host, command, timeout, data).decode(errors="replace")


class BucketReader:
    """rclone on B's backup host against A's bucket (and B's own, when given); use as a
    context manager."""

    def __init__(self, remote: Remote, host: str, bucket: Bucket,
                 own: Bucket | None = None) -> None:
        self.remote, self.host, self.bucket, self.own = remote, host, bucket, own
        self.rclone = f"{rclone_command(f'{RUN_DIR}/rclone.conf', bucket.ca_file)} --fast-list"

    def __enter__(self) -> BucketReader:
        run_with_input(self.remote, self.host,
                       f"sudo install -d -m 0711 {RUN_DIR} && sudo sh -c 'umask 077 && "
                       f"cat > {RUN_DIR}/rclone.conf'",
                       (self.bucket.rclone_conf()
                        + (self.own.rclone_conf() if self.own else "")).encode())
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

    def copy_repository_to_own(self, prefix: str) -> int:
        """A's repository into ``prefix`` of B's own bucket (straight from bucket to bucket
        through the host, nothing on its disk); returns its size in bytes."""
        assert self.own is not None, "BucketReader(own=...) is needed for this"
        dest = self.own.path(prefix)
        self._rclone(f"copy {shlex.quote(self.bucket.path(REPO_PREFIX) + '/')} "
                     f"{shlex.quote(dest + '/')}", timeout=3600)
        return int(json.loads(self._rclone(f"size --json {shlex.quote(dest + '/')}"))["bytes"])

    def copy_media(self, dest: str) -> int:
        """A's media copy into ``dest`` (owned by the media copy's user, as a push leaves it)."""
        source = self.bucket.path(OFFSITE_PREFIX, "media", "current")
        self._rclone(f"copy {shlex.quote(source + '/')} {shlex.quote(dest + '/')}",
                     timeout=3600)
        self.remote.run(self.host, f"sudo chown -R podium-media:podium-media "
                                   f"{shlex.quote(dest)}")
        return _size(self.remote, self.host, dest)


def repository_info(remote: Remote, host: str, location: list[str], cipher_pass: str) -> dict:
    """``pgbackrest info`` of the repository at ``location`` (``posix_repo_lines`` or
    ``Bucket.repo_lines``) read with A's passphrase (a configuration file of its own, under
    RUN_DIR: B's pgbackrest.conf still has B's)."""
    conf = "\n".join(["[global]", *location, "repo1-cipher-type=aes-256-cbc",
                      f"repo1-cipher-pass={cipher_pass}", "log-level-console=warn", "",
                      f"[{STANZA}]", "pg1-path=/var/lib/postgresql/17/main", ""])
    run_with_input(remote, host,
                   f"sudo install -d -m 0700 -o postgres {RUN_DIR}/pgbackrest && "
                   f"sudo -u postgres sh -c 'umask 077 && cat > {RUN_DIR}/pgbackrest/info.conf'",
                   conf.encode())
    out = remote.run(host, f"sudo -u postgres pgbackrest --config={RUN_DIR}/pgbackrest/info.conf "
                           f"--stanza={STANZA} --output=json info")
    return json.loads(out)[0]


def move_prefix(remote: Remote, host: str, prefix: str, to: str, ca_file: str = S3_CA) -> None:
    """Set aside ``prefix`` of the host's own bucket (its rclone remote ``offsite``) under
    ``to``; nothing is deleted. Nothing there (a new bucket) is not an error. Within one
    bucket the S3 backend copies on the server side."""
    remote.run(host, f"{rclone_command(OWN_CONFIG, ca_file)} move offsite:{shlex.quote(prefix)} "
                     f"offsite:{shlex.quote(to)}", timeout=3600)


def purge_prefix(remote: Remote, host: str, prefix: str, ca_file: str = S3_CA) -> None:
    """Remove ``prefix`` of the host's own bucket (a staging copy that was not used)."""
    remote.run(host, f"{rclone_command(OWN_CONFIG, ca_file)} purge offsite:{shlex.quote(prefix)}",
               check=False,
               timeout=900)


def rclone_command(config: str, ca_file: str) -> str:
    """rclone as root with ``config``; ``--ca-cert`` for a lab store's endpoint."""
    return f"sudo rclone --config {config}" + (f" --ca-cert {ca_file}" if ca_file else "")


def _size(remote: Remote, host: str, path: str) -> int:
    return int(remote.run(host, f"sudo du -sb {shlex.quote(path)}").split()[0])
