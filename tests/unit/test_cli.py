"""The ./podium entry point: help everywhere, clear refusals, no tracebacks."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kit.cli import build_parser, main
from kit.paths import REPO

COMMANDS = ["up", "down", "status", "ssh", "converge", "deploy", "inventory", "plan", "bench",
            "test"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command, capsys):
    argv = [command, "--help"] if command else ["--help"]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ./podium")
    if command in ("up", "down", "ssh", "converge", "deploy"):
        assert "--stack NAME" in out


def test_unknown_stack_is_a_clear_error_not_a_traceback(capsys):
    code = main(["up", "--stack", "no-such-stack"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: no stack file for stack 'no-such-stack'" in err
    assert "what to do:" in err
    assert "Traceback" not in err


def test_deploy_to_a_stack_that_is_not_up_is_clear(capsys):
    assert main(["deploy", "--stack", "never-up"]) == 2
    err = capsys.readouterr().err
    assert "stack 'never-up' has no inventory" in err
    assert "./podium up --stack never-up" in err


def test_ssh_to_a_stack_that_is_not_up_is_clear(capsys):
    assert main(["ssh", "--stack", "never-up", "db1"]) == 2
    assert "stack 'never-up' is not up" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_podium_refuses_to_run_as_non_root():
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         str(REPO / "podium"), "status"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "must run as root" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_lists_resources_firewall_openings_and_dns_offline():
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "kit", "plan", "--stack", "hetzner-mini"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "hcloud:index/server:Server" in out
    assert "solo    tcp/22" in out and "203.0.113.0/24" in out
    assert "_dmarc" in out and "MX" in out


def test_plan_refuses_a_lab_stack(capsys):
    assert main(["plan", "--stack", "local"]) == 2
    assert "plan is for cloud stacks" in capsys.readouterr().err


def test_inventory_from_pulumi_outputs_is_written_in_the_labs_shape(tmp_path, monkeypatch):
    import json

    import yaml

    from kit.paths import StackPaths
    from kit.stack import load_stack

    monkeypatch.setattr(StackPaths, "state", property(lambda self: tmp_path / self.stack))
    monkeypatch.setattr(StackPaths, "secrets", property(lambda self: tmp_path / "secrets"))
    stack = load_stack("hetzner")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"servers": {
        h.name: {"ipv4": f"198.51.100.{i + 10}", "private": str(h.address)}
        for i, h in enumerate(stack.hosts)}, "load_balancer_address": "10.20.1.254",
        "offsite_bucket": "podium-hetzner-offsite"}))
    assert main(["inventory", "--stack", "hetzner", "--pulumi-outputs", str(outputs)]) == 0
    inv = yaml.safe_load((tmp_path / "hetzner" / "inventory.yml").read_text())
    assert inv["all"]["hosts"]["db1"]["ansible_host"].startswith("198.51.100.")
    assert inv["all"]["hosts"]["db1"]["podium_private_address"] == "10.20.1.41"
    assert "ansible_ssh_private_key_file" not in inv["all"]["vars"]
    assert set(inv["all"]["children"]["app"]["hosts"]) == {"app1", "app2"}
    assert inv["all"]["vars"]["podium_load_balancer_address"] == "10.20.1.254"
    assert inv["all"]["vars"]["podium_offsite"]["bucket"] == "podium-hetzner-offsite"


def test_inventory_from_unreadable_outputs_says_how_to_make_them(capsys, tmp_path):
    assert main(["inventory", "--stack", "hetzner", "--pulumi-outputs",
                 str(tmp_path / "missing.json")]) == 2
    assert "pulumi stack output --json --stack hetzner" in capsys.readouterr().err
