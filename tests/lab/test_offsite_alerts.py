"""The backup alerts against a stack's real figures (decision 0294): a throwaway Prometheus
on the controller (127.0.0.1 only, stopped after the module) loads the monitoring role's
rules, rendered as the unit tier renders them with every `for:` at 10 s, and scrapes the
backup host's node exporter. A failed offsite push fires OffsiteCopyFailing and a good one
resolves it; with the backup age limit at 0 hours BackupTooOld fires once per pgBackRest
repository.

For stacks with an offsite bucket but no monitoring host (lab-backup), where the monitoring
role's own fault tests (test_monitoring_faults.py) cannot run. Skipped without an offsite
copy. Needs Debian's prometheus package on the controller (./podium installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
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


def _on_backup_host(stack, paths, address: str, command: str) -> int:
    return ssh.run(paths, stack.admin.user, address, command, timeout=300).returncode


def test_backup_too_old_fires_once_per_repository(stack, paths, backup_host, prometheus):
    _, address, _ = backup_host
    conf = ssh.run(paths, stack.admin.user, address, "sudo cat /etc/pgbackrest/pgbackrest.conf")
    repos = sorted({line[4:line.index("-")] for line in conf.stdout.splitlines()
                    if line.startswith("repo") and "-cipher-type=" in line})
    assert repos, conf.stderr
    fired = wait_until("BackupTooOld firing for every repository",
                       lambda: sorted(a["labels"]["repo"] for a in _firing(prometheus,
                                                                          "BackupTooOld"))
                       == repos, timeout=120)
    assert fired


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
        (alert,) = wait_until("OffsiteCopyFailing firing",
                              lambda: _firing(prometheus, "OffsiteCopyFailing"), timeout=120)
        assert alert["labels"]["host"] == name and alert["labels"]["severity"] == "warning"
        assert alert["annotations"]["runbook_url"].endswith("/offsite-copy.md")
    finally:
        assert _on_backup_host(stack, paths, address,
                               "sudo systemctl start podium-offsite-copy.service") == 0
        _on_backup_host(stack, paths, address, f"sudo {CHECK}")
    wait_until("OffsiteCopyFailing resolved",
               lambda: not _alerts(prometheus, "OffsiteCopyFailing"), timeout=120)
