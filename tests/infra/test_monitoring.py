"""The monitoring role: Prometheus and Alertmanager on the private address, every target up.

Expected targets come from the inventory and the role-to-ports table (entries with
`metrics: JOB`), the same source the role generates its scrape jobs from.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from kit import health

testinfra_hosts = ["ansible://monitoring"]

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture()
def prometheus(host_vars) -> str:
    return f"http://{host_vars['podium_private_address']}:{PROMETHEUS_PORT}"


@pytest.fixture()
def alertmanager(host_vars) -> str:
    return f"http://{host_vars['podium_private_address']}:{ALERTMANAGER_PORT}"


def expected_targets(inventory: dict, monitoring_host: str) -> set[tuple[str, str]]:
    """(job, host) for every exporter the role-to-ports table declares on the stack's hosts."""
    everything = inventory["all"]
    groups = {role: list((child or {}).get("hosts") or {})
              for role, child in everything.get("children", {}).items()}
    expected = {("prometheus", monitoring_host), ("alertmanager", monitoring_host)}
    # TLS probes (playbooks/group_vars/all/monitoring.yml): edges and mail hosts.
    # TLS probes (playbooks/group_vars/all/monitoring.yml): the edges and the mail host alerts
    # go through (the first).
    expected |= {("tls-edge", member) for member in groups.get("edge", [])}
    expected |= {("tls-mail", member) for member in groups.get("mail", [])[:1]}
    for role, entries in everything["vars"]["podium_role_ports"].items():
        members = list(everything["hosts"]) if role == "common" else groups.get(role, [])
        for entry in entries:
            if entry.get("metrics"):
                # metrics_host_var names one host (postgres_primary_host: by the kit's
                # default the first of the group).
                scraped = members[:1] if entry.get("metrics_host_var") else members
                expected |= {(entry["metrics"], member) for member in scraped}
    return expected


@pytest.mark.parametrize("unit", ["prometheus", "prometheus-alertmanager",
                                  "prometheus-blackbox-exporter"])
def test_service_running_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("port", [PROMETHEUS_PORT, ALERTMANAGER_PORT])
def test_listens_on_the_private_address_only(host, host_vars, port):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")]
    assert listening == [f"tcp://{host_vars['podium_private_address']}:{port}"]


def test_blackbox_exporter_listens_on_loopback_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":9115")]
    assert listening == ["tcp://127.0.0.1:9115"]


def test_alertmanager_does_not_gossip(host):
    """One Alertmanager per stack: no cluster port (9094) is open."""
    assert not [s for s in host.socket.get_listening_sockets() if s.endswith(":9094")]


def test_every_target_is_up(host, inventory, prometheus):
    """Every exporter of the table, on every host of its role, scraped and up."""
    expected = expected_targets(inventory, host.backend.get_hostname())
    deadline = time.monotonic() + 90  # a fresh converge: give each target a scrape or two
    while True:
        active = _get(f"{prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"].get("host")): t for t in active}
        down = {k: t["lastError"] or t["health"] for k, t in seen.items() if t["health"] != "up"}
        if set(seen) == expected and not down:
            break
        if time.monotonic() > deadline:
            assert set(seen) == expected
            assert not down
        time.sleep(5)


def test_every_target_is_a_private_address(inventory, prometheus):
    active = _get(f"{prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
    hosts = inventory["all"]["hosts"]
    for target in active:
        address = urllib.parse.urlsplit(target["scrapeUrl"]).hostname
        if target["labels"]["job"].startswith("tls-"):
            # Certificate probes are scraped from the blackbox exporter on the monitoring
            # host's loopback, which then connects to the probed host.
            assert address == "127.0.0.1"
            continue
        assert address == hosts[target["labels"]["host"]]["podium_private_address"]


def test_rules_loaded_with_runbooks(prometheus):
    groups = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    alerts = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
    assert {"HostDown", "DiskSpaceLow", "Watchdog"} <= {a["name"] for a in alerts}
    assert all(a["annotations"]["runbook_url"].endswith(".md") for a in alerts)
    assert all(g["lastError"] == "" for g in groups for g in g["rules"] if "lastError" in g)


def test_watchdog_reaches_alertmanager(alertmanager):
    """Prometheus evaluates rules and delivers to Alertmanager: the always-firing Watchdog."""
    deadline = time.monotonic() + 90
    while True:
        names = {a["labels"]["alertname"] for a in _get(f"{alertmanager}/api/v2/alerts")}
        if "Watchdog" in names or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert "Watchdog" in names


def test_retention_is_set(prometheus):
    flags = _get(f"{prometheus}/api/v1/status/flags")["data"]
    assert flags["storage.tsdb.retention.time"] != "0s"
    assert flags["storage.tsdb.retention.size"] not in ("0B", "0")


def test_alerts_are_resent_at_the_converged_delay(prometheus):
    """monitoring_alert_resend_delay reaches Prometheus (it sets how long the Watchdog
    outlives a dead Prometheus, docs/runbooks/watchdog.md)."""
    flags = _get(f"{prometheus}/api/v1/status/flags")["data"]
    assert flags["rules.alert.resend-delay"] == "1m"


def test_alertmanager_config_routes_by_alert_name_with_inhibition(alertmanager):
    config = _get(f"{alertmanager}/api/v2/status")["config"]["original"]
    assert "group_by:\n  - alertname" in config
    assert 'alertname="HostDown"' in config.replace(" = ", "=").replace('"', '"')


def test_status_health_has_every_figure_for_every_host(inventory, prometheus):
    """./podium status --health's own queries (kit/health.py) against this Prometheus: every
    inventory host has every figure, each in its range, and the Watchdog is among the alerts."""
    hosts = set(inventory["all"]["hosts"])
    deadline = time.monotonic() + 120  # cpu % is a 5-minute rate: two scrapes after a boot
    while True:
        figures = health.host_figures(prometheus)
        missing = {h: sorted(set(health.FIGURES) - set(figures.get(h, {}))) for h in hosts}
        missing = {h: names for h, names in missing.items() if names}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(10)
    assert not missing, f"figures missing for: {missing}"
    for host in hosts:
        values = figures[host]
        assert values["targets up"] == values["targets"] >= 1, host
        for name in ("cpu %", "mem %", "disk %"):
            assert 0 <= values[name] <= 100, (host, name, values[name])
        assert values["load1"] >= 0, host
    alerts = health.firing_alerts(prometheus)
    assert health.ALWAYS_FIRING in {a.name for a in alerts}
    report = health.render(alerts, figures, prometheus)
    assert all(host in report for host in hosts)
