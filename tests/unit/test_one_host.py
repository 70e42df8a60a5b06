"""Templates that must behave when one host holds every role (the local-mini stack): the
host's own name on its private address (decision 0260), and a pgBackRest repository on the
database host reaching its cluster locally (decision 0261)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_role_templates import _render, _template

from kit.errors import PodiumError
from kit.paths import REPO
from kit.stack import parse_stack, platform_roles, port_collisions, role_ports

COMMON = REPO / "roles" / "common"
BACKUP = REPO / "roles" / "backup"
STACK = """config:
  podium:provider: local
  podium:domain: podium.test
  podium:mode: desk
  podium:admin: {{user: podium, email: ops@podium.test, ssh_cidrs: [10.9.0.1/32]}}
  podium:network: {{cidr: 10.9.0.0/24}}
  podium:lab: {{bridge: pd-t}}
  podium:hosts:
    - {{name: solo, roles: {roles}, size: small, address: 10.9.0.10}}
"""


def _hosts_file(tmp_path: Path, entries: list[dict]) -> list[list[str]]:
    _render(tmp_path, [COMMON / "defaults" / "main.yml"],
            {"common_hostname": "solo", "common_domain": "podium.test",
             "common_hosts_entries": entries},
            [_template(COMMON / "templates/etc/hosts.j2", tmp_path / "hosts")])
    return [line.split() for line in (tmp_path / "hosts").read_text().splitlines()
            if line and not line.startswith("#")]


def _addresses(lines: list[list[str]], name: str) -> list[str]:
    return [line[0] for line in lines if name in line[1:]]


def test_own_name_resolves_to_the_private_address_only(tmp_path):
    lines = _hosts_file(tmp_path, [{"name": "solo", "address": "10.213.1.10"},
                                   {"name": "db1", "address": "10.213.1.41"}])
    assert _addresses(lines, "solo") == ["10.213.1.10"]
    assert _addresses(lines, "solo.podium.test") == ["10.213.1.10"]
    assert _addresses(lines, "db1") == ["10.213.1.41"]
    assert "127.0.1.1" not in [line[0] for line in lines]


def test_own_name_without_a_known_address_keeps_debians_loopback_line(tmp_path):
    lines = _hosts_file(tmp_path, [{"name": "db1", "address": "10.213.1.41"}])
    assert _addresses(lines, "solo") == ["127.0.1.1"]


def _pgbackrest_conf(tmp_path: Path, repo: str, postgres: list[str]) -> str:
    _render(tmp_path, [BACKUP / "defaults" / "main.yml", BACKUP / "vars" / "main.yml"],
            {"backup_repo_host": repo, "backup_postgres_hosts": postgres,
             "backup_cipher_pass": "x" * 40, "ansible_host": "10.0.0.5"},
            [_template(BACKUP / "templates/etc/pgbackrest/pgbackrest.conf.j2",
                       tmp_path / "pgbackrest.conf")])
    return (tmp_path / "pgbackrest.conf").read_text()


def test_repository_on_the_database_host_reaches_its_cluster_locally(tmp_path):
    conf = _pgbackrest_conf(tmp_path, "localhost", ["localhost"])
    assert "pg1-path=/var/lib/postgresql/17/main" in conf
    assert "pg1-host" not in conf
    assert "repo1-path=/var/lib/pgbackrest" in conf and "repo1-host" not in conf
    assert "archive-async=y" in conf
    assert "backup-standby=n" in conf


@pytest.mark.parametrize("postgres", [["db1"], ["db1", "db2"]])
def test_repository_host_reaches_other_database_hosts_over_tls(tmp_path, postgres):
    conf = _pgbackrest_conf(tmp_path, "localhost", postgres)
    for index, name in enumerate(postgres, start=1):
        assert f"pg{index}-host={name}\npg{index}-host-type=tls" in conf
    assert "archive-async" not in conf


def test_every_role_on_one_host_claims_no_port_twice():
    """local-mini holds every platform role: the ports two roles share are served by one
    daemon. (A lab-only test double may collide: the S3 stand-in takes 443 like the edge, and
    the stack validation keeps them apart.)"""
    assert port_collisions(["common", *platform_roles()]) == []


def test_roles_claiming_the_same_port_cannot_share_a_host(monkeypatch):
    table = {**role_ports(), "extra": [{"port": 8080, "proto": "tcp", "from": "private",
                                        "why": "a second listener on the proxy's port"}]}
    monkeypatch.setattr("kit.stack.role_ports", lambda: table)
    assert port_collisions(["proxy", "extra"]) == ["tcp/8080: extra, proxy"]
    with pytest.raises(PodiumError) as caught:
        parse_stack("t", STACK.format(roles="[proxy, extra]"), "t.yaml")
    assert "podium:hosts[0].roles" in caught.value.message + caught.value.hint
    assert "tcp/8080: extra, proxy" in caught.value.message + caught.value.hint
