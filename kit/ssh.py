"""SSH from the controller to lab hosts: the lab key, known hosts, readiness."""

from __future__ import annotations

import socket
import subprocess
import time

from kit.errors import PodiumError
from kit.paths import StackPaths


def ensure_key(paths: StackPaths) -> str:
    """Create the stack's lab SSH key if missing; return its public half."""
    key = paths.ssh_key
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"podium-lab-{paths.stack}",
             "-f", str(key)],
            check=True,
        )
    return key.with_suffix(".pub").read_text().strip()


def base_args(paths: StackPaths, strict: bool = True) -> list[str]:
    """ssh options for lab hosts. ``strict=False`` accepts a new host's key once (first boot)."""
    return [
        "-i", str(paths.ssh_key),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={paths.known_hosts}",
        "-o", f"StrictHostKeyChecking={'yes' if strict else 'accept-new'}",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        "-o", "LogLevel=ERROR",
    ]


def forget_host(paths: StackPaths, address: str) -> None:
    """Drop a host's old key (a re-created machine has new host keys)."""
    if paths.known_hosts.is_file():
        subprocess.run(["ssh-keygen", "-R", address, "-f", str(paths.known_hosts)],
                       capture_output=True)


def port_open(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def run(paths: StackPaths, user: str, address: str, command: str, timeout: float = 60,
        strict: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """``command`` on a lab host; ``input`` is its stdin (text)."""
    return subprocess.run(
        ["ssh", *base_args(paths, strict), f"{user}@{address}", command],
        capture_output=True, text=True, timeout=timeout, input=input,
    )


def wait_ready(paths: StackPaths, user: str, address: str, host: str, alive, timeout: float,
               console_tail) -> None:
    """Wait until the host accepts our key and cloud-init has finished.

    ``alive()`` says whether the machine is still running; ``console_tail()`` gives the
    end of its console log for the error message.
    """
    deadline = time.monotonic() + timeout
    last = "no TCP connection to port 22 yet"
    while time.monotonic() < deadline:
        if not alive():
            raise PodiumError(
                f"host {host} did not boot: its systemd-nspawn process exited",
                f"read the console log above (full log: {paths.console_log(host)}), "
                "then run ./podium up again",
                detail=console_tail(),
            )
        if port_open(address):
            try:
                result = run(paths, user, address,
                             "cloud-init status --wait >/dev/null; cloud-init status --long",
                             timeout=max(5, deadline - time.monotonic()), strict=False)
            except subprocess.TimeoutExpired:
                last = "cloud-init did not finish"
                break
            # cloud-init status: 0 done, 2 done with recoverable warnings, 1 error.
            if result.returncode in (0, 2):
                return
            if "Permission denied" in result.stderr:
                last = f"SSH answered but refused the lab key for {user}@{address}"
            elif result.returncode == 1:
                raise PodiumError(
                    f"cloud-init reported an error on host {host}",
                    f"see /var/log/cloud-init.log on the host (./podium ssh {host})",
                    detail=result.stdout + result.stderr,
                )
            else:
                last = (result.stderr or result.stdout).strip() or f"exit {result.returncode}"
        time.sleep(1)
    raise PodiumError(
        f"SSH never came up on host {host}: tried {user}@{address}:22 with "
        f"{paths.ssh_key} for {timeout:.0f}s; last: {last}",
        f"read the console log below (full log: {paths.console_log(host)}); "
        "run ./podium up again to retry",
        detail=console_tail(),
    )
