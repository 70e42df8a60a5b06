"""./podium test: the three test tiers of DESIGN.md, run in order, counted together.

1. unit  (tests/unit)  seconds: kit logic, stack validation, rendering, lint.
2. app   (tests/app)   the app against real PostgreSQL and Redis.
3. lab   the local stack: up (converge + testinfra), tests/lab (second converge must change
         nothing, lab behaviour), down, and a check that nothing of the stack is left.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from kit.ansible import VENV_BIN, venv_env
from kit.errors import PodiumError
from kit.paths import REPO, STATE_ROOT, StackPaths

LAB_STACK = "local"
REPORTS = STATE_ROOT / "test-reports"


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def add_junit(self, path) -> None:
        root = ET.parse(path).getroot()
        for suite in root.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            self.passed += tests - failed - skipped
            self.failed += failed
            self.skipped += skipped


def _say(text: str) -> None:
    print(f"\n=== {text}", file=sys.stderr, flush=True)


def _pytest(tally: Tally, name: str, args: list[str], env_extra: dict | None = None) -> bool:
    """Run one pytest session; True when it passed (or had nothing to collect)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    report = REPORTS / f"{name}.xml"
    report.unlink(missing_ok=True)
    env = venv_env(**(env_extra or {}))
    code = subprocess.run([str(VENV_BIN / "pytest"), *args, f"--junitxml={report}"],
                          cwd=REPO, env=env).returncode
    if code == 5:
        print(f"({name}: no tests collected)", file=sys.stderr)
        return True
    if report.is_file():
        tally.add_junit(report)
    if code != 0:
        tally.problems.append(f"{name} tests failed (pytest exit {code})")
        if not report.is_file():
            tally.failed += 1
    return code == 0


def _lab_tier(tally: Tally) -> None:
    from kit import lab

    paths = StackPaths(LAB_STACK)
    was_up = (paths.state / "stack.json").is_file()
    if was_up:
        print(f"(stack '{LAB_STACK}' was already up: it is reused and left up afterwards)",
              file=sys.stderr)
    try:
        _say(f"lab tier: ./podium up --stack {LAB_STACK} (converge + testinfra)")
        try:
            lab.up(LAB_STACK, run_tests=False)
        except PodiumError as err:
            print(err.render(), file=sys.stderr)
            tally.failed += 1
            tally.problems.append(f"./podium up --stack {LAB_STACK} failed")
            return
        tally.passed += 1
        _pytest(tally, "infra", ["-q", "tests/infra",
                                 f"--ansible-inventory={paths.inventory}"])
        _say("lab tier: tests/lab (second converge changes nothing, lab behaviour)")
        _pytest(tally, "lab", ["-q", "-m", "not drill", "tests/lab"],
                {"PODIUM_STACK": LAB_STACK})
        # Last, because a failover drill leaves the stack on the other primary (the tests
        # above take the inventory's first postgres host as the primary). In file order:
        # the failover, the latest-point restore (destroys and rebuilds the database and
        # media hosts), the mail host's poweroff.
        _say("lab tier: the drills: failover, restore to the latest point, mail host stop "
             "(pytest -m drill tests/lab)")
        # A stack this run booted is torn down right after: tests may then skip putting it
        # back in shape (the mail-host stop's full converge after pebble's restart).
        _pytest(tally, "drill", ["-q", "-m", "drill", "tests/lab"],
                {"PODIUM_STACK": LAB_STACK, "PODIUM_LAB_DISPOSABLE": "0" if was_up else "1"})
    finally:
        # Keep the lab's logs (Ansible runs, consoles) for the CI report: down removes them.
        if paths.logs.is_dir():
            shutil.copytree(paths.logs, REPORTS / "lab-logs", dirs_exist_ok=True)
        if not was_up:
            _say(f"lab tier: ./podium down --stack {LAB_STACK}")
            try:
                lab.down(LAB_STACK)
                tally.passed += 1
            except PodiumError as err:
                print(err.render(), file=sys.stderr)
                tally.failed += 1
                tally.problems.append(f"./podium down --stack {LAB_STACK} left things behind")


def run(fast: bool) -> int:
    from kit import host

    tally = Tally()
    # The unit tier exercises real host tools too (systemd-nspawn, ip, ansible-playbook).
    host.check_root()
    host.ensure_packages(host.HOST_PACKAGES, lambda text: _say(text))
    _say("unit tier: pytest tests/unit")
    _pytest(tally, "unit", ["-q", "tests/unit"])
    # The app tier starts its own throwaway PostgreSQL and Redis (kit/appservices.py).
    from kit import appservices

    host.ensure_packages(appservices.PACKAGES, lambda text: _say(text))
    _say("app tier: pytest tests/app (throwaway PostgreSQL and Redis on 127.0.0.1)")
    _pytest(tally, "app", ["-q", "-p", "no:cacheprovider", "tests/app"])
    if not fast:
        _lab_tier(tally)
    print("", file=sys.stderr)
    for problem in tally.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    # The closing line CI reads: counts over every tier (up and down count as one test each).
    print(f"podium: {tally.passed} passed, {tally.failed} failed, {tally.skipped} skipped",
          flush=True)
    return 1 if tally.failed or tally.problems else 0
