"""The lab as an operator uses it: re-running up, status, ssh, and the network seen from outside.

These run after `./podium up` (the first converge) on the stack named by PODIUM_STACK.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from kit import ssh
from kit.paths import REPO

PODIUM = str(REPO / "podium")


def _podium(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([PODIUM, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


@pytest.fixture(scope="module")
def second_up(stack):
    """`./podium up` again on the running stack: it must reuse machines and converge."""
    started = time.monotonic()
    result = _podium("up", "--stack", stack.name, "--no-test")
    return result, time.monotonic() - started


def test_up_again_reuses_every_running_machine(stack, second_up):
    result, _ = second_up
    assert result.returncode == 0, result.stderr[-3000:]
    for host in stack.hosts:
        assert f"[{host.name}] already running, reused" in result.stderr
    assert "created;" not in result.stderr


def test_second_converge_changes_nothing_on_any_host(paths, second_up):
    result, _ = second_up
    assert result.returncode == 0
    report_file = max(paths.logs.glob("converge-*.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(report_file.read_text())
    changed = {host: counts["changed"] for host, counts in report["hosts"].items()}
    details = [f"{c['host']}: {c['task']}" for c in report["changed"]]
    assert set(changed.values()) == {0}, details
    assert all(counts["failures"] == 0 for counts in report["hosts"].values())


def test_status_shows_every_host_running(stack):
    result = _podium("status", "--stack", stack.name, timeout=60)
    assert result.returncode == 0
    for host in stack.hosts:
        line = next(li for li in result.stdout.splitlines() if li.startswith(host.name + " "))
        assert str(host.address) in line
        assert "running, ssh ok" in line


def test_ssh_command_runs_on_the_named_host(stack):
    target = stack.hosts[-1]
    result = _podium("ssh", "--stack", stack.name, target.name, "--", "hostname", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == target.name


def test_ssh_to_unknown_host_names_the_hosts(stack):
    result = _podium("ssh", "--stack", stack.name, "nosuchhost", timeout=60)
    assert result.returncode == 2
    assert "has no host 'nosuchhost'" in result.stderr


def test_port_not_in_the_table_is_filtered_from_outside(stack, paths):
    """A service listening on an unlisted port cannot be reached from the controller."""
    target = stack.hosts[0]
    address = str(target.address)
    port = 8999
    start = ssh.run(paths, stack.admin.user, address,
                    f"sudo systemd-run --unit=podium-probe python3 -m http.server {port}")
    assert start.returncode == 0, start.stderr
    try:
        listening = ssh.run(paths, stack.admin.user, address,
                            f"for i in $(seq 50); do ss -ltn | grep -q ':{port} ' && exit 0; "
                            "sleep 0.1; done; exit 1")
        assert listening.returncode == 0
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=3).close()
        # Reachable from the host itself: the filter, not the service, blocks the controller.
        local = ssh.run(paths, stack.admin.user, address,
                        f"python3 -c \"import socket; socket.create_connection(('{address}', "
                        f"{port}), 3)\"")
        assert local.returncode == 0, local.stderr
    finally:
        ssh.run(paths, stack.admin.user, address, "sudo systemctl stop podium-probe")


def test_ssh_from_another_lab_host_is_dropped(stack, paths):
    """SSH is open to the operator's networks only, not to the other hosts of the stack."""
    if len(stack.hosts) < 2:
        pytest.skip("needs two hosts")
    source, target = stack.hosts[0], stack.hosts[1]
    result = ssh.run(paths, stack.admin.user, str(source.address),
                     f"timeout 4 bash -c '</dev/tcp/{target.address}/22' && echo OPEN || "
                     "echo CLOSED")
    assert result.stdout.strip() == "CLOSED"
