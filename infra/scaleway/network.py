"""The stack's private network at Scaleway: a VPC, one regional private network on the
stack's network.cidr, and one IPAM reservation per host so each server gets the address
the stack file gives it (the same one the lab uses)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.ipam as ipam
import pulumiverse_scaleway.network as network

from kit.stack import Stack


@dataclass
class PrivateNetworkArgs:
    stack: Stack
    region: str
    tags: list[str]


class PrivateNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, args: PrivateNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = network.Vpc(f"{name}-vpc", name=f"podium-{args.stack.name}",
                               region=args.region, tags=args.tags, opts=child)
        self.network = network.PrivateNetwork(
            name, name=f"podium-{args.stack.name}", vpc_id=self.vpc.id, region=args.region,
            ipv4_subnet={"subnet": args.stack.network.cidr}, tags=args.tags, opts=child)
        self.addresses: dict[str, ipam.Ip] = {
            host.name: ipam.Ip(
                f"{host.name}-private", address=str(host.address), region=args.region,
                sources=[{"private_network_id": self.network.id}], tags=args.tags, opts=child)
            for host in args.stack.hosts
        }
        self.register_outputs({"private_network_id": self.network.id})
