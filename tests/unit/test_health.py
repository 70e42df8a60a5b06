"""./podium status --health against a stand-in Prometheus API on loopback."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from kit import health
from kit.cli import main
from kit.errors import PodiumError
from kit.paths import StackPaths

ALERTS = [
    {"labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {"summary": "w"},
     "state": "firing", "activeAt": "2026-01-01T10:00:00Z"},
    {"labels": {"alertname": "DiskSpaceLow", "severity": "warning", "host": "web1"},
     "annotations": {"summary": "web1: /srv is 85% full"}, "state": "firing",
     "activeAt": "2026-01-01T10:05:00.123Z"},
    {"labels": {"alertname": "HostDown", "severity": "critical", "host": "db1"},
     "annotations": {"summary": "db1 is down"}, "state": "firing",
     "activeAt": "2026-01-01T10:06:00Z"},
    {"labels": {"alertname": "MemoryPressure", "severity": "warning", "host": "web1"},
     "annotations": {"summary": "pending only"}, "state": "pending", "activeAt": ""},
]
FIGURES = {"targets up": {"web1": 2, "db1": 1}, "targets": {"web1": 2, "db1": 2},
           "cpu %": {"web1": 12.4}, "load1": {"web1": 0.5}, "mem %": {"web1": 40.2},
           "disk %": {"web1": 85.3}}


class _FakePrometheus(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v1/alerts":
            data = {"alerts": ALERTS}
        elif url.path == "/api/v1/query":
            query = urllib.parse.parse_qs(url.query)["query"][0]
            (name,) = [n for n, q in health.FIGURES.items() if q == query]
            data = {"resultType": "vector", "result": [
                {"metric": {"host": h}, "value": [0, str(v)]} for h, v in FIGURES[name].items()]}
        else:
            self.send_error(404)
            return
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def prometheus():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_report_lists_firing_alerts_critical_first_and_host_figures(prometheus, capsys):
    code = health.health("any", prometheus)
    out = capsys.readouterr().out
    assert code == 1  # a critical alert fires
    assert "Watchdog firing" in out
    assert "2 alert(s) firing" in out  # the pending one and the Watchdog are not listed
    assert out.index("HostDown") < out.index("DiskSpaceLow")
    assert "pending only" not in out
    web1 = next(line for line in out.splitlines() if line.startswith("web1 "))
    assert web1.split() == ["web1", "2/2", "12", "0.50", "40", "85"]
    db1 = next(line for line in out.splitlines() if line.startswith("db1 "))
    assert db1.split() == ["db1", "1/2", "-", "-", "-", "-"]


def _write_inventory(stack: str, children: dict) -> None:
    path = StackPaths(stack).inventory
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"all": {
        "hosts": {"web1": {"podium_private_address": "10.9.9.11"},
                  "mon1": {"podium_private_address": "10.9.9.81"}},
        "children": children}}))


@pytest.fixture()
def fake_stack():
    name = "unit-health-test"
    yield name
    path = StackPaths(name).inventory
    path.unlink(missing_ok=True)
    path.parent.rmdir()


def test_url_is_the_monitoring_hosts_private_address(fake_stack):
    _write_inventory(fake_stack, {"monitoring": {"hosts": {"mon1": None}}})
    assert health.prometheus_url(fake_stack) == "http://10.9.9.81:9090"


def test_a_stack_without_monitoring_host_is_a_clear_error(fake_stack, capsys):
    _write_inventory(fake_stack, {})
    assert main(["status", "--health", "--stack", fake_stack]) == 2
    err = capsys.readouterr().err
    assert f"stack '{fake_stack}' has no monitoring host" in err
    assert "add the role 'monitoring'" in err


def test_a_stack_that_is_not_up_is_a_clear_error(capsys):
    assert main(["status", "--health", "--stack", "never-up"]) == 2
    assert "stack 'never-up' has no inventory" in capsys.readouterr().err


def test_an_unreachable_prometheus_is_a_clear_error():
    # A closed loopback port: refused at once.
    with pytest.raises(PodiumError, match=r"Prometheus at http://127.0.0.1:9 is unreachable"):
        health.health("any", "http://127.0.0.1:9")
