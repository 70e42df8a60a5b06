"""Fault injection on a running stack: a real fault makes the real alert fire, then resolve.

The disk alert's normal `for:` (5 minutes for critical) is too long for a test, so the
monitoring hosts are converged for the duration with ``monitoring_alert_for_override=10s``
(every rule's `for:` becomes 10 s; the thresholds and expressions are the real ones), a
webhook to a small receiver on the controller's bridge address, and the dead-man's switch
pointed at the same receiver (pinged every 15 s instead of 5 minutes), and Prometheus
re-sending firing alerts every 15 s instead of every minute (a dead Prometheus's alerts then
expire in Alertmanager after 1 minute, not 4: the watchdog test waits for that). Prometheus
also scrapes and evaluates every 10 s instead of 30 s: each phase of a fault test (the fault
seen, the rule pending, then firing, then resolved) waited up to a full 30 s interval, which
made these tests about a minute longer each. The fixture converges them back to the normal
settings afterwards. Alertmanager's own timings
(group_wait 30 s) are the production ones. With a mail host in the stack, the disk,
replication and backup faults end with the alert mail read over IMAPS from the operator's
mailbox (podium:admin.email, which the mail role gives a mailbox when it is on the
platform's domain).

Measured and printed (docs/perf.md): seconds from the fault to the alert firing in
Prometheus and to its notification arriving at the webhook.
"""

from __future__ import annotations

import email
import email.utils
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from labmail import mail_host, wait_in_mailbox
from labwait import wait_until

from kit import ssh
from kit.ansible import run_playbook

WEBHOOK_PORT = 9199
FOR_OVERRIDE = "10s"
# Scrape and evaluation interval for the tests (production: 30s; the scrape timeout, 10s,
# stays within it).
INTERVAL = "10s"
FILL_MOUNT = "/var/lib/podium-fault-disk"


WATCHDOG_PATH = "/watchdog"
WATCHDOG_INTERVAL = 15  # seconds: monitoring_deadmansswitch_interval for the test
# Alertmanager drops an alert Prometheus stopped sending 4 x max(resend delay, evaluation
# interval) after the last send: 1 minute with this and INTERVAL, 4 with the defaults.
RESEND_DELAY = "15s"

# Webhook payloads received, with the time they arrived; the dead-man's switch's pings.
RECEIVED: list[tuple[float, dict]] = []
WATCHDOG: list[float] = []


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == WATCHDOG_PATH:
            WATCHDOG.append(time.monotonic())
        else:
            RECEIVED.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _wait(what: str, condition, timeout: float, every: float = 3.0):
    return wait_until(what, condition, timeout, every)


def _converge_monitoring(stack, paths, label: str, *extra: str) -> None:
    """Converge the monitoring hosts with the test settings (short `for:`, the webhook and the
    dead-man's switch on this controller) and ``extra`` arguments."""
    receiver = f"http://{stack.gateway}:{WEBHOOK_PORT}"
    run_playbook(paths, "playbooks/site.yml", label, [
        "--limit", "monitoring", "-e", f"monitoring_alert_for_override={FOR_OVERRIDE}",
        "-e", f"monitoring_webhook_url={receiver}/alerts",
        "-e", f"monitoring_deadmansswitch_url={receiver}{WATCHDOG_PATH}",
        "-e", f"monitoring_deadmansswitch_interval={WATCHDOG_INTERVAL}s",
        "-e", f"monitoring_alert_resend_delay={RESEND_DELAY}",
        "-e", f"monitoring_scrape_interval={INTERVAL}",
        "-e", f"monitoring_evaluation_interval={INTERVAL}", *extra],
        echo=False)


@pytest.fixture(scope="module")
def monitoring(stack, paths):
    """The stack's monitoring host with short `for:` and a webhook to this controller."""
    hosts = [h for h in stack.hosts if "monitoring" in h.roles]
    if not hosts:
        pytest.skip(f"stack '{stack.name}' has no monitoring host")
    server = ThreadingHTTPServer((stack.gateway, WEBHOOK_PORT), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _converge_monitoring(stack, paths, "converge-fault-test")
        yield f"http://{hosts[0].address}:9090"
    finally:
        run_playbook(paths, "playbooks/site.yml", "converge-fault-test-undo",
                     ["--limit", "monitoring"], echo=False)
        server.shutdown()
        server.server_close()


def _matches(labels: dict, name: str, match: dict[str, str]) -> bool:
    return labels["alertname"] == name and all(labels.get(k) == v for k, v in match.items())


def _alert(prometheus: str, name: str, **match: str) -> dict | None:
    """The alert ``name`` with labels ``match`` as Prometheus has it (pending or firing)."""
    for alert in _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]:
        if _matches(alert["labels"], name, match):
            return alert
    return None


def _notified(name: str, status: str, **match: str):
    """(arrival time, alert) of the first webhook notification of ``name`` in ``status``."""
    for _at, payload in RECEIVED:
        for alert in payload["alerts"]:
            if _matches(alert["labels"], name, match) and alert["status"] == status:
                return _at, alert
    return None


def _disk_alert(prometheus: str, host: str) -> dict | None:
    return _alert(prometheus, "DiskSpaceLow", host=host, mountpoint=FILL_MOUNT)


def _operator_mail(stack, paths, needle: str, since: float, timeout: float = 240) -> str:
    """The subject of the newest alert mail containing ``needle`` that arrived in the
    operator's mailbox after wall-clock time ``since`` (skips without a mail host)."""
    mail = mail_host(stack, paths)
    if mail is None:
        pytest.skip(f"stack '{stack.name}' has no mail host: alert mail not checked")
    account, domain = stack.admin.email.split("@")
    if domain != stack.domain:
        pytest.skip(f"the operator's address {stack.admin.email} is not on the lab's domain")
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = email.message_from_bytes(wait_in_mailbox(mail, account, needle, 5))
            sent = email.utils.parsedate_to_datetime(message["Date"]).timestamp()
            if sent >= since - 5:
                return str(message["Subject"])
        except AssertionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no alert mail containing {needle!r} in {stack.admin.email}'s mailbox "
                        f"after {timeout:.0f}s")
        time.sleep(5)


def test_filling_a_filesystem_fires_the_disk_alert_mails_the_operator_and_resolves(
        stack, paths, monitoring):
    target = next(h for h in stack.hosts if "monitoring" not in h.roles)

    def on_target(command: str):
        result = ssh.run(paths, stack.admin.user, str(target.address), command, timeout=60)
        assert result.returncode == 0, result.stderr
        return result

    # A 16 MiB tmpfs made for the test, filled to ~94%: past the 90% critical threshold.
    on_target(f"sudo mkdir -p {FILL_MOUNT} && sudo mount -t tmpfs -o size=16m podium-fault "
              f"{FILL_MOUNT} && sudo dd if=/dev/zero of={FILL_MOUNT}/fill bs=1M count=15 "
              "status=none")
    filled_at = time.time()
    filled = time.monotonic()
    try:
        alert = _wait("DiskSpaceLow firing in Prometheus",
                      lambda: (a := _disk_alert(monitoring, target.name))
                      and a["state"] == "firing" and a, timeout=240)
        fired = time.monotonic()
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert alert["annotations"]["runbook_url"].endswith("/disk-space.md")
        at, _ = _wait("the firing notification at the webhook",
                      lambda: _notified("DiskSpaceLow", "firing", host=target.name,
                                        mountpoint=FILL_MOUNT), timeout=180)
        subject = _operator_mail(stack, paths, "DiskSpaceLow", filled_at)
        mailed = time.monotonic()
        assert "DiskSpaceLow" in subject
        print(f"\nfault -> firing in Prometheus: {fired - filled:.0f}s; "
              f"fault -> webhook notification: {at - filled:.0f}s; -> mail in "
              f"{stack.admin.email}: {mailed - filled:.0f}s "
              f"(scrape and evaluation every {INTERVAL}, for: {FOR_OVERRIDE}, group_wait 30s)")
    finally:
        on_target(f"sudo umount {FILL_MOUNT} && sudo rmdir {FILL_MOUNT}")
    emptied = time.monotonic()
    _wait("DiskSpaceLow to resolve", lambda: _disk_alert(monitoring, target.name) is None,
          timeout=180)
    print(f"fault undone -> alert gone from Prometheus: {time.monotonic() - emptied:.0f}s")


def _post_alerts(alertmanager: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(f"{alertmanager}/api/v2/alerts",
                                     data=json.dumps(alerts).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_a_dead_host_sends_one_notification_not_one_per_alert(stack, paths, monitoring):
    """Stop a host's node exporter: the real HostDown fires; the host's other alerts (posted
    to Alertmanager as a host's exporters and disks would raise them) are inhibited, and the
    webhook gets HostDown alone."""
    target = next(h for h in stack.hosts if "monitoring" not in h.roles)
    alertmanager = monitoring.replace(":9090", ":9093")

    def on_target(command: str) -> None:
        result = ssh.run(paths, stack.admin.user, str(target.address), command, timeout=60)
        assert result.returncode == 0, result.stderr

    consequences = [{"labels": {"alertname": name, "severity": "warning", "host": target.name,
                                "job": job, "podium_test": "inhibition"},
                     "annotations": {"summary": "posted by the inhibition test"}}
                    for name, job in [("TargetDown", "postgres"), ("TargetDown", "redis"),
                                      ("DiskSpaceLow", "node"), ("MemoryPressure", "node")]]
    on_target("sudo systemctl stop prometheus-node-exporter")
    stopped = time.monotonic()
    try:
        _wait("HostDown firing", lambda: any(
            a["labels"]["alertname"] == "HostDown" and a["labels"].get("host") == target.name
            and a["state"] == "firing"
            for a in _get(f"{monitoring}/api/v1/alerts")["data"]["alerts"]), timeout=180)
        print(f"\nnode exporter stopped -> HostDown firing: {time.monotonic() - stopped:.0f}s")
        _post_alerts(alertmanager, consequences)

        def mine() -> list[dict]:
            return [a for a in _get(f"{alertmanager}/api/v2/alerts")
                    if a["labels"].get("podium_test") == "inhibition"]

        inhibited = _wait("the posted alerts to be inhibited", lambda: len(mine()) == 4 and all(
            a["status"]["inhibitedBy"] for a in mine()) and mine(), timeout=60)
        assert all(a["status"]["state"] == "suppressed" for a in inhibited)
        _wait("HostDown at the webhook", lambda: any(
            a["labels"]["alertname"] == "HostDown" and a["labels"].get("host") == target.name
            for _at, p in RECEIVED for a in p["alerts"]), timeout=120)
        # Past group_wait of the posted alerts' groups: nothing of theirs was sent.
        time.sleep(40)
        sent = {a["labels"].get("podium_test") for _at, p in RECEIVED
                for a in p["alerts"]}
        assert "inhibition" not in sent
    finally:
        on_target("sudo systemctl start prometheus-node-exporter")
        # Resolve the posted alerts at once (an end time in the past).
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        _post_alerts(alertmanager, [{**a, "endsAt": now} for a in consequences])


def _postgres_hosts(stack):
    hosts = [h for h in stack.hosts if "postgres" in h.roles]
    if len(hosts) < 2:
        pytest.skip(f"stack '{stack.name}' has no PostgreSQL replica")
    return hosts[0], hosts[1]


def test_stopping_the_replica_fires_the_replication_alerts_and_mails_the_operator(
        stack, paths, monitoring):
    """PostgreSQL stopped on the replica: the primary's slot for it goes inactive
    (PostgresReplicationBroken on the primary) and its exporter loses it (PostgresDown);
    the alert reaches the webhook and, as mail, the operator's mailbox; restarting the
    replica resolves both."""
    primary, replica = _postgres_hosts(stack)
    slot = re.sub(r"[^a-z0-9_]", "_", replica.name.lower())

    def on_replica(command: str) -> None:
        result = ssh.run(paths, stack.admin.user, str(replica.address), command, timeout=120)
        assert result.returncode == 0, result.stderr

    broken = {"host": primary.name, "slot_name": slot}
    stopped_at = time.time()
    on_replica("sudo systemctl stop postgresql@17-main")
    stopped = time.monotonic()
    try:
        alert = _wait("PostgresReplicationBroken firing", lambda: (
            a := _alert(monitoring, "PostgresReplicationBroken", **broken))
            and a["state"] == "firing" and a, timeout=240)
        fired = time.monotonic()
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"].endswith("/postgres-replication.md")
        _wait("PostgresDown firing on the replica", lambda: (
            a := _alert(monitoring, "PostgresDown", host=replica.name))
            and a["state"] == "firing", timeout=120)
        at, _ = _wait("the replication notification at the webhook", lambda: _notified(
            "PostgresReplicationBroken", "firing", **broken), timeout=180)
        subject = _operator_mail(stack, paths, "PostgresReplicationBroken", stopped_at)
        mailed = time.monotonic()
        assert "PostgresReplicationBroken" in subject
        print(f"\nreplica stopped -> firing in Prometheus: {fired - stopped:.0f}s; "
              f"-> webhook: {at - stopped:.0f}s; -> mail in {stack.admin.email}: "
              f"{mailed - stopped:.0f}s (subject: {subject})")
    finally:
        on_replica("sudo systemctl start postgresql@17-main")
    restored = time.monotonic()
    _wait("the replication alerts to resolve", lambda: not _alert(
        monitoring, "PostgresReplicationBroken", **broken) and not _alert(
        monitoring, "PostgresDown", host=replica.name), timeout=240)
    print(f"replica restarted -> alerts gone from Prometheus: {time.monotonic() - restored:.0f}s")


def test_a_backup_older_than_its_limit_fires_the_backup_alert_and_mails_the_operator(
        stack, paths, monitoring):
    """The backup age limit set to 0 hours on the monitoring host (every real backup figure
    is then too old): BackupTooOld fires on the real figure the backup host exports, reaches
    the webhook and the operator's mailbox, and resolves with the normal limit."""
    if not any("backup" in h.roles for h in stack.hosts):
        pytest.skip(f"stack '{stack.name}' has no backup host")
    assert _alert(monitoring, "BackupTooOld") is None, "a backup is already too old"
    started_at = time.time()
    _converge_monitoring(stack, paths, "converge-fault-backup-age",
                         "-e", '{"monitoring_alert_backup_max_age_hours": 0}')
    changed = time.monotonic()
    try:
        alert = _wait("BackupTooOld firing", lambda: (a := _alert(monitoring, "BackupTooOld"))
                      and a["state"] == "firing" and a, timeout=180)
        fired = time.monotonic()
        assert alert["annotations"]["runbook_url"].endswith("/backup-age.md")
        _wait("BackupTooOld at the webhook",
              lambda: _notified("BackupTooOld", "firing"), timeout=180)
        subject = _operator_mail(stack, paths, "BackupTooOld", started_at)
        print(f"\nlimit lowered -> BackupTooOld firing: {fired - changed:.0f}s; "
              f"-> mail: {time.monotonic() - changed:.0f}s (subject: {subject})")
    finally:
        _converge_monitoring(stack, paths, "converge-fault-backup-age-undo")
    _wait("BackupTooOld to resolve", lambda: _alert(monitoring, "BackupTooOld") is None,
          timeout=180)


def _run_on(stack, paths, host, command: str, timeout: int = 120) -> str:
    result = ssh.run(paths, stack.admin.user, str(host.address), command, timeout=timeout)
    assert result.returncode == 0, f"{host.name}: {command}: {result.stderr}"
    return result.stdout


def test_blocking_the_backup_repository_fires_wal_archiving_and_mails_the_operator(
        stack, paths, monitoring):
    """A real backup fault: the pgBackRest TLS server on the backup host stopped (the
    repository unreachable), then a write and a WAL switch on the primary. archive_command
    fails, WalArchiveFailing fires from the primary's pg_stat_archiver counters (failures,
    no file archived for 5 minutes) and reaches the webhook
    and the operator's mailbox; with the server started again the primary's retries get the
    WAL through (archived count rises) and the alert resolves."""
    backup = next((h for h in stack.hosts if "backup" in h.roles), None)
    if backup is None:
        pytest.skip(f"stack '{stack.name}' has no backup host")
    primary, _replica = _postgres_hosts(stack)

    def archiver() -> tuple[int, int]:
        out = _run_on(stack, paths, primary, "sudo -u postgres psql -XAtc "
                      "'SELECT archived_count, failed_count FROM pg_stat_archiver'")
        archived, failed = out.strip().split("|")
        return int(archived), int(failed)

    assert _alert(monitoring, "WalArchiveFailing") is None, "WAL archiving already fails"
    archived_before, failed_before = archiver()
    started_at = time.time()
    _run_on(stack, paths, backup, "sudo systemctl stop pgbackrest-server")
    blocked = time.monotonic()
    try:
        # Something to archive: a WAL record (no table needed) and a switch to a new segment.
        _run_on(stack, paths, primary, "sudo -u postgres psql -XAtq "
                "-c \"SELECT pg_logical_emit_message(false, 'podium-fault-test', 'x')\" "
                "-c 'SELECT pg_switch_wal()'")
        alert = _wait("WalArchiveFailing firing", lambda: (
            a := _alert(monitoring, "WalArchiveFailing", host=primary.name))
            and a["state"] == "firing" and a, timeout=480)  # 5-minute window: see the rule
        fired = time.monotonic()
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"].endswith("/backup-age.md")
        archived, failed = archiver()
        assert failed > failed_before and archived == archived_before, (
            "the alert fired without archive_command failing")
        at, _ = _wait("WalArchiveFailing at the webhook", lambda: _notified(
            "WalArchiveFailing", "firing", host=primary.name), timeout=180)
        subject = _operator_mail(stack, paths, "WalArchiveFailing", started_at)
        mailed = time.monotonic()
        assert "WalArchiveFailing" in subject
        print(f"\nrepository blocked -> WalArchiveFailing firing: {fired - blocked:.0f}s; "
              f"-> webhook: {at - blocked:.0f}s; -> mail in {stack.admin.email}: "
              f"{mailed - blocked:.0f}s ({failed - failed_before} failed archive attempts)")
    finally:
        _run_on(stack, paths, backup, "sudo systemctl start pgbackrest-server")
    unblocked = time.monotonic()
    _wait("archiving to catch up", lambda: archiver()[0] > archived_before, timeout=240)
    caught_up = time.monotonic()
    _wait("WalArchiveFailing to resolve", lambda: _alert(
        monitoring, "WalArchiveFailing", host=primary.name) is None, timeout=180)
    print(f"repository back -> WAL archived: {caught_up - unblocked:.0f}s; -> alert gone "
          f"from Prometheus: {time.monotonic() - unblocked:.0f}s")


def test_the_watchdog_pings_the_deadmansswitch_until_prometheus_dies(stack, paths, monitoring):
    """The dead-man's switch (docs/runbooks/watchdog.md), with the receiver standing in for
    the outside service: Watchdog pings arrive every interval; with Prometheus stopped they
    stop (after Alertmanager's copy of the alert expires: up to 4 minutes after the last
    send with the production resend delay and evaluation interval, 1 with the test's; the
    switch's grace period must cover that), and resume once it is back.
    Runs last: Prometheus is down for several minutes."""
    mon = next(h for h in stack.hosts if "monitoring" in h.roles)
    seen = len(WATCHDOG)
    _wait("two Watchdog pings", lambda: len(WATCHDOG) >= seen + 2,
          timeout=WATCHDOG_INTERVAL * 4 + 60)
    gaps = [b - a for a, b in zip(WATCHDOG[seen:], WATCHDOG[seen + 1:], strict=False)]
    assert all(gap < WATCHDOG_INTERVAL * 3 for gap in gaps), gaps
    silence = WATCHDOG_INTERVAL * 4
    _run_on(stack, paths, mon, "sudo systemctl stop prometheus")
    stopped = time.monotonic()
    try:
        _wait(f"the pings to stop ({silence}s without one)",
              lambda: time.monotonic() - WATCHDOG[-1] > silence, timeout=420, every=5)
        last = WATCHDOG[-1]
        print(f"\nprometheus stopped -> last Watchdog ping: {last - stopped:.0f}s; the switch "
              f"sees {silence}s of silence at {last - stopped + silence:.0f}s")
    finally:
        _run_on(stack, paths, mon, "sudo systemctl start prometheus")
    restarted = time.monotonic()
    _wait("the pings to resume", lambda: WATCHDOG[-1] > restarted, timeout=180)
    print(f"prometheus started -> pings again: {WATCHDOG[-1] - restarted:.0f}s")
