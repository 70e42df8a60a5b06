"""Scaleway tags: strings, so the stack/host/role labels become `key=value` entries."""

from __future__ import annotations

from kit.stack import Host, Stack


def tags_for(stack: Stack, host: Host | None = None) -> list[str]:
    tags = [f"podium-stack={stack.name}", "managed-by=podium"]
    if host is not None:
        tags.append(f"podium-host={host.name}")
        tags += [f"podium-role={role}" for role in host.roles]
    return tags
