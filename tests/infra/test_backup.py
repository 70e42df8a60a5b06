"""The backup role: pgBackRest stanza, WAL archiving, encryption at rest, timers, age check
that fails when stale, and verification that finds a corrupted backup.

Runs on the repository host (the backup group); reaches the primary through testinfra too.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
import yaml

from kit.drillkit import PRIMARY_VARS

testinfra_hosts = ["ansible://backup"]

STANZA = "podium"
REPO = "/var/lib/pgbackrest"


def _pg(host, command: str, *args):
    with host.sudo("postgres"):
        return host.run(command, *args)


def _root(host, command: str, *args):
    with host.sudo():
        return host.run(command, *args)


@pytest.fixture(scope="module")
def primary(pytestconfig, inventory):
    """The first postgres host, or the one ./podium drill failover recorded."""
    recorded = Path(pytestconfig.option.ansible_inventory).parent / PRIMARY_VARS
    name = (yaml.safe_load(recorded.read_text())["podium_postgres_primary"]
            if recorded.is_file()
            else next(iter(inventory["all"]["children"]["postgres"]["hosts"])))
    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=pytestconfig.option.ansible_inventory
    )


class Repo1:
    """repo1's files by path under the repository: on the host's disk, or in its bucket
    (rclone with the host's offsite configuration) when repo1 is S3, as in the cloud and in
    a lab stack with lab.repository: bucket (decision 0283)."""

    def __init__(self, host, bucket: str | None) -> None:
        self.host, self.bucket = host, bucket
        self.rclone = ("rclone --config /etc/podium-offsite/rclone.conf --ca-cert "
                       "/etc/pgbackrest/s3-ca.crt")

    def _where(self, path: str) -> str:
        return (f"offsite:{self.bucket}{REPO}/{path}" if self.bucket else f"{REPO}/{path}")

    def files(self, under: str) -> list[tuple[str, int]]:
        """(path under the repository, size) of every file below ``under``."""
        if self.bucket:
            listed = _root(self.host, f"{self.rclone} lsjson -R --files-only "
                                      f"{self._where(under)}/")
            assert listed.rc == 0, listed.stderr
            return [(f"{under}/{e['Path']}", e["Size"]) for e in json.loads(listed.stdout)]
        found = _root(self.host, "find %s -type f -printf '%%P %%s\\n'", f"{REPO}/{under}")
        return [(f"{under}/{line.rsplit(' ', 1)[0]}", int(line.rsplit(" ", 1)[1]))
                for line in found.stdout.splitlines()]

    def fetch(self, path: str, local: str) -> None:
        """A copy of the file at ``local`` on the host (the repository's bytes, encrypted)."""
        cmd = (f"{self.rclone} copyto {self._where(path)} {local}" if self.bucket
               else f"cp -p {self._where(path)} {local}")
        assert _root(self.host, cmd).rc == 0

    def put(self, local: str, path: str) -> None:
        cmd = (f"{self.rclone} copyto {local} {self._where(path)}" if self.bucket
               else f"cp -p {local} {self._where(path)}")
        assert _root(self.host, cmd).rc == 0


@pytest.fixture(scope="module")
def repo1(host, inventory) -> Repo1:
    variables = inventory["all"]["vars"]
    store = variables.get("podium_offsite") or variables.get("podium_lab_store") or {}
    in_bucket = bool(variables.get("podium_offsite")) or store.get("repository") == "bucket"
    return Repo1(host, store["bucket"] if in_bucket else None)


def _info(host) -> dict:
    result = _pg(host, "pgbackrest --stanza=%s --output=json info", STANZA)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)[0]


def test_tls_server_listens_on_private_address(host, host_vars):
    assert host.service("pgbackrest-server").is_running
    assert host.socket(f"tcp://{host_vars['podium_private_address']}:8432").is_listening
    assert not host.socket("tcp://0.0.0.0:8432").is_listening


def test_stanza_checks_and_has_a_backup(host):
    result = _pg(host, "pgbackrest --stanza=%s check", STANZA)
    assert result.rc == 0, result.stdout + result.stderr
    info = _info(host)
    assert info["status"]["code"] == 0, info["status"]
    assert info["backup"], "no backup in the repository"
    assert any(b["type"] == "full" for b in info["backup"])


def test_backups_come_from_the_replica(host, inventory):
    if len(inventory["all"]["children"]["postgres"]["hosts"]) < 2:
        pytest.skip("one PostgreSQL host: no replica to back up from (backup-standby=n)")
    conf = _root(host, "cat /etc/pgbackrest/pgbackrest.conf").stdout
    assert "backup-standby=y" in conf
    # pgBackRest logs that it waited for the standby's replay: the files came from it.
    log = _root(host, "cat /var/log/pgbackrest/podium-backup.log").stdout
    assert "replay on the standby reached" in log


def test_wal_switch_is_archived_within_seconds(host, primary, repo1):
    # A WAL record first: on an idle cluster pg_switch_wal() does not switch.
    switched = _pg(
        primary,
        "psql -XAt -c \"SELECT pg_logical_emit_message(false, 'podium', 'probe')\" "
        '-c "SELECT pg_walfile_name(pg_switch_wal())" podium',
    )
    assert switched.rc == 0, switched.stderr
    segment = switched.stdout.split()[-1]
    deadline = time.monotonic() + 30
    archived = ""
    while time.monotonic() < deadline:
        archived = _pg(
            primary, 'psql -XAtc "SELECT last_archived_wal FROM pg_stat_archiver" podium'
        ).stdout.strip()
        if archived >= segment:
            break
        time.sleep(1)
    assert archived >= segment, f"{segment} not archived after 30 s (last: {archived})"
    found = [p for p, _ in repo1.files(f"archive/{STANZA}")
             if p.rsplit("/", 1)[-1].startswith(f"{segment}-")]
    assert found, f"{segment} not in the repository"


def test_repository_is_encrypted(host, repo1):
    info = _info(host)
    assert info["cipher"] == "aes-256-cbc"
    # An encrypted file starts with OpenSSL's "Salted__" header, a plaintext one would not.
    manifest = next(p for p, _ in repo1.files(f"backup/{STANZA}")
                    if p.endswith("/backup.manifest"))
    repo1.fetch(manifest, "/tmp/podium-manifest-head")
    head = _root(host, "head -c 8 /tmp/podium-manifest-head && rm -f "
                       "/tmp/podium-manifest-head").stdout
    assert head == "Salted__", head


@pytest.mark.parametrize(
    "timer",
    [
        "pgbackrest-full.timer",
        "pgbackrest-diff.timer",
        "pgbackrest-verify.timer",
        "podium-backup-check.timer",
    ],
)
def test_timers_enabled(host, timer):
    unit = host.service(timer)
    assert unit.is_enabled
    assert unit.is_running


TEXTFILE = "/var/lib/prometheus/node-exporter/podium_backup.prom"


def textfile_series(host) -> dict[str, float]:
    """podium-backup-check's textfile on ``host``: series (name and labels) -> value."""
    text = host.file(TEXTFILE).content_string
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def expected_repositories(inventory) -> list[int]:
    """repo1, and repo2 in the bucket in a lab stack with an S3 stand-in, its own (decision
    0281) or another stack's (0282), unless repo1 is that bucket already (0283)."""
    variables = inventory["all"]["vars"]
    stand_in = variables.get("podium_lab_store")
    beside = stand_in and stand_in.get("repository", "disk") != "bucket"
    return [1, 2] if beside and not variables.get("podium_offsite") else [1]


def test_age_check_passes_and_exports_metrics_for_every_repository(host, inventory):
    repos = expected_repositories(inventory)
    assert _repositories(host) == repos
    result = _root(host, "/usr/local/sbin/podium-backup-check")
    assert result.rc == 0, result.stdout + result.stderr
    series = textfile_series(host)
    for name in ("podium_wal_last_archived_timestamp_seconds",
                 "podium_backup_last_success_timestamp_seconds"):
        exported = sorted(int(s.split('repo="')[1].split('"')[0]) for s in series
                          if s.startswith(name + "{") and 'kind="diff"' not in s
                          and 'kind="incr"' not in s)
        assert exported == repos, (name, sorted(series))
    for repo in repos:
        full = series[f'podium_backup_last_success_timestamp_seconds{{kind="full",repo="{repo}",'
                      f'stanza="{STANZA}"}}']
        wal = series[f'podium_wal_last_archived_timestamp_seconds{{repo="{repo}",'
                     f'stanza="{STANZA}"}}']
        assert abs(full - time.time()) < 7 * 86400, (repo, full)
        assert abs(wal - time.time()) < 3600, (repo, wal)


def test_age_check_fails_when_stale(host):
    result = _root(host, "/usr/local/sbin/podium-backup-check --no-metrics --max-backup-age 0")
    assert result.rc == 1
    assert "STALE: repo1: newest backup" in result.stderr
    result = _root(host, "/usr/local/sbin/podium-backup-check --no-metrics --max-wal-age 0")
    assert result.rc == 1
    assert "STALE: repo1: newest archived WAL" in result.stderr


def test_verify_detects_a_corrupted_backup(host, repo1):
    """Corrupt one file of the newest backup in repo1 (on disk, or in the bucket), verify
    must fail; then put it back."""
    newest = [b for b in _info(host)["backup"]
              if b.get("database", {}).get("repo-key", 1) == 1][-1]["label"]
    target = next((p for p, size in repo1.files(f"backup/{STANZA}/{newest}/pg_data")
                   if size > 8192), None)
    assert target, "no file to corrupt"
    repo1.fetch(target, "/tmp/podium-verify-orig")
    try:
        assert _root(host, "cp -p /tmp/podium-verify-orig /tmp/podium-verify-bad && dd "
                           "if=/dev/urandom of=/tmp/podium-verify-bad bs=1 count=64 seek=100 "
                           "conv=notrunc status=none").rc == 0
        repo1.put("/tmp/podium-verify-bad", target)
        bad = _pg(host, "pgbackrest --stanza=%s verify", STANZA)
        # pgBackRest 2.55 exits 0 and reports the stanza's status; podium reads the status.
        assert "status: error" in bad.stdout, bad.stdout
        assert "invalid checksum" in bad.stdout, bad.stdout
        # The scheduled verification's unit fails on it too.
        unit = _root(host, "systemctl start pgbackrest-verify.service")
        assert unit.rc != 0, "pgbackrest-verify.service succeeded on a corrupted backup"
    finally:
        repo1.put("/tmp/podium-verify-orig", target)
        _root(host, "rm -f /tmp/podium-verify-orig /tmp/podium-verify-bad")
    good = _pg(host, "pgbackrest --stanza=%s verify", STANZA)
    assert good.rc == 0, good.stdout + good.stderr
    assert "status: error" not in good.stdout, good.stdout
    assert "invalid" not in good.stdout, good.stdout
    assert _root(host, "systemctl start pgbackrest-verify.service").rc == 0


@pytest.fixture(scope="module")
def restore_host(pytestconfig, inventory):
    """The replica (or the primary in a one-host stack): a scratch restore runs beside it."""
    if not (inventory["all"]["children"].get("backup") or {}).get("hosts"):
        pytest.skip("the stack has no backup host: nothing to restore from")
    names = list(inventory["all"]["children"]["postgres"]["hosts"])
    return testinfra.get_host(
        f"ansible://{names[-1]}", ansible_inventory=pytestconfig.option.ansible_inventory
    )


def test_newest_backup_is_on_the_current_timeline(host, primary):
    """After a promotion (failover, restore) the role backs up the new timeline, so a restore
    of the newest backup replays no timeline switch and cannot start on a branch the
    database has left (decision 0220)."""
    current = _pg(primary, 'psql -XAtc "SELECT pg_walfile_name(pg_current_wal_lsn())"')
    assert current.rc == 0, current.stderr
    newest = _info(host)["backup"][-1]["archive"]["start"]
    on, now = int(newest[:8], 16), int(current.stdout.strip()[:8], 16)
    assert on == now, (f"the newest backup is on timeline {on}, the database on {now}: "
                       "converge the backup host (it backs up the new timeline)")


def _repositories(host) -> list[int]:
    """The repository keys in the repository host's pgbackrest.conf (repo2: the S3 bucket,
    decision 0281)."""
    conf = _root(host, "cat /etc/pgbackrest/pgbackrest.conf").stdout
    return sorted({int(line[4:line.index("-")]) for line in conf.splitlines()
                   if line.startswith("repo") and "-cipher-type=" in line})


@pytest.mark.parametrize("repo", [1, 2])
def test_point_in_time_restore_brings_back_the_last_archived_write(host, primary, restore_host,
                                                                   repo):
    """Write a probe row on the primary, archive its WAL, restore the newest backup plus the
    archive from repository ``repo`` into a scratch directory beside the replica, start it on
    a private socket and find the row: the backup and the WAL archive together restore, not
    just verify. (repo2, where configured, is the S3 bucket: the lab's stand-in.)"""
    if repo not in _repositories(host):
        pytest.skip(f"no repo{repo} in this stack (repo2: a lab stack with an objectstore host)")
    probe = f"probe-{time.time_ns()}"
    wrote = _pg(
        primary,
        "psql -XAt -v ON_ERROR_STOP=1 "
        '-c "CREATE TABLE IF NOT EXISTS podium_ops.restore_probe (id text, at timestamptz)" '
        "-c \"INSERT INTO podium_ops.restore_probe VALUES ('%s', now())\" "
        '-c "SELECT pg_walfile_name(pg_switch_wal())" podium',
        probe,
    )
    assert wrote.rc == 0, wrote.stderr
    segment = wrote.stdout.split()[-1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = _pg(
            primary, 'psql -XAtc "SELECT last_archived_wal FROM pg_stat_archiver" podium'
        ).stdout.strip()
        if last >= segment:
            break
        time.sleep(1)
    scratch, sock = "/var/tmp/podium-restore-test", "/var/tmp/podium-restore-sock"
    bindir = "/usr/lib/postgresql/17/bin"
    _root(restore_host, "rm -rf %s %s", scratch, sock)
    _root(restore_host, "install -d -o postgres -g postgres -m 0700 %s %s", scratch, sock)
    try:
        restored = _pg(
            restore_host,
            "pgbackrest --stanza=podium --repo=%s --pg1-path=%s --archive-mode=off restore",
            str(repo),
            scratch,
        )
        assert restored.rc == 0, restored.stdout + restored.stderr
        # No postgresql.conf in a Debian data directory: settings on the command line, the
        # cluster's own pg_hba.conf (local peer for postgres), a socket nobody else uses.
        etc = "/etc/postgresql/17/main"
        options = (
            f"-c config_file=/dev/null -c hba_file={etc}/pg_hba.conf "
            f"-c ident_file={etc}/pg_ident.conf -c port=5499 -c listen_addresses= "
            f"-c unix_socket_directories={sock} -c shared_buffers=64MB"
        )
        started = _pg(
            restore_host,
            "%s/pg_ctl -D %s -w -t 120 -l %s/log -o %s start",
            bindir,
            scratch,
            scratch,
            options,
        )
        log = _root(restore_host, "tail -20 %s/log", scratch).stdout
        assert started.rc == 0, started.stdout + log
        # pg_ctl -w returns once the server takes (read-only) connections, which can be
        # before recovery has replayed the archive: wait for the end of recovery.
        deadline = time.monotonic() + 120
        while _pg(restore_host, "psql -h %s -p 5499 -XAtc %s podium", sock,
                  "SELECT pg_is_in_recovery()").stdout.strip() != "f":
            assert time.monotonic() < deadline, _root(restore_host, "tail -20 %s/log",
                                                      scratch).stdout
            time.sleep(1)
        found = _pg(
            restore_host,
            "psql -h %s -p 5499 -XAt -d podium -c %s",
            sock,
            f"SELECT count(*) FROM podium_ops.restore_probe WHERE id = '{probe}'",
        )
        assert found.stdout.strip() == "1", found.stdout + found.stderr
    finally:
        _pg(restore_host, "%s/pg_ctl -D %s -m immediate stop", bindir, scratch)
        _root(restore_host, "rm -rf %s %s", scratch, sock)


def test_secrets_copy_is_encrypted_and_decrypts_with_the_operator_identity(host, stack_vars):
    """The backup host holds an age file (not a readable tar) that the identity kept apart
    from the controller's secrets decrypts into the secrets folder's files."""
    archives = Path(stack_vars["podium_state_dir"]).glob("secrets-*.tar.age")
    local = max(archives, key=lambda p: p.stat().st_mtime)
    remote = f"/var/backups/podium-secrets/{local.name}"
    assert _root(host, "head -c 21 %s", remote).stdout == "age-encryption.org/v1"
    remote_sum = _root(host, "sha256sum %s", remote).stdout.split()[0]
    local_sum = subprocess.run(["sha256sum", str(local)], capture_output=True, text=True)
    assert local_sum.stdout.split()[0] == remote_sum
    identity = stack_vars["podium_secrets_dir"] + "-backup-identity.txt"
    plain = subprocess.run(
        f"age -d -i {identity} {local} | tar -t", shell=True, capture_output=True, text=True
    )
    assert plain.returncode == 0, plain.stderr
    assert "./postgres-app" in plain.stdout.split()
    assert "./pgbackrest-cipher" in plain.stdout.split()
