"""testinfra against a deployed stack, through testinfra's ansible backend.

Run against any stack's generated inventory:
    pytest tests/infra --ansible-inventory=.podium/<stack>/inventory.yml
Without --ansible-inventory the local stack's inventory is used. Hosts come from the
inventory: every host ("ansible://all") unless a test module narrows them with
``testinfra_hosts`` (e.g. ["ansible://monitoring"]).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.ansible_inventory:
        stack = os.environ.get("PODIUM_STACK", "local")
        config.option.ansible_inventory = str(REPO / ".podium" / stack / "inventory.yml")
    if not Path(config.option.ansible_inventory).is_file():
        raise pytest.UsageError(
            f"no inventory at {config.option.ansible_inventory}: bring the stack up first "
            "(./podium up) or pass --ansible-inventory=PATH"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules without ``testinfra_hosts`` run on every host. (Setting --hosts here instead
    would override the ``testinfra_hosts`` of role modules such as ["ansible://monitoring"].)"""
    if not metafunc.config.option.hosts and not hasattr(metafunc.module, "testinfra_hosts"):
        metafunc.module.testinfra_hosts = ["ansible://all"]


@pytest.fixture(scope="session")
def inventory(pytestconfig: pytest.Config) -> dict:
    """The inventory file as written by the kit (expected values come from here)."""
    return yaml.safe_load(Path(pytestconfig.option.ansible_inventory).read_text())


@pytest.fixture(scope="session")
def stack_vars(inventory: dict) -> dict:
    return inventory["all"]["vars"]


@pytest.fixture()
def host_vars(host, inventory: dict) -> dict:
    name = host.backend.get_hostname()
    return inventory["all"]["hosts"][name]
