"""One security group per server, holding exactly the rules of that server's roles.

The rules come from kit.firewall (the role-to-ports table the hosts' nftables uses). Scaleway
security groups filter the public interface only; private-network traffic is filtered by
the host's nftables, which reads the same table, so the private rules are declared here too
(they document intent and cost nothing) but it is nftables that enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.instance as instance

from kit.firewall import Rule


@dataclass
class HostSecurityGroupArgs:
    zone: str
    rules: list[Rule]
    tags: list[str]


def inbound_rules(rules: list[Rule]) -> list[dict]:
    """One accept rule per (port, protocol, source range): Scaleway takes one range a rule."""
    out = [
        {"action": "accept", "protocol": rule.proto.upper(), "port": rule.port,
         "ip_range": source}
        for rule in rules for source in rule.sources
    ]
    # Path MTU discovery and diagnostics need ICMP; nftables allows it too.
    out.append({"action": "accept", "protocol": "ICMP", "ip_range": "0.0.0.0/0"})
    return out


class HostSecurityGroup(pulumi.ComponentResource):
    def __init__(self, name: str, args: HostSecurityGroupArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:HostSecurityGroup", name, None, opts)
        self.group = instance.SecurityGroup(
            name, name=name, zone=args.zone, stateful=True,
            inbound_default_policy="drop", outbound_default_policy="accept",
            # Scaleway's default security blocks outbound SMTP until the account may send
            # mail (docs/production.md, step 3): kept on, as for Hetzner's port 25 block.
            enable_default_security=True,
            inbound_rules=inbound_rules(args.rules), tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"security_group_id": self.group.id})
