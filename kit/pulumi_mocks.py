"""Running the Pulumi program offline: mocks that record every resource it declares.

Used by `./podium plan` and by tests/unit/test_pulumi.py. No Pulumi CLI, no cloud account.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pulumi
from pulumi.runtime.mocks import MockMonitor

from kit.paths import REPO


@dataclass(frozen=True)
class Node:
    """One registered resource: its type and name, its parent's URN and the URNs it depends
    on (inputs that are other resources' outputs, and depends_on)."""

    urn: str
    typ: str
    name: str
    parent: str | None
    depends_on: tuple[str, ...]
    custom: bool


class _GraphMonitor(MockMonitor):
    """The mock monitor, also keeping each registration's parent and dependencies."""

    def __init__(self, mocks: Recorder) -> None:
        super().__init__(mocks)
        self.recorder = mocks

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            deps = set(request.dependencies)
            for prop in request.propertyDependencies.values():
                deps.update(prop.urns)
            self.recorder.nodes[response.urn] = Node(
                response.urn, request.type, request.name, request.parent or None,
                tuple(sorted(deps)), bool(request.custom))
        return response


@dataclass
class Recorder(pulumi.runtime.Mocks):
    """Records (type, name, inputs); public addresses come from documentation ranges."""

    resources: list[tuple[str, str, dict]] = field(default_factory=list)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append((args.typ, args.name, dict(args.inputs)))
        state = dict(args.inputs)
        number = len(self.resources)
        if args.typ == "hcloud:index/server:Server":
            state["ipv4Address"] = f"198.51.100.{number}"
            state["ipv6Address"] = f"2001:db8::{number}"
        elif args.typ == "scaleway:instance/ip:Ip":
            state["address"] = f"198.51.100.{number}"
        self.ids[(args.typ, args.name)] = str(number)
        return [str(number), state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of_type(self, typ: str) -> list[tuple[str, dict]]:
        return [(name, inputs) for t, name, inputs in self.resources if t == typ]


def install(stack_name: str) -> Recorder:
    """Install fresh mocks for ``stack_name`` and make infra/ importable."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="podium", stack=stack_name, preview=False,
                             monitor=_GraphMonitor(recorder))
    infra = str(REPO / "infra")
    if infra not in sys.path:
        sys.path.insert(0, infra)
    return recorder


def settled(platform, check):
    """An output that runs ``check`` once every resource of the platform is registered."""
    return pulumi.Output.all(*[r.urn for r in platform.all_resources()]).apply(
        lambda _: check())
