"""Reads and validates the stack for the Pulumi program.

The program reads the very file Pulumi reads (infra/stacks/Pulumi.<stack>.yaml, through
stackConfigDir) with the kit's schema, so a stack that the lab accepts and one that Pulumi
accepts cannot differ. An invalid file stops the program before any resource is declared.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # Pulumi runs the program with infra/ as its directory
    sys.path.insert(0, str(REPO))

import pulumi  # noqa: E402

from kit.errors import PodiumError  # noqa: E402
from kit.stack import Stack, load_stack  # noqa: E402


def load() -> Stack:
    """The current Pulumi stack's Podium topology; raises pulumi.RunError when invalid."""
    try:
        stack = load_stack(pulumi.get_stack())
    except PodiumError as err:
        raise pulumi.RunError(err.render()) from None
    if stack.provider == "local":
        raise pulumi.RunError(
            f"stack '{stack.name}' is a local lab stack: use ./podium up, not pulumi up"
        )
    return stack
