"""./podium up/down for cloud stacks, against a FAKE `pulumi` on PATH.

The Pulumi CLI is the cloud API boundary, so it is the one thing faked: a small script that
records its argv and prints canned `stack output --json`. The Ansible and testinfra steps
need real servers (the fake addresses are documentation ranges nobody may contact), so their
exact commands are recorded instead of run.
"""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from kit import cloud
from kit.ansible import VENV_BIN
from kit.cli import main
from kit.paths import StackPaths
from kit.stack import load_stack

FAKE_PULUMI = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_PULUMI_LOG"
case "$*" in
  "$FAKE_PULUMI_FAIL"*) echo "fake pulumi: $1 failed" >&2; exit 1 ;;
  "stack output"*) cat "$FAKE_PULUMI_OUTPUTS" ;;
  up*) echo "Updating (fake)"; echo "Resources: + 42 created" ;;
esac
exit 0
"""

CREDENTIALS = {"HCLOUD_TOKEN": "x", "SCW_ACCESS_KEY": "x", "SCW_SECRET_KEY": "x",
               "MINIO_USER": "x", "MINIO_PASSWORD": "x"}


@pytest.fixture
def fake_pulumi(tmp_path, monkeypatch):
    """A fake pulumi first on PATH; returns a function giving the recorded invocations."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    log = tmp_path / "pulumi.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "no-such-command")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(StackPaths, "state", property(lambda self: tmp_path / "state" /
                                                      self.stack))
    monkeypatch.setattr(StackPaths, "secrets", property(lambda self: tmp_path / "secrets" /
                                                        self.stack))
    return lambda: [shlex.split(line) for line in log.read_text().splitlines()]


def _outputs(tmp_path, monkeypatch, stack_name: str) -> dict:
    stack = load_stack(stack_name)
    outputs = {"servers": {h.name: {"ipv4": f"198.51.100.{i + 10}", "private": str(h.address),
                                    "roles": h.roles} for i, h in enumerate(stack.hosts)},
               "provider": stack.provider}
    if stack.load_balancer == "provider":  # infra/__main__.py exports it then
        outputs["load_balancer_address"] = stack.load_balancer_address
    if stack.offsite is not None:  # likewise
        outputs["offsite_bucket"] = f"podium-{stack.name}-offsite"
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", str(path))
    return outputs


@pytest.mark.parametrize("stack_name", ["hetzner", "scaleway"])
def test_up_runs_pulumi_then_writes_the_inventory_then_converges_and_checks(
        stack_name, fake_pulumi, tmp_path, monkeypatch):
    outputs = _outputs(tmp_path, monkeypatch, stack_name)
    commands: list[list[str]] = []
    converged: list[StackPaths] = []
    stack = load_stack(stack_name)

    inventory = cloud.up(stack, runner=commands.append, converge=converged.append)

    assert fake_pulumi() == [
        ["stack", "select", "--create", stack_name],
        ["up", "--stack", stack_name, "--yes"],
        ["stack", "output", "--json", "--stack", stack_name],
    ]
    inv = yaml.safe_load(inventory.read_text())
    for name, entry in outputs["servers"].items():
        assert inv["all"]["hosts"][name]["ansible_host"] == entry["ipv4"]
    paths = StackPaths(stack_name)
    assert inventory == paths.inventory
    assert commands == [
        [str(VENV_BIN / "ansible"), "all", "-i", str(inventory), "-m",
         "ansible.builtin.wait_for_connection", "-a", "timeout=600"],
        [str(VENV_BIN / "ansible"), "all", "-i", str(inventory), "-m",
         "ansible.builtin.command", "-a", "cloud-init status --wait"],
        [str(VENV_BIN / "pytest"), "-q", "tests/infra", f"--ansible-inventory={inventory}"],
    ]
    assert converged == [paths]
    # The DKIM keys exist before `pulumi up`, so its first run publishes the record.
    assert sorted(p.name for p in (paths.secrets / "dkim").iterdir()) == [
        "podium1.key", "podium1.pub"]


def test_up_shows_pulumis_progress(fake_pulumi, tmp_path, monkeypatch, capfd):
    _outputs(tmp_path, monkeypatch, "hetzner-mini")
    cloud.up(load_stack("hetzner-mini"), run_tests=False, runner=lambda cmd: None,
             converge=lambda paths: None)
    out, err = capfd.readouterr()
    assert "Resources: + 42 created" in out  # pulumi's own output, not hidden
    assert "pulumi up --stack hetzner-mini --yes" in err


def test_up_stops_when_pulumi_up_fails_and_writes_no_inventory(fake_pulumi, tmp_path,
                                                               monkeypatch, capsys):
    _outputs(tmp_path, monkeypatch, "hetzner")
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "up")
    assert main(["up", "--stack", "hetzner"]) == 2
    assert "create or update the infrastructure failed" in capsys.readouterr().err
    assert [c[0] for c in fake_pulumi()] == ["stack", "up"]
    assert not StackPaths("hetzner").inventory.exists()


def test_up_without_the_pulumi_cli_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["up", "--stack", "scaleway"]) == 2
    err = capsys.readouterr().err
    assert "the Pulumi CLI is not installed" in err
    assert "https://www.pulumi.com/docs/install/" in err


@pytest.mark.parametrize(("stack_name", "unset", "hint"), [
    ("hetzner", "HCLOUD_TOKEN", "pulumi config set --secret hcloud:token"),
    ("hetzner", "SCW_SECRET_KEY", "pulumi config set --secret scaleway:secretKey"),
    ("scaleway", "SCW_ACCESS_KEY", "pulumi config set --secret scaleway:accessKey"),
    ("scaleway", "MINIO_PASSWORD", "pulumi config set --secret minio:minioPassword"),
])
def test_up_without_credentials_names_them_and_runs_nothing(
        stack_name, unset, hint, fake_pulumi, monkeypatch, capsys):
    monkeypatch.delenv(unset)
    assert main(["up", "--stack", stack_name]) == 2
    err = capsys.readouterr().err
    assert f"credentials missing for stack '{stack_name}'" in err
    assert unset in err and hint in err
    assert fake_pulumi() == []


def test_down_destroys_after_the_stack_name_is_typed_and_keeps_protected_data(
        fake_pulumi, monkeypatch, capsys):
    StackPaths("hetzner").state.mkdir(parents=True)
    assert cloud.down(load_stack("hetzner"), ask=lambda prompt: "hetzner") is True
    assert fake_pulumi() == [["destroy", "--stack", "hetzner", "--yes", "--exclude-protected"]]
    out = capsys.readouterr().out
    assert "data volumes" in out and "offsite backup bucket" in out
    assert "pulumi state unprotect" in out
    assert not StackPaths("hetzner").state.exists()


def test_down_without_confirmation_destroys_nothing(fake_pulumi, capsys):
    assert cloud.down(load_stack("scaleway"), ask=lambda prompt: "yes") is False
    assert fake_pulumi() == []
    assert "nothing was destroyed" in capsys.readouterr().err


def test_down_yes_skips_the_question_for_ci(fake_pulumi, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked anyway"))
    assert main(["down", "--stack", "scaleway", "--yes"]) == 0
    assert fake_pulumi() == [["destroy", "--stack", "scaleway", "--yes", "--exclude-protected"]]


def test_up_keeps_existing_dkim_keys(fake_pulumi, tmp_path, monkeypatch):
    _outputs(tmp_path, monkeypatch, "hetzner")
    stack = load_stack("hetzner")
    cloud.up(stack, runner=lambda cmd: None, converge=lambda paths: None)
    key = StackPaths("hetzner").secrets / "dkim" / "podium1.key"
    first = key.read_bytes()
    assert key.stat().st_mode & 0o077 == 0
    cloud.up(stack, runner=lambda cmd: None, converge=lambda paths: None)
    assert key.read_bytes() == first


def test_inventory_without_a_file_reads_the_state_backend(fake_pulumi, tmp_path, monkeypatch,
                                                          capsys):
    """`./podium inventory --stack X` runs `pulumi stack output` itself (only the state
    backend: no `up`, no provider credentials needed), as ./podium recover asks for a lost
    stack."""
    outputs = _outputs(tmp_path, monkeypatch, "hetzner")
    for name in CREDENTIALS:
        monkeypatch.delenv(name)
    assert main(["inventory", "--stack", "hetzner"]) == 0
    assert fake_pulumi() == [["stack", "output", "--json", "--stack", "hetzner"]]
    inv = yaml.safe_load(StackPaths("hetzner").inventory.read_text())
    assert inv["all"]["vars"]["podium_offsite"]["bucket"] == outputs["offsite_bucket"]
    # A lab stack's inventory is ./podium up's to write.
    assert main(["inventory", "--stack", "lab-provb"]) == 2
    assert "is a lab stack: ./podium up writes its inventory" in capsys.readouterr().err
    # Without the CLI: said, with the saved-file alternative.
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["inventory", "--stack", "hetzner"]) == 2
    assert "--pulumi-outputs FILE" in capsys.readouterr().err
