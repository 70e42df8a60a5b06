"""./podium bench: measurements recorded in docs/perf.md. Medians over several runs, because
these machines are noisy; every run's figure is printed too."""

from __future__ import annotations

import statistics
import time

from kit.ansible import run_playbook
from kit.errors import PodiumError
from kit.paths import StackPaths, shown


def converge(stack_name: str, runs: int) -> None:
    """Time ``runs`` converges of site.yml on a stack that is up (normally all no-ops)."""
    paths = StackPaths(stack_name)
    if not paths.inventory.is_file():
        raise PodiumError(f"stack '{stack_name}' is not up",
                          f"./podium up --stack {stack_name} first")
    timings = []
    for number in range(1, runs + 1):
        started = time.monotonic()
        report = run_playbook(paths, "playbooks/site.yml", "bench-converge", echo=False)
        took = time.monotonic() - started
        timings.append(took)
        changed = sum(h["changed"] for h in report.get("hosts", {}).values())
        print(f"run {number}/{runs}: {took:.1f}s, {len(report.get('hosts', {}))} hosts, "
              f"{changed} changed", flush=True)
    print(f"converge of site.yml on stack '{stack_name}': median {statistics.median(timings):.1f}s"
          f" over {runs} runs (min {min(timings):.1f}s, max {max(timings):.1f}s); "
          f"logs in {shown(paths.logs)}")
