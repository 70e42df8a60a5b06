"""./podium status --health: firing alerts and each host's key figures, from Prometheus.

Reads Prometheus's HTTP API on the stack's first monitoring host, at its private address
(the lab reaches it over the bridge; in the cloud Prometheus listens on the private network
only, so run this where that network is reachable, or pass --prometheus URL through an SSH
tunnel: ssh -L 9090:PRIVATE:9090 ...).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import yaml

from kit.console import table
from kit.errors import PodiumError
from kit.paths import StackPaths, shown

TIMEOUT = 5  # seconds per API call
PROMETHEUS_PORT = 9090
ALWAYS_FIRING = "Watchdog"

# Per-host figures: PromQL giving one value per `host` label.
_FS = 'fstype!~"ramfs|squashfs|nsfs|iso9660"'
FIGURES = {
    "targets up": 'count by (host) (up == 1)',
    "targets": 'count by (host) (up)',
    "cpu %": '100 * (1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m])))',
    "load1": 'max by (host) (node_load1)',
    "mem %": ('max by (host) (100 * (1 - node_memory_MemAvailable_bytes '
              '/ node_memory_MemTotal_bytes))'),
    "disk %": (f'max by (host) (100 * (1 - node_filesystem_avail_bytes{{{_FS}}} '
               f'/ node_filesystem_size_bytes{{{_FS}}}) and on (instance, mountpoint) '
               f'node_filesystem_readonly == 0)'),
}


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    host: str
    summary: str
    since: str


def prometheus_url(stack_name: str) -> str:
    """The URL of the stack's Prometheus, from its inventory; PodiumError when there is none."""
    inventory_path = StackPaths(stack_name).inventory
    if not inventory_path.is_file():
        raise PodiumError(
            f"stack '{stack_name}' has no inventory ({shown(inventory_path)})",
            f"bring it up first: ./podium up --stack {stack_name} (cloud stacks: ./podium "
            "inventory)",
        )
    inventory = yaml.safe_load(inventory_path.read_text())["all"]
    members = list((inventory.get("children", {}).get("monitoring") or {}).get("hosts") or {})
    if not members:
        raise PodiumError(
            f"stack '{stack_name}' has no monitoring host, so there is no Prometheus to ask",
            "add the role 'monitoring' to a host in the stack file and run ./podium up "
            f"--stack {stack_name}",
        )
    host = inventory["hosts"][members[0]]
    return f"http://{host['podium_private_address']}:{PROMETHEUS_PORT}"


def _get(base: str, path: str, params: dict | None = None) -> object:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PodiumError(
            f"Prometheus at {base} is unreachable or did not answer ({reason})",
            "check the monitoring host: ./podium status, then ./podium ssh <monitoring host> "
            "-- systemctl status prometheus",
        ) from None
    if body.get("status") != "success":
        raise PodiumError(f"Prometheus at {base} refused {path}: {body.get('error', body)}")
    return body["data"]


def firing_alerts(base: str) -> list[Alert]:
    alerts = []
    for alert in _get(base, "/api/v1/alerts")["alerts"]:
        if alert.get("state") != "firing":
            continue
        labels = alert["labels"]
        alerts.append(Alert(labels["alertname"], labels.get("severity", "-"),
                            labels.get("host", "-"), alert["annotations"].get("summary", ""),
                            alert.get("activeAt", "")[:19].replace("T", " ")))
    order = {"critical": 0, "warning": 1}
    return sorted(alerts, key=lambda a: (order.get(a.severity, 2), a.name, a.host))


def host_figures(base: str) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for name, query in FIGURES.items():
        for sample in _get(base, "/api/v1/query", {"query": query})["result"]:
            host = sample["metric"].get("host")
            if host:
                figures.setdefault(host, {})[name] = float(sample["value"][1])
    return figures


def _cell(values: dict[str, float], name: str, fmt: str = "{:.0f}") -> str:
    return fmt.format(values[name]) if name in values else "-"


def render(alerts: list[Alert], figures: dict[str, dict[str, float]], base: str) -> str:
    lines = [f"Prometheus {base}"]
    real = [a for a in alerts if a.name != ALWAYS_FIRING]
    watchdog = any(a.name == ALWAYS_FIRING for a in alerts)
    lines.append("alerting pipeline: " + ("Watchdog firing (rules are evaluated)" if watchdog
                                          else "Watchdog NOT firing: rules are not evaluated"))
    lines.append("")
    if real:
        lines.append(f"{len(real)} alert(s) firing:")
        lines.append(table([[a.severity, a.name, a.host, a.since, a.summary] for a in real],
                           ["severity", "alert", "host", "since (UTC)", "summary"]))
    else:
        lines.append("no alerts firing")
    lines.append("")
    rows = []
    for host in sorted(figures):
        values = figures[host]
        targets = f"{_cell(values, 'targets up')}/{_cell(values, 'targets')}"
        rows.append([host, targets, _cell(values, "cpu %"), _cell(values, "load1", "{:.2f}"),
                     _cell(values, "mem %"), _cell(values, "disk %")])
    lines.append(table(rows, ["host", "targets up", "cpu %", "load1", "mem %", "fullest disk %"]))
    return "\n".join(lines)


def health(stack_name: str, url: str | None = None) -> int:
    """Print the report; 1 when a critical alert fires (for scripts), else 0."""
    base = (url or prometheus_url(stack_name)).rstrip("/")
    alerts = firing_alerts(base)
    print(f"stack '{stack_name}': " + render(alerts, host_figures(base), base))
    return 1 if any(a.severity == "critical" for a in alerts) else 0
