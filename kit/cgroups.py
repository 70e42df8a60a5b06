"""One cgroup per lab machine.

``systemd-nspawn --keep-unit --register=no`` (the host has no systemd to register with) runs
the container in the cgroup nspawn itself was started in, under ``payload/`` (the guest) and
``supervisor/`` (nspawn). Every machine the kit started therefore shared one tree: each
guest's systemd managed the same ``system.slice/<unit>`` cgroups as every other guest's, saw
their processes (as pid 0, outside its PID namespace) and, stopping a unit, waited for those
to leave too. That is how a stopping ``user@1000.service`` on one app guest waited two minutes
for the other's and blocked SSH logins meanwhile (docs/lab.md, "SSH stalls").

The kit now starts each nspawn in its own cgroup, ``podium-lab/<machine>``, in every hierarchy
a guest's systemd uses: the unified (cgroup2) one and, on a hybrid host, the v1
``name=systemd`` one. Nothing here needs systemd on the host.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

PARENT = "podium-lab"
MOUNTINFO = Path("/proc/self/mountinfo")


def hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of the cgroup hierarchies that matter to a guest's systemd."""
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    found: list[Path] = []
    for line in text.splitlines():
        # mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail:
            continue
        fstype, super_options = tail[0], tail[-1].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in super_options):
            found.append(Path(fields[4]))
    return found


def machine_dirs(machine: str, mountinfo: str | None = None) -> list[Path]:
    return [mount / PARENT / machine for mount in hierarchies(mountinfo)]


def prepare(machine: str) -> list[Path]:
    """Create the machine's cgroups; return the ``cgroup.procs`` files to join.

    Where the hierarchy cannot be written (e.g. the kit itself runs in a container without
    cgroup delegation), say so and boot in the shared tree as before."""
    procs = []
    for directory in machine_dirs(machine):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(f"warning: cannot create cgroup {directory} ({err.strerror}): machine "
                  f"{machine} shares its cgroups with the other machines (kit/cgroups.py)",
                  file=sys.stderr)
            continue
        procs.append(directory / "cgroup.procs")
    return procs


def joiner(procs: list[Path]):
    """A ``preexec_fn`` that moves the child (nspawn, before it execs) into the cgroups."""
    def join() -> None:
        for path in procs:
            with open(path, "w") as handle:
                handle.write(f"{os.getpid()}\n")
    return join


def remove(machine: str) -> None:
    """Remove the machine's cgroups once it is stopped. A cgroup still holding a process is
    left alone (rmdir refuses), so this never disturbs a running machine."""
    for directory in machine_dirs(machine):
        if not directory.is_dir():
            continue
        for current, _dirs, _files in os.walk(directory, topdown=False):
            with contextlib.suppress(OSError):  # still in use: leave it
                os.rmdir(current)
