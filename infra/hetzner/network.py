"""The stack's private network: one network and one subnet, the stack's network.cidr."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud


@dataclass
class PrivateNetworkArgs:
    cidr: str
    network_zone: str
    labels: dict[str, str]


class PrivateNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, args: PrivateNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = hcloud.Network(name, ip_range=args.cidr, labels=args.labels, opts=child)
        self.subnet = hcloud.NetworkSubnet(
            f"{name}-subnet", network_id=self.network.id.apply(int), type="cloud",
            network_zone=args.network_zone, ip_range=args.cidr, opts=child,
        )
        self.register_outputs({"network_id": self.network.id})
