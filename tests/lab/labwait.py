"""Polling for the lab tests: wait until a condition holds, or fail naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(what: str, check: Callable[[], object], timeout: float, every: float = 1.0):
    """Call ``check`` every ``every`` seconds until it returns something truthy, and return
    that; after ``timeout`` seconds fail the test naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"not within {timeout:.0f}s: {what} (last: {last!r})")
