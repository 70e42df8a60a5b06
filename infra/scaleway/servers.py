"""The servers at Scaleway: one instance per host, with a routed public IPv4, attached to the
private network at the stack file's address, spread over one placement group per zone,
tagged with the stack and roles, and started with the lab's own cloud-init user-data."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.block as block
import pulumiverse_scaleway.iam as iam
import pulumiverse_scaleway.instance as instance
import pulumiverse_scaleway.ipam as ipam
import pulumiverse_scaleway.network as network

from kit import cloudinit
from kit.providers import IMAGES, PLACEMENT_GROUP_SIZE, SCALEWAY_ROOT_VOLUME_GB, SIZES
from kit.stack import Stack
from scaleway.tags import tags_for


@dataclass
class ServersArgs:
    stack: Stack
    private_network: network.PrivateNetwork
    addresses: dict[str, ipam.Ip]
    security_groups: dict[str, instance.SecurityGroup]
    volumes: dict[str, block.Volume]


class Servers(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:Servers", name, None, opts)
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        # Project keys are what Scaleway's own rescue and console tools use; the admin user's
        # keys come from the user-data, as in the lab.
        self.ssh_keys = [
            iam.SshKey(f"{name}-operator-{index}", name=f"podium-{stack.name}-{index}",
                       public_key=key, opts=child)
            for index, key in enumerate(stack.admin.ssh_keys)
        ]
        size = PLACEMENT_GROUP_SIZE["scaleway"]
        self.placement_groups: dict[tuple[str, int], instance.PlacementGroup] = {}
        placed: dict[str, int] = {}
        self.public_ipv4: dict[str, instance.Ip] = {}
        self.servers: dict[str, instance.Server] = {}
        self.nics: dict[str, instance.PrivateNic] = {}
        for host in stack.hosts:
            zone = host.location or ""
            key = (zone, placed.get(zone, 0) // size)
            placed[zone] = placed.get(zone, 0) + 1
            if key not in self.placement_groups:
                self.placement_groups[key] = instance.PlacementGroup(
                    f"{name}-spread-{zone}-{key[1]}", zone=zone,
                    policy_type="max_availability", policy_mode="optional",
                    tags=tags_for(stack), opts=child)
            self.public_ipv4[host.name] = instance.Ip(
                f"{host.name}-ipv4", type="routed_ipv4", zone=zone, tags=tags_for(stack, host),
                opts=child)
            volume = args.volumes.get(host.name)
            self.servers[host.name] = instance.Server(
                host.name,
                name=host.name,
                type=SIZES["scaleway"][host.size],
                image=IMAGES["scaleway"],
                zone=zone,
                root_volume={"size_in_gb": SCALEWAY_ROOT_VOLUME_GB, "volume_type": "sbs_volume"},
                tags=tags_for(stack, host),
                user_data={"cloud-init": cloudinit.user_data(stack, host,
                                                             list(stack.admin.ssh_keys))},
                ip_ids=[self.public_ipv4[host.name].id],
                security_group_id=args.security_groups[host.name].id,
                placement_group_id=self.placement_groups[key].id,
                additional_volume_ids=[volume.id] if volume is not None else [],
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.ssh_keys),
            )
            self.nics[host.name] = instance.PrivateNic(
                f"{host.name}-private", server_id=self.servers[host.name].id,
                private_network_id=args.private_network.id, zone=zone,
                ipam_ip_ids=[args.addresses[host.name].id], tags=tags_for(stack, host),
                opts=child)
        self.register_outputs({})
