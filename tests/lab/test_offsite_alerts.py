"""The backup alerts against a stack's real figures (decisions 0294, 0295): a throwaway
Prometheus on the controller (127.0.0.1 only, stopped after the module) loads the monitoring
role's rules, rendered as the unit tier renders them with every `for:` at 10 s, and scrapes
the backup host's node exporter. A failed offsite push fires OffsiteCopyFailing for each
part (media, secrets) and a good one resolves it; a push whose media part alone fails fires
it for the media part only; with the backup age limit at 0 hours BackupTooOld fires once per
pgBackRest repository; with the full backup's age limit lowered to 60 s for one run of the
check, BackupFullTooOld fires once per repository.

What is simulated, and nothing else: the rules' `for:` (10 s) and BackupTooOld's limit (0 h)
in the rendered rules; the full's limit (60 s instead of 8 days, exported by one run of the
check with the check's timer stopped); the push's faults (an endpoint where nothing listens;
a one-byte transfer cap, as a bucket out of quota would refuse a new media file). The
backups, their ages, the push, the stamps, the check and node_exporter are the stack's own.

For stacks with an offsite bucket but no monitoring host (lab-backup), where the monitoring
role's own fault tests (test_monitoring_faults.py) cannot run. Skipped without an offsite
copy. Needs Debian's prometheus package on the controller (./podium installs it).
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml
from labwait import wait_until

from kit import ssh
from tests.unit.test_monitoring_rules import EXPECT_ALL, render_rules

pytestmark = pytest.mark.lab

PUSH = "/usr/local/sbin/podium-offsite-copy"
CHECK = "/usr/local/sbin/podium-backup-check"


@pytest.fixture(scope="module")
def backup_host(stack, paths):
    inventory = yaml.safe_load(paths.inventory.read_text())
    children = inventory["all"]["children"]
    variables = inventory["all"]["vars"]
    if not variables.get("podium_lab_store") and not variables.get("podium_offsite"):
        pytest.skip(f"stack '{stack.name}' has no offsite bucket")
    (name, *_) = children["backup"]["hosts"]
    (entry,) = [e for e in inventory["all"]["vars"]["podium_role_ports"]["common"]
                if e.get("metrics") == "node"]
    return name, inventory["all"]["hosts"][name]["podium_private_address"], entry["port"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(backup_host, tmp_path_factory):
    """The Prometheus API's base URL; the server stopped (by its own PID) afterwards."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed on the controller: apt-get install prometheus")
    name, address, port = backup_host
    work = tmp_path_factory.mktemp("prometheus")
    (work / "podium.rules.yml").write_text(render_rules(
        **EXPECT_ALL, monitoring_alert_for_override="10s", monitoring_alert_backup_max_age_hours=0))
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": ["podium.rules.yml"],
        "scrape_configs": [{"job_name": "node", "static_configs": [
            {"targets": [f"{address}:{port}"], "labels": {"host": name}}]}]}))
    listen = f"127.0.0.1:{_free_port()}"
    with open(work / "prometheus.log", "w") as log:
        server = subprocess.Popen(
            [binary, f"--config.file={work / 'prometheus.yml'}", f"--web.listen-address={listen}",
             f"--storage.tsdb.path={work / 'data'}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://{listen}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _alerts(base: str, name: str) -> list[dict]:
    """The alerts ``name`` Prometheus holds (pending or firing)."""
    try:
        with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=5) as answer:
            alerts = json.load(answer)["data"]["alerts"]
    except OSError:  # still starting
        return []
    return [a for a in alerts if a["labels"]["alertname"] == name]


def _firing(base: str, name: str) -> list[dict]:
    return [a for a in _alerts(base, name) if a["state"] == "firing"]


def _firing_for_each(base: str, name: str, label: str, values: list[str]) -> list[dict]:
    """The firing ``name`` alerts once there is exactly one per value of ``label`` in
    ``values`` (waits up to 120 s)."""
    def firing() -> list[dict] | None:
        alerts = _firing(base, name)
        return alerts if sorted(a["labels"][label] for a in alerts) == values else None
    return wait_until(f"{name} firing for each {label} of {values}", firing, timeout=120)


def _on_backup_host(stack, paths, address: str, command: str) -> int:
    return ssh.run(paths, stack.admin.user, address, command, timeout=300).returncode


def _repositories(stack, paths, address: str) -> list[str]:
    """The pgBackRest repositories' keys ("1", "2") in the backup host's configuration."""
    conf = ssh.run(paths, stack.admin.user, address, "sudo cat /etc/pgbackrest/pgbackrest.conf")
    repos = sorted({line[4:line.index("-")] for line in conf.stdout.splitlines()
                    if line.startswith("repo") and "-cipher-type=" in line})
    assert repos, conf.stderr
    return repos


def test_backup_too_old_fires_once_per_repository(stack, paths, backup_host, prometheus):
    _, address, _ = backup_host
    repos = _repositories(stack, paths, address)
    assert _firing_for_each(prometheus, "BackupTooOld", "repo", repos)


def _parts(paths) -> list[str]:
    """The offsite push's parts: the media copy when the stack has media hosts, the secrets."""
    inventory = yaml.safe_load(paths.inventory.read_text())
    media = (inventory["all"]["children"].get("media") or {}).get("hosts")
    return (["media"] if media else []) + ["secrets"]


def test_a_full_older_than_its_limit_fires_once_per_repository(stack, paths, backup_host,
                                                              prometheus):
    """The fulls are the converge's own, minutes old; the check exports a limit of 60 s for
    one run (its timer stopped meanwhile, so no run restores the derived limit early)."""
    _, address, _ = backup_host
    repos = _repositories(stack, paths, address)
    wait_until("Prometheus scraping the backup host",
               lambda: _alerts(prometheus, "BackupTooOld"), timeout=120)
    assert not _alerts(prometheus, "BackupFullTooOld"), "a full is already too old"
    assert _on_backup_host(stack, paths, address,
                           "sudo systemctl stop podium-backup-check.timer") == 0
    try:
        assert _on_backup_host(stack, paths, address, f"sudo {CHECK} --max-full-age 60") == 1
        for alert in _firing_for_each(prometheus, "BackupFullTooOld", "repo", repos):
            assert alert["labels"]["kind"] == "full"
            assert alert["labels"]["severity"] == "warning"
            assert "full backup in repo" in alert["annotations"]["summary"]
    finally:
        _on_backup_host(stack, paths, address, f"sudo {CHECK}")
        assert _on_backup_host(stack, paths, address,
                               "sudo systemctl start podium-backup-check.timer") == 0
    wait_until("BackupFullTooOld resolved",
               lambda: not _alerts(prometheus, "BackupFullTooOld"), timeout=120)


def test_a_failed_push_fires_the_offsite_alert_until_a_good_one(stack, paths, backup_host,
                                                                prometheus):
    name, address, _ = backup_host
    wait_until("Prometheus scraping the backup host",
               lambda: _alerts(prometheus, "BackupTooOld"), timeout=120)
    assert not _alerts(prometheus, "OffsiteCopyFailing"), "the last push already failed"
    # As the timer would: the push (to an endpoint where nothing listens), then the check.
    assert _on_backup_host(stack, paths, address,
                           f"sudo RCLONE_CONFIG_OFFSITE_ENDPOINT=https://127.0.0.1:9 "
                           f"RCLONE_LOW_LEVEL_RETRIES=1 RCLONE_RETRIES=1 {PUSH}") != 0
    try:
        assert _on_backup_host(stack, paths, address, f"sudo {CHECK}") == 1
        for alert in _firing_for_each(prometheus, "OffsiteCopyFailing", "part", _parts(paths)):
            assert alert["labels"]["host"] == name and alert["labels"]["severity"] == "warning"
            assert alert["annotations"]["runbook_url"].endswith("/offsite-copy.md")
            assert f"the {alert['labels']['part']} copy" in alert["annotations"]["summary"]
    finally:
        assert _on_backup_host(stack, paths, address,
                               "sudo systemctl start podium-offsite-copy.service") == 0
        _on_backup_host(stack, paths, address, f"sudo {CHECK}")
    wait_until("OffsiteCopyFailing resolved",
               lambda: not _alerts(prometheus, "OffsiteCopyFailing"), timeout=120)


MEDIA_COPY = "/var/backups/podium-media/current"


def test_a_failed_media_part_is_named_by_the_offsite_alert(stack, paths, backup_host,
                                                           prometheus):
    """A new file in the media copy meets a one-byte transfer cap (RCLONE_MAX_TRANSFER):
    the media part fails, the secrets (already in the bucket) have nothing to send and
    succeed. One alert, part="media"."""
    if "media" not in _parts(paths):
        pytest.skip("no media host: the push has no media part")
    name, address, _ = backup_host
    wait_until("Prometheus scraping the backup host",
               lambda: _alerts(prometheus, "BackupTooOld"), timeout=120)
    assert _on_backup_host(stack, paths, address,
                           "sudo systemctl start podium-offsite-copy.service") == 0
    assert _on_backup_host(stack, paths, address, f"sudo {CHECK}") == 0
    wait_until("no OffsiteCopyFailing", lambda: not _alerts(prometheus, "OffsiteCopyFailing"),
               timeout=120)
    new_file = f"{MEDIA_COPY}/offsitetest-{secrets.token_hex(8)}.bin"
    assert _on_backup_host(stack, paths, address,
                           f"sudo sh -c 'head -c 65536 /dev/urandom > {new_file}'") == 0
    try:
        assert _on_backup_host(stack, paths, address,
                               f"sudo RCLONE_MAX_TRANSFER=1 RCLONE_CUTOFF_MODE=hard "
                               f"RCLONE_RETRIES=1 {PUSH}") == 1
        assert _on_backup_host(stack, paths, address, f"sudo {CHECK}") == 1
        (alert,) = _firing_for_each(prometheus, "OffsiteCopyFailing", "part", ["media"])
        assert alert["labels"]["host"] == name
        assert alert["annotations"]["summary"] == (
            f"The last push of the media copy to the offsite bucket failed on {name}")
        # Held for three more evaluations: the secrets part never joins it.
        time.sleep(15)
        assert [a["labels"]["part"] for a in _alerts(prometheus, "OffsiteCopyFailing")] == [
            "media"]
    finally:
        _on_backup_host(stack, paths, address, f"sudo rm -f {new_file}")
        assert _on_backup_host(stack, paths, address,
                               "sudo systemctl start podium-offsite-copy.service") == 0
        _on_backup_host(stack, paths, address, f"sudo {CHECK}")
    wait_until("OffsiteCopyFailing resolved",
               lambda: not _alerts(prometheus, "OffsiteCopyFailing"), timeout=120)
