"""Ansible callback: a machine-readable summary of a playbook run for the kit.

Writes JSON to the file named by the environment variable PODIUM_ANSIBLE_REPORT (nothing when
unset), so ./podium can say which host, role and task failed, and the idempotence test can
list the tasks that changed on a second converge. The normal screen output is untouched.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: podium_report
type: aggregate
short_description: JSON summary of a run (failures, changed tasks, per-host counts)
description:
  - Writes the summary to the file named by PODIUM_ANSIBLE_REPORT.
requirements: []
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "podium_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("PODIUM_ANSIBLE_REPORT")
        self._failures: list[dict] = []
        self._changed: list[dict] = []

    @staticmethod
    def _describe(result) -> dict:
        task = result._task
        role = task._role.get_name() if task._role else None
        return {
            "host": result._host.get_name(),
            "role": role,
            "task": task.get_name(),
            "path": task.get_path(),
        }

    def _message(self, result) -> str:
        res = result._result
        parts = [str(res.get("msg", "")).strip()]
        for key in ("stderr", "module_stderr", "stdout"):
            if res.get(key):
                parts.append(str(res[key]).strip()[-1500:])
        for item in res.get("results", []) or []:
            if isinstance(item, dict) and item.get("failed"):
                parts.append(str(item.get("msg", "")).strip())
        return "\n".join(p for p in parts if p)

    def v2_runner_on_ok(self, result) -> None:
        if result._result.get("changed"):
            self._changed.append(self._describe(result))

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self._failures.append({**self._describe(result), "unreachable": False,
                                   "message": self._message(result)})

    def v2_runner_on_unreachable(self, result) -> None:
        self._failures.append({**self._describe(result), "unreachable": True,
                               "message": self._message(result)})

    def v2_playbook_on_stats(self, stats) -> None:
        if not self._path:
            return
        hosts = {
            host: stats.summarize(host) for host in sorted(stats.processed.keys())
        }
        report = {"hosts": hosts, "failures": self._failures, "changed": self._changed}
        tmp = f"{self._path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        os.replace(tmp, self._path)
