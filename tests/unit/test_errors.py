"""The failures the issue lists must each produce a clear error, never a traceback.

These use real parts of this host (network interfaces, systemd-nspawn, ansible-playbook)
but touch no lab: every name and subnet here is the tests' own and removed afterwards.
"""

from __future__ import annotations

import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from kit import aptproxy, host, ssh
from kit.ansible import run_playbook
from kit.errors import PodiumError
from kit.machines import Machine
from kit.paths import StackPaths
from kit.stack import parse_stack

TEST_CIDR = "10.213.250.0/24"


def _stack(name: str = "errtest", cidr: str = TEST_CIDR, bridge: str = "pd-errtest"):
    prefix = cidr.rsplit(".", 1)[0]
    text = f"""
config:
  podium:provider: local
  podium:domain: podium.test
  podium:mode: desk
  podium:admin: {{user: podium, email: ops@podium.test, ssh_cidrs: ["{prefix}.1/32"]}}
  podium:network: {{cidr: "{cidr}"}}
  podium:lab: {{bridge: {bridge}}}
  podium:hosts:
    - {{name: solo, roles: [app], size: small, address: "{prefix}.10"}}
"""
    return parse_stack(name, text, f"infra/stacks/Pulumi.{name}.yaml")


@pytest.fixture()
def squatter():
    """An interface holding an address in the test subnet, as another tool's might.

    A bridge rather than a dummy interface: some kernels here lack the dummy module.
    """
    subprocess.run(["ip", "link", "add", "pdsquat0", "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "10.213.250.5/24", "dev", "pdsquat0"], check=True)
    yield
    subprocess.run(["ip", "link", "del", "pdsquat0"], check=False)


def test_subnet_already_in_use_is_refused_before_creating_anything(squatter):
    stack = _stack()
    with pytest.raises(PodiumError) as caught:
        host.ensure_bridge(stack, "infra/stacks/Pulumi.errtest.yaml", lambda _: None)
    message = caught.value.render()
    assert "10.213.250.0/24" in message
    assert "interface pdsquat0 has 10.213.250.5/24" in message
    assert "podium:network.cidr" in message
    assert not host.bridge_exists("pd-errtest")


def test_missing_nspawn_is_explained(monkeypatch):
    monkeypatch.setattr(host.shutil, "which", lambda _: None)
    with pytest.raises(PodiumError, match="systemd-nspawn is not available"):
        host.check_nspawn()


def test_unreachable_apt_proxy_is_named():
    # Nothing of ours listens on loopback's proxy port.
    with pytest.raises(PodiumError) as caught:
        aptproxy.check("127.0.0.1", "trixie")
    expected = f"the apt proxy is unreachable at http://127.0.0.1:{aptproxy.PORT}"
    assert expected in caught.value.message


def _mini_image(tmp_path: Path) -> Path:
    """An 'image' that is not an OS tree: nspawn refuses to boot it."""
    content = tmp_path / "content"
    (content / "etc").mkdir(parents=True)
    image = tmp_path / "image.tar"
    with tarfile.open(image, "w") as tar:
        tar.add(content / "etc", arcname="etc")
    return image


def test_host_that_does_not_boot_shows_its_console(tmp_path, monkeypatch):
    stack = _stack()
    paths = StackPaths("errtest")
    monkeypatch.setattr(StackPaths, "machines", property(lambda self: tmp_path / "machines"))
    monkeypatch.setattr(StackPaths, "state", property(lambda self: tmp_path / "state"))
    machine = Machine(stack, stack.hosts[0], paths)
    machine.create(_mini_image(tmp_path), ["ssh-ed25519 AAAA test"], "")
    machine.boot()
    with pytest.raises(PodiumError) as caught:
        ssh.wait_ready(paths, "podium", "10.213.250.10", "solo",
                       lambda: machine.pid() is not None, 30, machine.console_tail)
    err = caught.value
    assert "host solo did not boot" in err.message
    assert "console" in err.hint
    assert err.detail.strip()  # the console's last lines are shown


def test_ssh_that_never_comes_up_names_host_and_attempt(tmp_path):
    paths = StackPaths("errtest")
    started = time.monotonic()
    with pytest.raises(PodiumError) as caught:
        # 192.0.2.0/24 is TEST-NET-1: never routed, so nothing ever answers.
        ssh.wait_ready(paths, "podium", "192.0.2.10", "ghost", lambda: True, 3,
                       lambda: "(console tail)")
    err = caught.value
    assert "SSH never came up on host ghost" in err.message
    assert "podium@192.0.2.10:22" in err.message
    assert err.detail == "(console tail)"
    assert time.monotonic() - started < 30


def test_interrupted_machine_creation_is_started_over(tmp_path, monkeypatch):
    monkeypatch.setattr(StackPaths, "machines", property(lambda self: tmp_path / "machines"))
    stack = _stack()
    machine = Machine(stack, stack.hosts[0], StackPaths("errtest"))
    machine.root.mkdir(parents=True)
    (machine.root / "half-unpacked").write_text("")
    assert not machine.created()
    machine.create(_mini_image(tmp_path), ["ssh-ed25519 AAAA test"], "")
    assert machine.created()
    assert not (machine.root / "half-unpacked").exists()
    assert (machine.root / "var/lib/cloud/seed/nocloud/user-data").is_file()
    assert len((machine.root / "etc/machine-id").read_text().strip()) == 32


def test_ansible_failure_names_host_role_and_task(tmp_path, monkeypatch):
    monkeypatch.setattr(StackPaths, "state", property(lambda self: tmp_path / "state"))
    paths = StackPaths("errtest")
    paths.inventory.parent.mkdir(parents=True)
    paths.inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    role = tmp_path / "roles" / "breaker" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(
        "- name: Break on purpose\n  ansible.builtin.fail:\n    msg: the disk is on fire\n")
    playbook = tmp_path / "break.yml"
    playbook.write_text(
        "- name: Break\n  hosts: all\n  gather_facts: false\n  roles: [breaker]\n")
    monkeypatch.setenv("ANSIBLE_ROLES_PATH", str(tmp_path / "roles"))
    with pytest.raises(PodiumError) as caught:
        run_playbook(paths, str(playbook), "converge")
    message = caught.value.message
    assert "role breaker, task 'breaker : Break on purpose' on localhost" in message
    assert "the disk is on fire" in message
    assert "converge-" in caught.value.hint
