"""./podium recover between two cloud stacks (decision 0298): where the kit finds the
buckets, their keys and the servers, and what it refuses before anything changes.

The servers are at a provider this machine cannot reach (documentation ranges, which nobody
may contact), so the one step that would connect, `Remote._ssh` (Fabric), is a FAKE that
records what it was asked and answers for the addresses it is told are up. The Fabric
connection's settings and the `ssh` command lines are checked as built, without connecting;
the transport itself is tested against a loopback SSH server (test_remote_transport.py).
The lab's gated recovery (tests/lab/test_recover.py) and the drills in `./podium test` run
the same code against real hosts: Fabric over the inventory, the API through an SSH forward,
the buckets bucket to bucket.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from paramiko import AutoAddPolicy, RejectPolicy

from kit import cli, drill, inventory, paths, recover
from kit.drillkit import Remote
from kit.errors import PodiumError
from kit.offsitefetch import Bucket, rclone_command
from kit.paths import StackPaths
from kit.reach import of_stack
from kit.stack import load_stack

KEYS = ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "MINIO_USER", "MINIO_PASSWORD")


@pytest.fixture
def cloud_pair(tmp_path, monkeypatch):
    """State under tmp_path, Remote._ssh replaced by a stand-in, no bucket keys in the
    environment; returns a function writing a stack's inventory the way the runbook does
    (``./podium inventory`` from ``pulumi stack output --json``)."""
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / ".podium")
    monkeypatch.setenv("HOSTS_DOWN", "")
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)

    def touched(*args, **kwargs):
        raise AssertionError("a host or the stack would have been changed")

    monkeypatch.setattr(recover, "run_playbook", touched)

    def fabric_stand_in(self, name, command, timeout, data=None):
        """Remote._ssh without a network: each call logged, exit 255 (as ssh) for the
        addresses in HOSTS_DOWN, 0 for the others."""
        destination = f"{self.reach.user}@{self.reach.address(name)}"
        with open(tmp_path / "ssh.log", "a") as log:
            log.write(shlex.join([destination, command]) + "\n")
        down = self.reach.address(name) in os.environ["HOSTS_DOWN"].split()
        return subprocess.CompletedProcess(command, 255 if down else 0, b"",
                                           b"timed out" if down else b"")

    monkeypatch.setattr(Remote, "_ssh", fabric_stand_in)

    def write_inventory(stack_name: str, first: int) -> dict[str, str]:
        stack = load_stack(stack_name)
        public = {h.name: f"198.51.100.{first + i}" for i, h in enumerate(stack.hosts)}
        outputs = {"servers": {h.name: {"ipv4": public[h.name], "private": str(h.address),
                                        "roles": h.roles} for h in stack.hosts},
                   "provider": stack.provider,
                   "offsite_bucket": f"podium-{stack_name}-offsite"}
        if stack.load_balancer == "provider":
            outputs["load_balancer_address"] = stack.load_balancer_address
        file = tmp_path / f"{stack_name}-outputs.json"
        file.write_text(json.dumps(outputs))
        assert cli.main(["inventory", "--stack", stack_name, "--pulumi-outputs",
                         str(file)]) == 0
        return public

    return write_inventory


def _ssh_calls(tmp_path) -> list[list[str]]:
    log = tmp_path / "ssh.log"
    return [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_cloud_pair_is_accepted_with_allow_cloud_only():
    source, target = load_stack("hetzner"), load_stack("scaleway")
    recover.check_pair(target, source, allow_cloud=True)  # no error: both cloud, both offsite
    with pytest.raises(PodiumError, match="'scaleway' is a scaleway stack: recovery replaces"):
        recover.check_pair(target, source, allow_cloud=False)
    assert recover.has_bucket(source) and recover.repo1_in_bucket(target)


def test_a_lost_stack_without_an_inventory_says_how_to_write_one(cloud_pair, capsys):
    assert cli.main(["recover", "--stack", "scaleway", "--from", "hetzner",
                     "--allow-cloud"]) == 2
    err = capsys.readouterr().err
    assert "does not name the offsite bucket of 'hetzner'" in err
    assert "state backend keeps them" in err and "./podium inventory --stack hetzner" in err


def test_the_lost_stacks_bucket_comes_from_its_inventory_and_the_keys_from_the_env(
        cloud_pair, monkeypatch, capsys, tmp_path):
    cloud_pair("hetzner", 10)
    # Without the key pair: named, with what to do, before anything is touched.
    assert cli.main(["recover", "--stack", "scaleway", "--from", "hetzner",
                     "--allow-cloud"]) == 2
    err = capsys.readouterr().err
    assert "SCW_ACCESS_KEY and SCW_SECRET_KEY" in err
    assert "podium-hetzner-offsite at scaleway" in err and "export SCW_ACCESS_KEY=" in err
    monkeypatch.setenv("SCW_ACCESS_KEY", "scw-key")
    monkeypatch.setenv("SCW_SECRET_KEY", "scw-secret")
    bucket = recover.stack_bucket(load_stack("hetzner"), StackPaths("hetzner"))
    assert bucket == Bucket("s3.fr-par.scw.cloud", "podium-hetzner-offsite", "fr-par",
                            "scw-key", "scw-secret", "lost", ca_file="")
    # A provider's endpoint is verified with the system's CAs: no lab CA anywhere.
    lines = bucket.repo_lines("/var/lib/pgbackrest")
    assert not any("ca-file" in line for line in lines)
    assert "repo1-s3-endpoint=s3.fr-par.scw.cloud" in lines
    assert rclone_command("/run/x.conf", bucket.ca_file) == "sudo rclone --config /run/x.conf"
    assert rclone_command("/run/x.conf", "/ca.crt").endswith("--ca-cert /ca.crt")
    # B's own bucket next: its inventory is missing, and that is said.
    assert cli.main(["recover", "--stack", "scaleway", "--from", "hetzner",
                     "--allow-cloud"]) == 2
    assert "does not name the offsite bucket of 'scaleway'" in capsys.readouterr().err
    assert _ssh_calls(tmp_path) == []  # no server was contacted before all this held


def test_the_recovering_stacks_servers_must_answer_ssh(cloud_pair, monkeypatch, tmp_path,
                                                       capsys):
    cloud_pair("hetzner", 10)
    public = cloud_pair("scaleway", 40)
    for name in KEYS:
        monkeypatch.setenv(name, "x")
    down = sorted(public)[:2]
    monkeypatch.setenv("HOSTS_DOWN", " ".join(public[h] for h in down))
    assert cli.main(["recover", "--stack", "scaleway", "--from", "hetzner",
                     "--allow-cloud"]) == 2
    err = capsys.readouterr().err
    assert "stack 'scaleway': hosts not answering SSH as" in err
    for host in down:
        assert f"{host} ({public[host]})" in err
    assert "provider's console" in err
    # Every host was asked, and only `true` was run: nothing changed.
    calls = _ssh_calls(tmp_path)
    assert sorted(call[-2].split("@")[1] for call in calls) == sorted(public.values())
    assert {call[-1] for call in calls} == {"true"}


def test_cloud_ssh_uses_the_operators_key_and_the_public_address(cloud_pair, tmp_path):
    public = cloud_pair("hetzner", 10)
    stack = load_stack("hetzner")
    remote = Remote(stack, StackPaths("hetzner"))
    command = remote.ssh_command("db1", "-N")
    options = " ".join(command)
    assert command[0] == "ssh" and command[-1] == f"{stack.admin.user}@{public['db1']}"
    assert command[-2] == "-N"  # extra options before the destination
    assert "-i " not in options  # no lab key: the agent's or ~/.ssh's, as Ansible
    assert "StrictHostKeyChecking=accept-new" in options and "BatchMode=yes" in options
    assert f"UserKnownHostsFile={StackPaths('hetzner').known_hosts.resolve()}" in options
    # Fabric's connection, built the same way (not opened): no key of ours, the agent
    # allowed, the stack's known-hosts file, a new host's key accepted once.
    conn = remote.reach.connection("db1")
    assert (conn.host, conn.user) == (public["db1"], stack.admin.user)
    assert "key_filename" not in conn.connect_kwargs
    assert conn.connect_kwargs.get("allow_agent", True) is not False
    assert conn.connect_timeout == 5
    assert isinstance(conn.client._policy, AutoAddPolicy)
    assert conn.client._host_keys_filename == str(StackPaths("hetzner").known_hosts.resolve())
    # All up: the stack is returned as loaded, with the hosts asked once each.
    loaded, _ = drill.load_up_stack("hetzner", True, {"backup": 1}, cloud_ready=True)
    assert loaded.name == "hetzner" and len(_ssh_calls(tmp_path)) == len(stack.hosts)
    # The drills themselves still refuse cloud stacks.
    with pytest.raises(PodiumError, match="drills on cloud stacks are not implemented"):
        drill.load_up_stack("hetzner", True, {"backup": 1})


def test_lab_ssh_from_the_inventory_is_the_lab_key_and_strict(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / ".podium")
    stack = load_stack("lab-provb")
    stack_paths = StackPaths("lab-provb")
    before = of_stack(stack, stack_paths)  # no inventory yet: the lab's own defaults
    inventory.write(inventory.build(stack, stack_paths), stack_paths.inventory)
    after = of_stack(stack, stack_paths)
    assert after.addresses == before.addresses == {h.name: str(h.address) for h in stack.hosts}
    for reach in (before, after):
        key = reach.options[reach.options.index("-i") + 1]
        assert Path(key).resolve() == stack_paths.ssh_key.resolve()
        options = " ".join(reach.options)
        assert "StrictHostKeyChecking=yes" in options and "BatchMode=yes" in options
        assert Path(reach.key).resolve() == stack_paths.ssh_key.resolve()
        assert reach.known_hosts.resolve() == stack_paths.known_hosts.resolve()
        assert not reach.accept_new
        conn = reach.connection("db1")
        assert conn.connect_kwargs == {"key_filename": [str(reach.key)],
                                       "look_for_keys": False, "allow_agent": False}
        assert isinstance(conn.client._policy, RejectPolicy)  # an unknown host is refused


def test_an_inventory_that_would_skip_host_key_checks_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / ".podium")
    stack = load_stack("lab-provb")
    stack_paths = StackPaths("lab-provb")
    data = inventory.build(stack, stack_paths)
    data["all"]["vars"]["ansible_ssh_common_args"] = (
        "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no")
    inventory.write(data, stack_paths.inventory)
    with pytest.raises(PodiumError, match="StrictHostKeyChecking=no"):
        of_stack(stack, stack_paths)


def test_a_broken_inventory_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / ".podium")
    stack_paths = StackPaths("hetzner")
    stack_paths.inventory.parent.mkdir(parents=True)
    stack_paths.inventory.write_text(yaml.safe_dump({"all": {"vars": {}}}))
    with pytest.raises(PodiumError, match="is not an inventory the kit wrote"):
        of_stack(load_stack("hetzner"), stack_paths)


@pytest.mark.parametrize("args", [["--stack", "scaleway", "--from", "hetzner"],
                                  ["--stack", "lab-provb", "--from", "hetzner"]])
def test_lab_lose_source_refuses_a_cloud_stack(args, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / ".podium")
    assert cli.main(["recover", *args, "--lab-lose-source", "--allow-cloud"]) == 2
    err = capsys.readouterr().err
    assert "--lab-lose-source destroys lab machines, and 'hetzner' is a cloud stack" in err
    assert "fence the lost stack yourself" in err


@pytest.mark.parametrize("stack_name", ["hetzner", "scaleway", "lab-provb"])
def test_the_platform_entry_is_the_proxy_or_the_providers_load_balancer(stack_name):
    from kit.drillkit import platform_entry
    from kit.stack import role_ports
    stack = load_stack(stack_name)
    via, address, port = platform_entry(stack)
    assert port == role_ports()["proxy"][0]["port"]
    if stack.load_balancer == "provider":  # no proxy host: through an edge to the balancer
        assert via == stack.groups()["edge"][0] and address == stack.load_balancer_address
    else:
        proxy = stack.groups()["proxy"][0]
        assert (via, address) == (proxy, str(stack.host(proxy).address))
