"""Checks shared by the exporter tests of each role (tests/infra/test_<role>.py).

An exporter is declared once, as an entry with ``metrics: JOB`` under its role in the
role-to-ports table (inventory var ``podium_role_ports``); its port comes from there.
"""

from __future__ import annotations

import re


def metrics_port(stack_vars: dict, role: str, job: str) -> int:
    """The port of the exporter of scrape job ``job`` declared under ``role``."""
    (entry,) = [e for e in stack_vars["podium_role_ports"][role] if e.get("metrics") == job]
    return entry["port"]


def listening_addresses(host, port: int) -> set[str]:
    """Addresses with a TCP socket listening on ``port`` on the host."""
    return {s.split("://", 1)[1].rsplit(":", 1)[0]
            for s in host.socket.get_listening_sockets()
            if s.startswith("tcp") and s.endswith(f":{port}")}


def scrape(host, address: str, port: int, path: str = "/metrics") -> str:
    """GET the exporter's page on the host itself (python3 is on every host; curl is not)."""
    script = ("import sys, urllib.request; "
              "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")
    result = host.run(f"python3 -c '{script}' http://{address}:{port}{path}")
    assert result.rc == 0, f"{address}:{port}{path}: {result.stderr}"
    return result.stdout


def samples(text: str, name: str) -> dict[str, float]:
    """Every sample of metric ``name``: its label text (``""`` without labels) -> value."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", re.MULTILINE)
    return {labels or "": float(value) for labels, value in pattern.findall(text)}


def value(text: str, name: str) -> float:
    """The value of a metric that has exactly one sample."""
    found = samples(text, name)
    assert len(found) == 1, f"{name}: expected one sample, got {found or 'none'}"
    return next(iter(found.values()))
