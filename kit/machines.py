"""Lab machines: one systemd-nspawn container per host, booted with systemd on a bridge.

A machine lives in /var/lib/podium/stacks/<stack>/<host>/: ``root/`` (its file system, made
from the base image), ``nspawn.pid`` (the nspawn process that runs it). Its console log is
in .podium/<stack>/logs/. Facts checked on these hosts are in LAB-NOTES: the host has no
systemd as PID 1, hence --register=no --keep-unit; the console must be forwarded
(read-only), because with --console=passive nobody reads the guest's console and systemd
blocks as soon as its buffer is full.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kit import cgroups, cloudinit
from kit.errors import PodiumError
from kit.paths import StackPaths
from kit.stack import Host, Stack

READY_MARK = ".podium-ready"


@dataclass
class Machine:
    stack: Stack
    host: Host
    paths: StackPaths

    @classmethod
    def on_disk(cls, stack: Stack, name: str, paths: StackPaths) -> Machine:
        """A machine found in the stack's directory, whether or not the stack file lists it
        (a host removed from the file, or `down` working from saved state)."""
        return cls(stack, stack.hosts[0].model_copy(update={"name": name}), paths)

    @property
    def dir(self) -> Path:
        return self.paths.machine_dir(self.host.name)

    @property
    def root(self) -> Path:
        return self.paths.machine_root(self.host.name)

    @property
    def pid_file(self) -> Path:
        return self.dir / "nspawn.pid"

    @property
    def console_log(self) -> Path:
        return self.paths.console_log(self.host.name)

    @property
    def machine_name(self) -> str:
        return f"{self.stack.name}-{self.host.name}"

    def created(self) -> bool:
        return (self.dir / READY_MARK).is_file()

    def pid(self) -> int | None:
        """The nspawn process running this machine, if it is running."""
        return nspawn_pid(self.pid_file, self.root)

    def create(self, image: Path, ssh_keys: list[str], apt_proxy: str) -> None:
        """Unpack the image and write the seed. Interrupted creations are started over."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.root.mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(image), "-C", str(self.root)], check=True)
        (self.root / "etc" / "machine-id").write_text(secrets.token_hex(16) + "\n")
        instance = f"{self.machine_name}-{secrets.token_hex(4)}"
        cloudinit.write_seed(self.root, self.stack, self.host, ssh_keys, apt_proxy, instance)
        (self.dir / READY_MARK).write_text(instance + "\n")

    def boot(self) -> None:
        assert self.stack.lab is not None
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        cmd = [
            "systemd-nspawn", "--quiet",
            f"--directory={self.root}",
            f"--machine={self.machine_name}",
            "--register=no", "--keep-unit", "--boot",
            f"--network-bridge={self.stack.lab.bridge}",
            "--console=read-only",
            "--resolv-conf=off",
            "--timezone=off",
        ]
        # Its own cgroup: nspawn would otherwise share one tree with every other machine
        # (kit/cgroups.py says why that broke SSH logins).
        join_cgroups = cgroups.joiner(cgroups.prepare(self.machine_name))
        with open(self.console_log, "ab") as log:
            log.write(f"\n===== boot {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env, preexec_fn=join_cgroups,
                )
            except FileNotFoundError:
                raise PodiumError(
                    f"cannot boot host {self.host.name}: systemd-nspawn is not installed",
                    "apt-get install systemd-container (./podium up does it itself)",
                ) from None
        self._proc = proc
        self.pid_file.write_text(f"{proc.pid}\n")

    def exit_status(self) -> int | None:
        """How this run's nspawn ended (negative: killed by that signal); None if running."""
        proc = getattr(self, "_proc", None)
        return None if proc is None else proc.poll()

    def console_tail(self, lines: int = 25) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        """Ask the guest to shut down (SIGTERM to its own nspawn); kill it after ``timeout``."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            # Killing the container's init ends every process in its PID namespace.
            for child in _children(pid):
                os.kill(child, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            while time.monotonic() < deadline + 10 and self.pid() is not None:
                time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)
        cgroups.remove(self.machine_name)

    def kill(self) -> None:
        """Pull the plug: SIGKILL to every process of the guest and its nspawn, no shutdown
        (what a host crash or a provider's hard stop does to the services on it)."""
        pid = self.pid()
        if pid is None:
            return
        for child in _children(pid):
            os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)
        cgroups.remove(self.machine_name)

    def remove(self) -> None:
        self.stop()
        cgroups.remove(self.machine_name)
        if self.dir.exists():
            shutil.rmtree(self.dir)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def nspawn_pid(pid_file: Path, root: Path) -> int | None:
    """The pid in ``pid_file`` if that process is a systemd-nspawn running ``root``.

    Checked by its command line, so a stale pid reused by another process is never signalled.
    """
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if cmdline and cmdline[0].endswith(b"systemd-nspawn") and \
            f"--directory={root}".encode() in cmdline:
        return pid
    return None
