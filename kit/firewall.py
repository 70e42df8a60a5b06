"""Inbound rules per host, from the role-to-ports table (docs/decisions/0004).

The common role renders the same table into nftables on each host; the Pulumi firewall
uses this module. Both read playbooks/group_vars/all/role_ports.yml.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.stack import Host, Stack, role_ports

WORLD = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Rule:
    port: int
    proto: str
    sources: tuple[str, ...]
    role: str
    why: str


def sources(stack: Stack, name: str) -> tuple[str, ...]:
    if name == "world":
        return WORLD
    if name == "private":
        return (stack.network.cidr,)
    if name == "operator":
        return tuple(stack.admin.ssh_cidrs)
    raise ValueError(f"role_ports.yml: unknown source '{name}' (world, private or operator)")


def rules_for(stack: Stack, host: Host) -> list[Rule]:
    """The inbound rules of ``host``: those of 'common' and of each of its roles."""
    table = role_ports()
    rules = []
    for role in ["common", *host.roles]:
        for entry in table.get(role, []):
            rules.append(Rule(entry["port"], entry["proto"], sources(stack, entry["from"]), role,
                              entry.get("why", "")))
    return rules
