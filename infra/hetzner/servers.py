"""The servers: one per host of the stack, in the private network, spread over placement
groups, labelled with the stack and roles, and started with the lab's own cloud-init
user-data (kit.cloudinit renders both)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from kit import cloudinit
from kit.providers import IMAGES, SIZES
from kit.stack import Host, Stack

# Hetzner's spread placement groups hold at most 10 servers.
SPREAD_GROUP_SIZE = 10


def labels_for(stack: Stack, host: Host | None = None) -> dict[str, str]:
    labels = {"podium-stack": stack.name, "managed-by": "podium"}
    if host is not None:
        labels["podium-host"] = host.name
        labels.update({f"podium-role-{role}": "true" for role in host.roles})
    return labels


@dataclass
class ServersArgs:
    stack: Stack
    network: hcloud.Network
    subnet: hcloud.NetworkSubnet
    firewalls: dict[str, hcloud.Firewall]


class Servers(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:Servers", name, None, opts)
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        self.ssh_keys = [
            hcloud.SshKey(f"{name}-operator-{index}", public_key=key,
                          labels=labels_for(stack), opts=child)
            for index, key in enumerate(stack.admin.ssh_keys)
        ]
        count = (len(stack.hosts) + SPREAD_GROUP_SIZE - 1) // SPREAD_GROUP_SIZE
        self.placement_groups = [
            hcloud.PlacementGroup(f"{name}-spread-{index}", type="spread",
                                  labels=labels_for(stack), opts=child)
            for index in range(count)
        ]
        self.servers: dict[str, hcloud.Server] = {}
        for index, host in enumerate(stack.hosts):
            group = self.placement_groups[index // SPREAD_GROUP_SIZE]
            self.servers[host.name] = hcloud.Server(
                host.name,
                name=host.name,
                server_type=SIZES[stack.provider][host.size],
                image=IMAGES[stack.provider],
                location=host.location,
                labels=labels_for(stack, host),
                user_data=cloudinit.user_data(stack, host, list(stack.admin.ssh_keys)),
                ssh_keys=[key.id for key in self.ssh_keys],
                placement_group_id=group.id.apply(int),
                firewall_ids=[args.firewalls[host.name].id.apply(int)],
                networks=[hcloud.ServerNetworkArgs(network_id=args.network.id.apply(int),
                                                   ip=str(host.address))],
                public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.subnet]),
            )
        self.register_outputs({})
