"""The backup role's offsite copies (decision 0281): the repository host pushes the media
copy and the encrypted secrets copies to the offsite bucket with rclone, keeps the bucket's
key pair in a root-only file, and podium-backup-check fails when a push fails. pgBackRest's
S3 repository (repo2 in a lab stack with an S3 stand-in) checks and holds a backup.

Runs on the repository host (the backup group); reads the bucket with the host's own rclone
configuration, so the same tests read a real provider's bucket. Skipped in stacks without an
offsite bucket (no podium_offsite, no objectstore host): the local stack.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import pytest
import testinfra
from test_backup import textfile_series

testinfra_hosts = ["ansible://backup"]

CONFIG = "/etc/podium-offsite/rclone.conf"
SCRIPT = "/usr/local/sbin/podium-offsite-copy"
CHECK = "/usr/local/sbin/podium-backup-check --no-metrics --max-backup-age 999999999 " \
        "--max-full-age 999999999 --max-wal-age 999999999"
MEDIA_ORIGIN = "/srv/media"


def _root(host, command: str, *args):
    with host.sudo():
        return host.run(command, *args)


@pytest.fixture(scope="module", autouse=True)
def offsite(inventory):
    if not _bucket(inventory):
        pytest.skip("the stack has no offsite bucket (podium_offsite, or podium_lab_store: an "
                    "objectstore host of its own or another stack's)")


def _bucket(inventory) -> str:
    variables = inventory["all"]["vars"]
    where = variables.get("podium_offsite") or variables.get("podium_lab_store") or {}
    return where.get("bucket", "")


@pytest.fixture(scope="module")
def prefix(inventory) -> str:
    """The offsite copies' prefix in this stack's bucket (the backup role's defaults)."""
    return f"offsite:{_bucket(inventory)}/podium-offsite"


@pytest.fixture(scope="module")
def rclone(host):
    """rclone on the repository host with its offsite configuration (and the stand-in's CA)."""
    with host.sudo():
        ca = host.file("/etc/pgbackrest/s3-ca.crt").exists
    return f"rclone --config {CONFIG}" + (" --ca-cert /etc/pgbackrest/s3-ca.crt" if ca else "")


def _push(host) -> str:
    """Run the offsite push once; its journal (this run only)."""
    result = _root(host, "systemctl start podium-offsite-copy.service")
    log = _root(host, "journalctl -o cat --no-pager _SYSTEMD_INVOCATION_ID=$(systemctl show "
                      "-p InvocationID --value podium-offsite-copy.service)").stdout
    assert result.rc == 0, result.stderr + log
    return log


def test_stand_in_listens_on_its_private_address_only(inventory, pytestconfig):
    names = list((inventory["all"]["children"].get("objectstore") or {}).get("hosts") or {})
    if not names:
        pytest.skip("no S3 stand-in host in this stack: the bucket is at a provider or in "
                    "another lab stack (lab.offsite_store)")
    stand_in = testinfra.get_host(f"ansible://{names[0]}",
                                  ansible_inventory=pytestconfig.option.ansible_inventory)
    address = inventory["all"]["hosts"][names[0]]["podium_private_address"]
    assert stand_in.service("podium-objectstore").is_running
    assert stand_in.socket(f"tcp://{address}:443").is_listening
    assert not stand_in.socket("tcp://0.0.0.0:443").is_listening


def test_bucket_key_pair_is_in_a_root_only_file(host):
    conf = host.file(CONFIG)
    with host.sudo():
        assert conf.user == "root" and conf.group == "root"
        assert conf.mode == 0o600
        secret = next(line.split("=", 1)[1].strip() for line in conf.content_string.splitlines()
                      if line.startswith("secret_access_key"))
    assert secret
    unit = _root(host, "systemctl cat podium-offsite-copy.service podium-offsite-copy.timer")
    assert secret not in unit.stdout and secret not in host.file(SCRIPT).content_string


def test_offsite_timer_is_enabled(host):
    timer = host.service("podium-offsite-copy.timer")
    assert timer.is_enabled and timer.is_running


def test_s3_repository_checks_and_holds_a_full_backup(host):
    conf = _root(host, "cat /etc/pgbackrest/pgbackrest.conf").stdout
    repo = next(line.split("-")[0][4:] for line in conf.splitlines()
                if line.endswith("-type=s3"))
    with host.sudo("postgres"):
        # check takes no --repo: it checks every repository, and says so per repository.
        check = host.run("pgbackrest --stanza=podium check")
        assert check.rc == 0, check.stdout + check.stderr
        archived = [line for line in check.stdout.splitlines()
                    if "successfully archived to" in line and line.endswith(f" on repo{repo}")]
        assert archived, check.stdout
        info = json.loads(host.check_output(
            "pgbackrest --stanza=podium --repo=%s --output=json info", repo))[0]
    assert info["status"]["code"] == 0, info["status"]
    backups = [b for b in info["backup"] if b["database"]["repo-key"] == int(repo)]
    assert any(b["type"] == "full" and not b["error"] for b in backups), backups


def test_secrets_copies_are_in_the_bucket_unchanged(host, rclone, prefix):
    _push(host)
    # --one-way: every local file is in the bucket with the same MD5 (the bucket may hold
    # older copies this host no longer has).
    result = _root(host, f"{rclone} check --one-way /var/backups/podium-secrets/ "
                         f"{prefix}/secrets/")
    assert result.rc == 0, result.stdout + result.stderr
    listed = _root(host, f"{rclone} lsf {prefix}/secrets/").stdout.split()
    assert listed and all(n.startswith("secrets-") and n.endswith(".tar.age") for n in listed)


def test_media_reach_the_bucket_incrementally_and_deletions_move_aside(
        host, rclone, pytestconfig, inventory, prefix):
    names = list((inventory["all"]["children"].get("media") or {}).get("hosts") or {})
    if not names:
        pytest.skip("no media host: no media copy to push offsite")
    media = testinfra.get_host(f"ansible://{names[0]}",
                               ansible_inventory=pytestconfig.option.ansible_inventory)
    name = f"offsitetest/{secrets.token_hex(8)}.bin"
    data = secrets.token_bytes(32768)
    with media.sudo():
        media.run_test("install -d -o www-data -g www-data %s/offsitetest", MEDIA_ORIGIN)
        media.run_test("printf %%s %s | base64 -d > %s/%s && chown www-data: %s/%s",
                       base64.b64encode(data).decode(), MEDIA_ORIGIN, name,
                       MEDIA_ORIGIN, name)
    try:
        with media.sudo():
            pushed = media.run("systemctl start podium-media-copy.service")
        assert pushed.rc == 0, pushed.stderr
        first = _push(host)
        assert f"{name}: Copied (new)" in first, first
        got = _root(host, f"{rclone} md5sum {prefix}/media/current/{name}").stdout.split()
        assert got and got[0] == hashlib.md5(data).hexdigest()
        # Nothing changed: the next push sends nothing.
        again = _push(host)
        assert "Copied (" not in again, again
        # Deleted at the origin (its folder stays: a push from an empty origin is refused):
        # gone from the bucket's current/, kept under deleted/.
        with media.sudo():
            media.run_test("rm %s/%s", MEDIA_ORIGIN, name)
            pushed = media.run("systemctl start podium-media-copy.service")
        assert pushed.rc == 0, pushed.stderr
        _push(host)
        current = _root(host, f"{rclone} lsf -R {prefix}/media/current/").stdout.split()
        assert name not in current
        deleted = _root(host, f"{rclone} lsf -R {prefix}/media/deleted/").stdout.split()
        assert any(path.endswith("/" + name) for path in deleted), deleted
    finally:
        with media.sudo():
            media.run("rm -rf %s/offsitetest", MEDIA_ORIGIN)


def _offsite_figures(host) -> dict[str, float]:
    """Run the check as its timer does (writing its textfile, whatever the backups' ages):
    the offsite push's figures it exported, one series per part (decision 0295)."""
    _root(host, "/usr/local/sbin/podium-backup-check --max-backup-age 999999999 "
                "--max-full-age 999999999 --max-wal-age 999999999")
    return {name: value for name, value in textfile_series(host).items()
            if name.startswith("podium_offsite_copy_")}


def _parts(inventory) -> list[str]:
    """The offsite push's parts: the media copy when the stack has media hosts, the secrets."""
    media = (inventory["all"]["children"].get("media") or {}).get("hosts")
    return (["media"] if media else []) + ["secrets"]


def test_a_failed_push_fails_the_backup_check_and_shows_in_the_metrics_until_a_good_one(
        host, inventory):
    # The environment overrides the remote's endpoint for this run only: nothing listens there.
    broken = _root(host, f"RCLONE_CONFIG_OFFSITE_ENDPOINT=https://127.0.0.1:9 "
                         f"RCLONE_LOW_LEVEL_RETRIES=1 RCLONE_RETRIES=1 {SCRIPT}")
    assert broken.rc != 0
    check = _root(host, CHECK)
    assert check.rc == 1
    for part in _parts(inventory):
        assert f"offsite copy ({part}): the last push failed" in check.stderr, check.stderr
    figures = _offsite_figures(host)
    for part in _parts(inventory):
        assert figures[f'podium_offsite_copy_failed{{part="{part}"}}'] == 1, figures
        failed_at = figures[f'podium_offsite_copy_last_failure_timestamp_seconds{{part="{part}"}}']
        assert abs(failed_at - time.time()) < 300
    _push(host)
    check = _root(host, CHECK)
    assert check.rc == 0, check.stdout + check.stderr
    figures = _offsite_figures(host)
    for part in _parts(inventory):
        assert f"ok: offsite copy ({part})" in check.stdout
        assert figures[f'podium_offsite_copy_failed{{part="{part}"}}'] == 0, figures
        pushed_at = figures[f'podium_offsite_copy_last_success_timestamp_seconds{{part="{part}"}}']
        assert abs(pushed_at - time.time()) < 300


MEDIA_COPY = "/var/backups/podium-media/current"


def test_a_failed_media_part_is_named_and_the_secrets_still_go(host, inventory):
    """Only the media part fails: a new file in the media copy meets a transfer cap of one
    byte (RCLONE_MAX_TRANSFER, as a bucket out of quota would refuse it) while the secrets,
    already in the bucket, have nothing to send; the secrets part is stamped good."""
    if "media" not in _parts(inventory):
        pytest.skip("no media host: the push has no media part")
    _push(host)
    name = f"offsitetest-{secrets.token_hex(8)}.bin"
    _root(host, f"head -c 65536 /dev/urandom > {MEDIA_COPY}/{name}")
    try:
        broken = _root(host, f"RCLONE_MAX_TRANSFER=1 RCLONE_CUTOFF_MODE=hard RCLONE_RETRIES=1 "
                             f"{SCRIPT}")
        assert broken.rc == 1, broken.stdout + broken.stderr
        assert "podium-offsite-copy: media: rclone sync of the media copy" in broken.stderr
        check = _root(host, CHECK)
        assert check.rc == 1
        assert "offsite copy (media): the last push failed" in check.stderr, check.stderr
        assert "offsite copy (secrets)" not in check.stderr
        assert "ok: offsite copy (secrets)" in check.stdout
        figures = _offsite_figures(host)
        assert figures['podium_offsite_copy_failed{part="media"}'] == 1, figures
        assert figures['podium_offsite_copy_failed{part="secrets"}'] == 0, figures
        secrets_at = figures['podium_offsite_copy_last_success_timestamp_seconds{part="secrets"}']
        assert abs(secrets_at - time.time()) < 300
    finally:
        _root(host, f"rm -f {MEDIA_COPY}/{name}")
        _push(host)
        _offsite_figures(host)


def test_node_exporter_serves_the_offsite_figures_once(host, host_vars, inventory):
    """The push's former file is gone (with the same series in two textfiles node_exporter
    logs a gathering error and serves one of them) and node_exporter serves the check's
    figures."""
    assert not host.file("/var/lib/prometheus/node-exporter/podium_offsite_copy.prom").exists
    _offsite_figures(host)
    url = f"http://{host_vars['podium_private_address']}:9100/metrics"
    served = host.check_output(
        "python3 -c 'import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' %s", url)
    lines = served.splitlines()
    for name in ("podium_offsite_copy_failed", "podium_offsite_copy_last_success_timestamp_seconds",
                 "podium_offsite_copy_last_failure_timestamp_seconds"):
        for part in _parts(inventory):
            series = f'{name}{{part="{part}"}}'
            assert len([line for line in lines if line.split(" ")[0] == series]) == 1, series
        assert not [line for line in lines if line.split(" ")[0] == name], name
    assert "node_textfile_scrape_error 0" in lines
