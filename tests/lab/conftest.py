"""Lab-tier tests: they need the stack named by PODIUM_STACK (default: local) to be up."""

from __future__ import annotations

import os

import pytest
from labapp import APP_CLI

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


# The lab tests sign up more accounts from the controller's one address than the platform's
# per-address limit allows in an hour (5); the modules that sign up raise it for the run.
LAB_SIGNUP_RATE = "1000/3600"


@pytest.fixture(scope="session")
def signups_allowed(stack: Stack, paths: StackPaths):
    """Raise the run-time sign-up limit per address (podium-app settings) for this session,
    then put back what the stack had (its own override or the default)."""
    from kit import ssh

    apps = [str(h.address) for h in stack.hosts if "app" in h.roles]
    if not apps:
        yield
        return
    show = ssh.run(paths, stack.admin.user, apps[0], f"{APP_CLI} settings show", timeout=240)
    assert show.returncode == 0, show.stderr
    before = next((line for line in show.stdout.splitlines()
                   if line.startswith("rate_signup_ip=")), "")
    changed = ssh.run(paths, stack.admin.user, apps[0],
                      f"{APP_CLI} settings set rate_signup_ip={LAB_SIGNUP_RATE}", timeout=240)
    assert changed.returncode == 0, changed.stderr
    yield
    restore = ("settings reset rate_signup_ip" if "(default)" in before or not before
               else f"settings set {before.split()[0]}")
    put_back = ssh.run(paths, stack.admin.user, apps[0], f"{APP_CLI} {restore}", timeout=240)
    if put_back.returncode != 0:  # the run's results stand; say what to do by hand
        print(f"\nwarning: could not restore rate_signup_ip ({put_back.stderr.strip()}); "
              f"run on {apps[0]}: podium-app {restore}")
