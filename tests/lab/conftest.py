"""Lab-tier tests: they need the stack named by PODIUM_STACK (default: local) to be up."""

from __future__ import annotations

import os

import pytest

from kit.lab import _load_state
from kit.paths import StackPaths
from kit.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    name = os.environ.get("PODIUM_STACK", "local")
    loaded = _load_state(name)
    if loaded is None:
        pytest.fail(f"stack '{name}' is not up: run ./podium up --stack {name} first")
    return loaded


@pytest.fixture(scope="session")
def paths(stack: Stack) -> StackPaths:
    return StackPaths(stack.name)
