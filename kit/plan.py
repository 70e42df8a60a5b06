"""./podium plan: what the Pulumi program would create for a cloud stack, offline.

Runs the program in infra/ under mocks (kit.pulumi_mocks): nothing is contacted, no Pulumi
CLI or token is needed. Prints resources by type, each server's firewall openings and the
DNS records. Addresses shown are placeholders from documentation ranges.
"""

from __future__ import annotations

from collections import Counter

import pulumi

from kit.console import table
from kit.errors import PodiumError
from kit.pulumi_mocks import install, settled
from kit.stack import load_stack


def plan(stack_name: str) -> None:
    stack = load_stack(stack_name)
    if stack.provider == "local":
        raise PodiumError(
            f"stack '{stack_name}' is a lab stack: plan is for cloud stacks",
            "see the lab's hosts with ./podium up, or plan a cloud stack: "
            "./podium plan --stack hetzner",
        )
    recorder = install(stack_name)
    from topology import build

    @pulumi.runtime.test
    def run():
        return settled(build(stack), lambda: None)

    run()
    print(f"Plan for stack '{stack_name}' ({stack.provider}, {stack.domain}), "
          "computed offline under mocks:\n")
    counts = Counter(typ for typ, _, _ in recorder.resources)
    print(table([[typ, str(n)] for typ, n in sorted(counts.items())], ["resource type", "count"]))
    print("\nFirewall openings per server (inbound):")
    rows = []
    for name, fw in recorder.of_type("hcloud:index/firewall:Firewall"):
        for rule in fw["rules"]:
            port = rule.get("port") or "-"
            rows.append([name.removesuffix("-fw"), f"{rule['protocol']}/{port}",
                         ", ".join(rule["sourceIps"]), rule.get("description", "")])
    print(table(rows, ["server", "port", "from", "why"]))
    print(f"\nDNS records in zone {stack.domain}:")
    rows = [[i["name"], i["type"], " ".join(v["value"] for v in i["records"])]
            for _, i in recorder.of_type("hcloud:index/zoneRrset:ZoneRrset")]
    print(table(rows, ["name", "type", "value"]))
