"""The node_exporter role, on every host: running, bound to the private address only."""

from __future__ import annotations

testinfra_hosts = ["ansible://all"]


def _port(stack_vars: dict) -> int:
    (entry,) = [e for e in stack_vars["podium_role_ports"]["common"] if e.get("metrics") == "node"]
    return entry["port"]


def test_node_exporter_running_and_enabled(host):
    unit = host.service("prometheus-node-exporter")
    assert unit.is_running
    assert unit.is_enabled


def test_node_exporter_listens_on_the_private_address_only(host, host_vars, stack_vars):
    port = _port(stack_vars)
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")]
    assert listening == [f"tcp://{host_vars['podium_private_address']}:{port}"]


def _fetch(host, url: str):
    """GET ``url`` on the host itself (python3 is on every host; curl is not)."""
    script = ("import sys, urllib.request; "
              "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
    return host.run(f"python3 -c '{script}' {url}")


def test_node_exporter_refuses_loopback(host, stack_vars):
    """Bound to one address: nothing answers on 127.0.0.1 (the socket is not a wildcard)."""
    result = _fetch(host, f"http://127.0.0.1:{_port(stack_vars)}/metrics")
    assert result.rc != 0
    assert "Connection refused" in result.stderr


def test_node_exporter_serves_node_metrics(host, host_vars, stack_vars):
    result = _fetch(host, f"http://{host_vars['podium_private_address']}:{_port(stack_vars)}/metrics")
    assert result.rc == 0, result.stderr
    assert "node_filesystem_avail_bytes{" in result.stdout
    assert "node_textfile_scrape_error 0" in result.stdout


def test_node_exporter_gathers_without_errors(host, host_vars, stack_vars):
    """Duplicate series (e.g. nspawn's /run/host bind mounts repeating the host's disk) make
    every scrape an error. The second scrape reports the first one's outcome."""
    url = f"http://{host_vars['podium_private_address']}:{_port(stack_vars)}/metrics"
    _fetch(host, url)
    result = _fetch(host, url)
    assert result.rc == 0, result.stderr
    assert 'promhttp_metric_handler_errors_total{cause="gathering"} 0' in result.stdout
