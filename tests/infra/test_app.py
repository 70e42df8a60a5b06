"""The app role: sandboxed units, the private listener, readiness, and where settings point."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from kit.drillkit import PRIMARY_VARS

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


def _hosts_and_kind(url: str) -> tuple[list[str], str]:
    query = urllib.parse.parse_qs(url.split("?", 1)[1])
    return query["host"], query["target_session_attrs"][0]


def test_app_writes_through_every_pgbouncer_primary_first(host, inventory, pytestconfig):
    """Every PostgreSQL host's PgBouncer, the primary first (the one the kit recorded after a
    failover): a promoted replica takes writes with no change here (decision 0160)."""
    env = _env(host)
    hosts = inventory["all"]["hosts"]
    postgres = list(inventory["all"]["children"]["postgres"]["hosts"])
    recorded = Path(pytestconfig.option.ansible_inventory).parent / PRIMARY_VARS
    primary = (yaml.safe_load(recorded.read_text())["podium_postgres_primary"]
               if recorded.is_file() else postgres[0])
    others = [name for name in postgres if name != primary]
    assert _hosts_and_kind(env["PODIUM_DATABASE_URL"]) == (
        [f"{hosts[name]['podium_private_address']}:6432" for name in [primary, *others]],
        "read-write")
    if others:
        assert _hosts_and_kind(env["PODIUM_DATABASE_READ_URL"]) == (
            [f"{hosts[name]['podium_private_address']}:5432" for name in [*others, primary]],
            "prefer-standby")


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
