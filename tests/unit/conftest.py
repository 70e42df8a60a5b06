from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kit.paths import REPO


@pytest.fixture()
def local_stack_doc() -> dict:
    """The default stack file, parsed, for tests that break one key at a time."""
    return yaml.safe_load((REPO / "infra" / "stacks" / "Pulumi.local.yaml").read_text())


@pytest.fixture()
def write_stack(tmp_path: Path):
    """Write a stack document to a temporary Pulumi.<name>.yaml and return its path."""

    def write(doc: dict, name: str = "trial") -> Path:
        path = tmp_path / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return write
