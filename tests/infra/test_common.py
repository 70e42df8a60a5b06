"""The common role, on every host: admin user, SSH, firewall, fail2ban, time, logs, upgrades.

Expected values come from the inventory (stack variables) and the role-to-ports table.
"""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

testinfra_hosts = ["ansible://all"]


def _expected_tcp_ports(host_roles: list[str], table: dict) -> set[int]:
    ports = set()
    for role in ["common", *host_roles]:
        for rule in table.get(role, []):
            if rule["proto"] == "tcp":
                ports.add(rule["port"])
    return ports


def test_admin_user_exists_with_sudo_and_no_password(host, stack_vars):
    user = host.user(stack_vars["podium_admin_user"])
    assert user.exists
    assert "sudo" in user.groups
    assert user.shell == "/bin/bash"
    # A locked password ('!' or '*' prefix): the account can only log in with a key.
    with host.sudo():
        assert user.password.startswith(("!", "*"))


def test_admin_keys_are_exactly_the_stack_keys(host, stack_vars):
    user = stack_vars["podium_admin_user"]
    with host.sudo():
        authorized = host.file(f"/home/{user}/.ssh/authorized_keys").content_string
    lines = [line for line in authorized.splitlines() if line.strip()]
    assert sorted(lines) == sorted(stack_vars["podium_admin_ssh_keys"])


def test_admin_user_can_sudo_without_password(host):
    assert host.run("sudo -n true").rc == 0


def test_ssh_refuses_password_login(host, stack_vars, host_vars):
    """From the controller: the server offers no password or keyboard-interactive method."""
    result = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password,keyboard-interactive",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=5",
         f"{stack_vars['podium_admin_user']}@{host_vars['ansible_host']}", "true"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_ssh_refuses_root_login(host):
    with host.sudo():
        config = host.run("sshd -T -C user=root,host=x,addr=127.0.0.1").stdout
    assert "permitrootlogin no" in config
    assert "passwordauthentication no" in config
    assert "kbdinteractiveauthentication no" in config


def test_ssh_offers_only_modern_algorithms(host):
    with host.sudo():
        config = host.run("sshd -T").stdout
    settings = dict(line.split(" ", 1) for line in config.splitlines() if " " in line)
    assert not any(c.endswith("-cbc") or c == "3des" for c in settings["ciphers"].split(","))
    assert not any("sha1" in m for m in settings["macs"].split(","))
    assert not any("sha1" in k for k in settings["kexalgorithms"].split(","))


def test_cgroups_hold_only_this_hosts_processes(host):
    """A host's systemd must own its cgroups alone. Lab machines once shared one tree, so a
    guest's units held other guests' processes (listed as pid 0, outside its PID namespace)
    and stopping a unit waited for them: user@1000.service took two minutes to stop and SSH
    logins hung meanwhile (kit/cgroups.py)."""
    with host.sudo():
        out = host.run("find /sys/fs/cgroup -name cgroup.procs -exec cat {} +")
    assert out.rc == 0, out.stderr
    pids = out.stdout.split()
    assert pids, "no process found in any cgroup"
    assert "0" not in pids, f"{pids.count('0')} processes of other machines in this host's cgroups"


def test_ssh_never_locks_out_the_operator_for_slow_logins(host, stack_vars):
    """Slow logins on a busy host (over LoginGraceTime) earn the source a refusal of up to
    10 minutes under OpenSSH's PerSourcePenalties: the operator's addresses, from which Ansible
    and testinfra connect, are exempt, and the grace time leaves a loaded host room."""
    with host.sudo():
        config = host.run("sshd -T").stdout
    settings = dict(line.split(" ", 1) for line in config.splitlines() if " " in line)
    assert int(settings["logingracetime"]) >= 60
    exempt = set(settings["persourcepenaltyexemptlist"].split(","))
    assert set(stack_vars["podium_operator_cidrs"]) <= exempt


@pytest.mark.parametrize("service", ["ssh", "nftables", "fail2ban", "systemd-journald"])
def test_baseline_service_running_and_enabled(host, service):
    unit = host.service(service)
    assert unit.is_running
    if service != "systemd-journald":  # static unit, always on
        assert unit.is_enabled


def test_chrony_enabled_and_running_unless_container(host):
    chrony = host.service("chrony")
    assert chrony.is_enabled
    virt = host.run("systemd-detect-virt --container").stdout.strip()
    if virt in ("", "none"):
        assert chrony.is_running
    else:
        # The guest shares the host's clock; chrony's unit is skipped by its condition.
        assert not chrony.is_running


def test_timezone_is_utc(host):
    assert host.run("date +%Z").stdout.strip() == "UTC"


def test_hostname_matches_inventory(host):
    assert host.run("hostname").stdout.strip() == host.backend.get_hostname()


def test_firewall_default_deny_inbound(host):
    with host.sudo():
        ruleset = host.run("nft list chain inet podium_filter input").stdout
    assert "policy drop" in ruleset


def test_only_intended_tcp_ports_listen_outside_loopback(host, host_vars, stack_vars):
    """Anything listening beyond loopback must be a port the host's roles open."""
    expected = _expected_tcp_ports(host_vars["podium_roles"], stack_vars["podium_role_ports"])
    listening = set()
    for socket in host.socket.get_listening_sockets():
        if not socket.startswith("tcp://"):
            continue
        address, _, port = socket.removeprefix("tcp://").rpartition(":")
        address = address.strip("[]")
        if not ipaddress.ip_address(address).is_loopback:
            listening.add(int(port))
    assert listening <= expected


def test_firewall_opens_exactly_the_role_ports(host, host_vars, stack_vars):
    expected = _expected_tcp_ports(host_vars["podium_roles"], stack_vars["podium_role_ports"])
    with host.sudo():
        ruleset = host.run("nft list chain inet podium_filter input").stdout
    opened = {int(word.split()[0]) for word in ruleset.split("tcp dport ")[1:]}
    assert opened == expected


def test_ssh_allowed_only_from_operator_networks(host, stack_vars):
    with host.sudo():
        ruleset = host.run("nft list chain inet podium_filter input").stdout
    ssh_rules = [line for line in ruleset.splitlines() if "tcp dport 22 " in line]
    assert len(ssh_rules) == 1
    for cidr in stack_vars["podium_operator_cidrs"]:
        network = ipaddress.ip_network(cidr)
        shown = str(network.network_address) if network.prefixlen == 32 else cidr
        assert shown in ssh_rules[0]


def test_fail2ban_guards_sshd(host):
    with host.sudo():
        result = host.run("fail2ban-client status sshd")
    assert result.rc == 0
    assert "Currently banned" in result.stdout


def test_journald_is_limited(host):
    config = host.file("/etc/systemd/journald.conf.d/podium.conf")
    assert config.contains("^SystemMaxUse=")
    assert config.contains("^MaxRetentionSec=")


def test_unattended_upgrades_enabled(host):
    assert host.package("unattended-upgrades").is_installed
    config = host.run("apt-config dump APT::Periodic::Unattended-Upgrade").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config


def test_cloud_init_finished_cleanly(host):
    result = host.run("cloud-init status --long")
    assert result.rc in (0, 2), result.stdout
    assert "status: done" in result.stdout
