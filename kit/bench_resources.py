"""./podium bench resources: memory and CPU of each lab guest, read from the host's /proc.

The lab's guests share the host's cgroups (the host does not run systemd), so a guest is
taken to be every process in its PID namespace: memory is the sum of their PSS (shared pages
split between the processes sharing them, so the sum is not inflated by shared libraries),
CPU the share of one core their user + system time used over the sampling window (a process
that ends within the window is not counted: measure a settled stack).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from kit.errors import PodiumError
from kit.machines import Machine, _children
from kit.paths import StackPaths
from kit.stack import load_stack

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    processes: int
    pss_bytes: int
    cpu_ticks: dict[int, int]  # pid -> utime + stime
    biggest: list[tuple[int, str]]  # (PSS bytes, command) of the largest processes


def namespace_pids(leader: int, proc: Path = PROC) -> list[int]:
    """Every process in the PID namespace of process ``leader``."""
    target = os.readlink(proc / str(leader) / "ns" / "pid")
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == target:
                    pids.append(int(entry.name))
            except OSError:  # the process ended meanwhile
                continue
    return pids


def pss_bytes(smaps_rollup: str) -> int:
    """The ``Pss:`` line of /proc/PID/smaps_rollup, in bytes."""
    for line in smaps_rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_ticks(stat: str) -> int:
    """utime + stime of /proc/PID/stat (fields 14 and 15; the command may contain spaces)."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def usage(pids: list[int], proc: Path = PROC) -> Usage:
    total_pss = 0
    ticks = {}
    sizes = []
    for pid in pids:
        try:
            pss = pss_bytes((proc / str(pid) / "smaps_rollup").read_text())
            ticks[pid] = cpu_ticks((proc / str(pid) / "stat").read_text())
            name = (proc / str(pid) / "comm").read_text().strip()
        except OSError:
            continue
        total_pss += pss
        sizes.append((pss, name))
    return Usage(len(ticks), total_pss, ticks, sorted(sizes, reverse=True)[:3])


def cpu_percent(before: Usage, after: Usage, seconds: float) -> float:
    """Share of one core used between two samples by the processes alive at the second."""
    used = sum(t - before.cpu_ticks.get(pid, 0) for pid, t in after.cpu_ticks.items())
    return 100 * used / TICKS / seconds


def run(stack_name: str, seconds: float = 30) -> None:
    """Print each running guest's memory (PSS) and CPU over ``seconds``."""
    stack = load_stack(stack_name)
    paths = StackPaths(stack_name)
    leaders = {}
    for host in stack.hosts:
        nspawn = Machine(stack, host, paths).pid()
        inits = _children(nspawn) if nspawn else []
        if inits:
            leaders[host.name] = inits[0]
    if not leaders:
        raise PodiumError(f"no guest of stack '{stack_name}' is running",
                          f"./podium up --stack {stack_name} first")
    pids = {name: namespace_pids(leader) for name, leader in leaders.items()}
    before = {name: usage(p) for name, p in pids.items()}
    time.sleep(seconds)
    print(f"{'host':<10} {'roles':<28} {'procs':>5} {'PSS MiB':>8} {'CPU %':>6}  largest")
    total_pss = total_cpu = 0.0
    for host in stack.hosts:
        if host.name not in pids:
            print(f"{host.name:<10} (not running)")
            continue
        after = usage(namespace_pids(leaders[host.name]))
        cpu = cpu_percent(before[host.name], after, seconds)
        total_pss += after.pss_bytes
        total_cpu += cpu
        largest = ", ".join(f"{name} {size / 2**20:.0f}" for size, name in after.biggest)
        print(f"{host.name:<10} {','.join(host.roles):<28} {after.processes:>5} "
              f"{after.pss_bytes / 2**20:>8.0f} {cpu:>6.1f}  {largest}")
    print(f"{'total':<10} {'':<28} {'':>5} {total_pss / 2**20:>8.0f} {total_cpu:>6.1f}  "
          f"(CPU: % of one core, mean over {seconds:.0f}s)")
