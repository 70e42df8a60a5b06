"""Running ansible-playbook for a stack, with its output kept and its failures explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kit.errors import PodiumError
from kit.paths import REPO, StackPaths, shown

VENV_BIN = Path(sys.executable).parent


def venv_env(**extra: str) -> dict[str, str]:
    """This environment with the kit's virtual environment first on PATH."""
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            **extra}


def env_for(paths: StackPaths, report: Path | None = None) -> dict[str, str]:
    env = venv_env(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(paths.facts),
        ANSIBLE_FORCE_COLOR=os.environ.get("ANSIBLE_FORCE_COLOR", "0"),
    )
    if report is not None:
        env["PODIUM_ANSIBLE_REPORT"] = str(report)
    return env


def run_playbook(paths: StackPaths, playbook: str, label: str,
                 extra: list[str] | None = None, echo: bool = True) -> dict:
    """Run ``playbook`` against the stack's inventory; return the podium_report summary.

    Output goes to the terminal and to .podium/<stack>/logs/<label>-<time>.log. On failure
    raises PodiumError naming each failed host, its role and task.
    """
    paths.logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.monotonic_ns() % 1000:03d}"
    log_path = paths.logs / f"{label}-{stamp}.log"
    report_path = paths.logs / f"{label}-{stamp}.json"
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(paths.inventory),
           str(REPO / playbook), *(extra or [])]
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env_for(paths, report_path),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if echo:
                sys.stderr.write("      | " + line)
            log.write(line)
        code = proc.wait()
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        report = {}
    if code != 0:
        failures = report.get("failures", [])
        # One line per distinct failure, with the hosts it happened on.
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for f in failures:
            first = (f.get("message") or "").strip().splitlines()[:1]
            kind = "unreachable" if f.get("unreachable") else (first[0] if first else "")
            grouped.setdefault((f.get("role") or "(playbook)", f["task"], kind), []).append(
                f["host"])
        lines = [
            f"role {role}, task '{task}' on {', '.join(hosts)}" + (f"\n    {msg}" if msg else "")
            for (role, task, msg), hosts in grouped.items()
        ]
        raise PodiumError(
            f"{playbook} failed on {len({f['host'] for f in failures}) or 'some'} host(s)"
            + (":\n  " + "\n  ".join(lines) if lines else f" (ansible-playbook exited {code})"),
            f"full output: {shown(log_path)}; fix the cause and run ./podium up "
            "again (it resumes: machines are reused and the play converges)",
        )
    return report
