"""The provider load balancer's private address, from the Pulumi program to the edges
(issue 8): the program exports it, kit.inventory carries it, the edge role's upstream and the
app's trusted forwarders use it. The program runs under pulumi.runtime.set_mocks; the group
variables are evaluated by Ansible itself against the written inventory.
"""

from __future__ import annotations

import json
import subprocess

import pulumi
import pytest
from test_ansible_tree import BIN

from kit import dkim, inventory
from kit.errors import PodiumError
from kit.paths import REPO, StackPaths
from kit.pulumi_mocks import install
from kit.stack import load_stack, role_ports

PROXY_PORT = next(p["port"] for p in role_ports()["proxy"] if p["proto"] == "tcp")


@pytest.fixture
def secrets_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(StackPaths, "secrets", property(lambda self: tmp_path / self.stack))


def _variables(tmp_path, data: dict, host: str, names: list[str],
               environ: dict[str, str] | None = None) -> dict:
    """``names`` as Ansible evaluates them for ``host`` with playbooks/group_vars, with
    ``environ`` added to the controller's environment."""
    path = tmp_path / "inventory.yml"
    inventory.write(data, path)
    found = {}
    for name in names:
        result = subprocess.run(
            [str(BIN / "ansible"), host, "-i", str(path), "--playbook-dir",
             str(REPO / "playbooks"), "-e", "ansible_connection=local", "-o",
             "-m", "ansible.builtin.debug", "-a", f"var={name}"],
            capture_output=True, text=True, cwd=REPO, timeout=120,
            env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin",
                 "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"), **(environ or {})})
        assert result.returncode == 0, result.stdout + result.stderr
        found[name] = json.loads(result.stdout.split("=>", 1)[1])[name]
    return found


@pytest.mark.parametrize("stack_name", ["hetzner", "scaleway"])
@pulumi.runtime.test
def test_edges_send_to_the_provider_load_balancers_exported_address(stack_name, tmp_path,
                                                                     secrets_in_tmp):
    dkim.ensure_keys(StackPaths(stack_name).secrets)
    install(stack_name)
    from topology import build

    stack = load_stack(stack_name)
    assert stack.load_balancer == "provider"
    platform = build(stack)
    assert platform.load_balancer_address is not None

    def check(address):
        # What `pulumi stack output --json` gives kit/cloud.py for this program.
        outputs = {"servers": {h.name: {"ipv4": f"198.51.100.{n}"}
                               for n, h in enumerate(stack.hosts, 1)},
                   "load_balancer_address": address}
        lb = inventory.load_balancer_address_from_outputs(stack, outputs)
        data = inventory.build(stack, StackPaths(stack.name),
                               public_addresses=inventory.public_addresses_from_outputs(
                                   stack, outputs), load_balancer_address=lb)
        assert address == stack.load_balancer_address
        assert data["all"]["vars"]["podium_load_balancer_address"] == address
        edge = next(h.name for h in stack.hosts if "edge" in h.roles)
        app = next(h.name for h in stack.hosts if "app" in h.roles)
        assert _variables(tmp_path, data, edge, ["edge_platform_upstreams"]) == {
            "edge_platform_upstreams": [f"{address}:{PROXY_PORT}"]}
        assert _variables(tmp_path, data, app, ["app_forwarded_allow_ips"]) == {
            "app_forwarded_allow_ips": [address]}

    return platform.load_balancer_address.apply(check)


def test_edges_send_to_the_proxy_hosts_without_a_provider_load_balancer(tmp_path,
                                                                       secrets_in_tmp):
    stack = load_stack("local")
    data = inventory.build(stack, StackPaths(stack.name), "ssh-ed25519 AAAA lab")
    assert data["all"]["vars"]["podium_load_balancer_address"] == ""
    proxies = [str(h.address) for h in stack.hosts if "proxy" in h.roles]
    assert _variables(tmp_path, data, "edge1", ["edge_platform_upstreams"]) == {
        "edge_platform_upstreams": [f"{a}:{PROXY_PORT}" for a in proxies]}


def test_outputs_without_the_load_balancers_address_are_refused():
    stack = load_stack("hetzner")
    outputs = {"servers": {h.name: {"ipv4": "198.51.100.1"} for h in stack.hosts}}
    with pytest.raises(PodiumError, match="no 'load_balancer_address'"):
        inventory.load_balancer_address_from_outputs(stack, outputs)
    assert inventory.load_balancer_address_from_outputs(load_stack("hetzner-mini"), {}) is None
