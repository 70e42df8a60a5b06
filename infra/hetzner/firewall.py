"""One firewall per server, holding exactly the rules of that server's roles.

The rules come from kit.firewall, which reads the role-to-ports table the common role's
nftables uses (playbooks/group_vars/all/role_ports.yml): cloud and host firewalls agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from kit.firewall import Rule


@dataclass
class HostFirewallArgs:
    rules: list[Rule]
    labels: dict[str, str]


class HostFirewall(pulumi.ComponentResource):
    def __init__(self, name: str, args: HostFirewallArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:HostFirewall", name, None, opts)
        rules = [
            hcloud.FirewallRuleArgs(
                direction="in", protocol=rule.proto, port=str(rule.port),
                source_ips=list(rule.sources), description=f"{rule.role}: {rule.why}"[:255],
            )
            for rule in args.rules
        ]
        # Path MTU discovery and diagnostics need ICMP; nftables allows it too.
        rules.append(hcloud.FirewallRuleArgs(direction="in", protocol="icmp",
                                             source_ips=["0.0.0.0/0", "::/0"],
                                             description="ICMP"))
        self.firewall = hcloud.Firewall(name, rules=rules, labels=args.labels,
                                        opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"firewall_id": self.firewall.id})
