"""The Ansible side checked without hosts: lint, argument specs, the report callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kit.paths import REPO

BIN = Path(sys.executable).parent


def _playbook(tmp_path: Path, plays: list[dict], extra_env: dict | None = None,
              inventory: str = "localhost,"):
    """Run ``plays`` on the controller (``inventory``: Ansible's -i, by default localhost
    alone); the process result and the report callback's JSON."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(plays))
    report = tmp_path / "report.json"
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "plugins" / "callback"),
           "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
           "PODIUM_ANSIBLE_REPORT": str(report), **(extra_env or {})}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", inventory, "-c", "local", str(playbook)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )
    data = json.loads(report.read_text()) if report.is_file() else {}
    return result, data


def test_ansible_lint_production_profile_is_clean():
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor",
         "playbooks/site.yml", "roles/"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_callback_records_changes_and_failures(tmp_path):
    marker = tmp_path / "marker"
    plays = [{
        "name": "Exercise the report", "hosts": "all", "gather_facts": False,
        "tasks": [
            {"name": "Make a change", "ansible.builtin.copy": {
                "dest": str(marker), "content": "x", "mode": "0644"}},
            {"name": "Fail on purpose", "ansible.builtin.fail": {"msg": "planned failure"}},
        ],
    }]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    assert [c["task"] for c in report["changed"]] == ["Make a change"]
    (failure,) = report["failures"]
    assert failure["host"] == "localhost"
    assert failure["task"] == "Fail on purpose"
    assert "planned failure" in failure["message"]
    assert report["hosts"]["localhost"]["failures"] == 1


@pytest.mark.parametrize(("variable", "value"), [
    ("common_admin_ssh_keys", {"not": "a list"}),
    ("common_fail2ban_maxretry", "many"),
])
def test_common_role_rejects_bad_variables_before_changing_anything(tmp_path, variable, value):
    plays = [{
        "name": "Apply common with a bad variable", "hosts": "all", "gather_facts": False,
        "vars": {"common_admin_ssh_keys": ["ssh-ed25519 AAAA test"],
                 "common_firewall_role_ports": {"common": []}, "common_firewall_sources": {},
                 variable: value},
        "roles": ["common"],
    }]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    (failure,) = report["failures"]
    assert "arg spec" in failure["task"].lower() or "argument" in failure["task"].lower()
    assert variable in failure["message"]
    assert report["changed"] == []


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "."], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("role", "variables", "named"), [
    ("media", {"media_listen_address": "10.0.0.51", "media_writers": []}, "media_writers"),
    ("media", {"media_listen_address": "203.0.113.5", "media_writers": ["10.0.0.31"]},
     "media_listen_address"),
    ("proxy", {"proxy_listen_address": "10.0.0.20", "proxy_servers": []}, "proxy_servers"),
    ("proxy", {"proxy_listen_address": "10.0.0.20", "proxy_servers": [{"name": "app1"}]},
     "proxy_servers"),
    ("edge", {"edge_platform_upstreams": [], "edge_media_upstreams": ["10.0.0.51:8081"]},
     "edge_platform_upstreams"),
    ("edge", {"edge_platform_upstreams": ["10.0.0.20"], "edge_media_upstreams": ["10.0.0.51:8081"]},
     "edge_platform_upstreams"),
    ("edge", {"edge_platform_upstreams": ["10.0.0.20:8080"],
              "edge_media_upstreams": ["10.0.0.51:8081"], "edge_certificate_source": "bought"},
     "edge_certificate_source"),
])
def test_platform_roles_reject_bad_variables_before_changing_anything(tmp_path, role, variables,
                                                                      named):
    plays = [{"name": f"Apply {role} with a bad variable", "hosts": "all",
              "gather_facts": False, "vars": variables, "roles": [role]}]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    (failure,) = report["failures"]
    assert named in failure["message"]
    assert report["changed"] == []
