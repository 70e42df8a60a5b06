"""The proxy role: HAProxy on the private address in front of every app host, with a
runtime API for drain/enable and a Prometheus endpoint."""

from __future__ import annotations

import pytest

from kit.labapi import HAPROXY_RUNTIME, HAPROXY_SOCKET

testinfra_hosts = ["ansible://proxy"]

FRONTEND_PORT = 8080
METRICS_PORT = 8405
SOCKET = HAPROXY_SOCKET


def _runtime(host, command: str) -> str:
    with host.sudo():
        result = host.run(HAPROXY_RUNTIME + f"{SOCKET} '{command}'")
    assert result.rc == 0, result.stderr
    return result.stdout


@pytest.fixture()
def app_hosts(inventory) -> list[str]:
    return list((inventory["all"]["children"].get("app") or {}).get("hosts") or {})


def test_haproxy_running_and_enabled(host):
    haproxy = host.service("haproxy")
    assert haproxy.is_running
    assert haproxy.is_enabled


def test_frontend_listens_only_on_the_private_address(host, host_vars):
    listening = [s for s in host.socket.get_listening_sockets()
                 if s.endswith(f":{FRONTEND_PORT}")]
    assert listening == [f"tcp://{host_vars['podium_private_address']}:{FRONTEND_PORT}"]


def test_metrics_endpoint_is_not_public_until_the_table_opens_it(host, host_vars, stack_vars):
    opened = any(rule["port"] == METRICS_PORT
                 for rule in stack_vars["podium_role_ports"].get("proxy", []))
    expected = host_vars["podium_private_address"] if opened else "127.0.0.1"
    listening = [s for s in host.socket.get_listening_sockets()
                 if s.endswith(f":{METRICS_PORT}")]
    assert listening == [f"tcp://{expected}:{METRICS_PORT}"]


def test_prometheus_endpoint_reports_the_app_backend(host, host_vars, stack_vars):
    opened = any(rule["port"] == METRICS_PORT
                 for rule in stack_vars["podium_role_ports"].get("proxy", []))
    address = host_vars["podium_private_address"] if opened else "127.0.0.1"
    result = host.run(
        "python3 -c 'import urllib.request,sys; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "
        f"http://{address}:{METRICS_PORT}/metrics")
    assert result.rc == 0, result.stderr
    assert 'haproxy_backend_status{proxy="app",state="UP"}' in result.stdout


def test_the_apps_metrics_are_not_served_through_the_balancer(host, host_vars):
    """Prometheus scrapes /metrics on each app host; the balancer's frontend, which the edges
    (or a provider's public load balancer) forward to, answers 404 for it."""
    result = host.run(
        "python3 -c 'import urllib.request,urllib.error,sys\n"
        "try: urllib.request.urlopen(sys.argv[1], timeout=10)\n"
        "except urllib.error.HTTPError as e: print(e.code)' "
        f"http://{host_vars['podium_private_address']}:{FRONTEND_PORT}/metrics")
    assert result.stdout.strip() == "404", (result.stdout, result.stderr)


def test_runtime_api_lists_every_app_host(host, app_hosts):
    state = _runtime(host, "show servers state app")
    names = {line.split()[3] for line in state.splitlines()[2:] if line.strip()}
    assert names == set(app_hosts)


def test_runtime_api_socket_is_admin_only(host):
    socket_file = host.file(SOCKET)
    assert socket_file.is_socket
    assert socket_file.group == "haproxy"
    assert socket_file.mode == 0o660


def test_runtime_api_can_drain_and_enable_a_server(host, app_hosts):
    """What a rolling deploy does (community.general.haproxy drain=true, then enabled)."""
    server = app_hosts[0]
    _runtime(host, f"set server app/{server} state drain")
    try:
        line = next(li for li in _runtime(host, "show servers state app").splitlines()
                    if f" {server} " in li)
        # srv_admin_state bit 0x08 is "drained by the runtime API".
        assert int(line.split()[6]) & 0x08
    finally:
        _runtime(host, f"set server app/{server} state ready")
    line = next(li for li in _runtime(host, "show servers state app").splitlines()
                if f" {server} " in li)
    assert int(line.split()[6]) & 0x08 == 0


def test_health_check_uses_readyz(host):
    with host.sudo():
        config = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert "http-check send meth GET uri /readyz" in config
    assert "http-check expect status 200" in config


def test_connection_limits_are_set(host):
    info = _runtime(host, "show info")
    maxconn = int(next(li for li in info.splitlines() if li.startswith("Maxconn:")).split()[1])
    assert 0 < maxconn <= 20000
