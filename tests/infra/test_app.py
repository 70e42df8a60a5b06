"""The app role: sandboxed units, the private listener, readiness, and where settings point."""

from __future__ import annotations

import json
import urllib.request

import pytest

testinfra_hosts = ["ansible://app"]

UNITS = ["podium-app-web", "podium-app-worker"]


def _env(host) -> dict[str, str]:
    with host.sudo():
        text = host.file("/etc/podium/app.env").content_string
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line
             and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


@pytest.mark.parametrize("unit", UNITS)
def test_app_unit_running_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("unit", UNITS)
def test_app_unit_is_sandboxed(host, unit):
    shown = host.run("systemctl show %s -p User -p NoNewPrivileges -p ProtectSystem "
                     "-p PrivateTmp -p ProtectHome -p CapabilityBoundingSet", unit).stdout
    props = dict(line.split("=", 1) for line in shown.splitlines())
    assert props["User"] == "podium-app"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["ProtectHome"] == "yes"
    assert props["CapabilityBoundingSet"] == ""


def test_app_processes_run_as_the_app_user(host):
    assert host.user("podium-app").shell == "/usr/sbin/nologin"
    processes = host.process.filter(comm="podium-app")
    assert processes
    assert {p.user for p in processes} == {"podium-app"}


def test_app_listens_only_on_the_private_address(host, host_vars):
    bound = {s.split("://", 1)[1].rsplit(":", 1)[0]
             for s in host.socket.get_listening_sockets() if s.endswith(":8000")}
    assert bound == {host_vars["podium_private_address"]}


def test_app_is_ready_on_its_private_address(host_vars):
    url = f"http://{host_vars['podium_private_address']}:8000/readyz"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        body = json.load(response)
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}


def test_app_writes_through_pgbouncer_and_reads_from_the_replica(host, inventory):
    env = _env(host)
    hosts = inventory["all"]["hosts"]
    postgres = list(inventory["all"]["children"]["postgres"]["hosts"])
    write = env["PODIUM_DATABASE_URL"].rsplit("@", 1)[1]
    assert write == f"{hosts[postgres[0]]['podium_private_address']}:6432/podium"
    if len(postgres) > 1:
        read = env["PODIUM_DATABASE_READ_URL"].rsplit("@", 1)[1]
        assert read == f"{hosts[postgres[1]]['podium_private_address']}:5432/podium"


def test_app_settings_are_readable_only_by_root_and_the_app(host):
    settings = host.file("/etc/podium/app.env")
    assert settings.user == "root"
    assert settings.group == "podium-app"
    assert settings.mode == 0o640


def test_app_runs_from_the_current_release_venv(host):
    """`current` links to a release whose venv (installed from copied wheels) imports the app."""
    current = host.file("/opt/podium/app/current")
    assert current.is_symlink
    result = host.run("/opt/podium/app/current/venv/bin/python -c 'import podium_app'")
    assert result.rc == 0, result.stderr
