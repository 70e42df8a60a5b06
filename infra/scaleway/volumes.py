"""Block volumes for the hosts that keep data (database, media, backup), in each host's zone.
They are attached by the servers (Server.additional_volume_ids) and protected from deletion."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.block as block

from kit.providers import DATA_ROLES, SCALEWAY_VOLUME_IOPS, VOLUME_GB
from kit.stack import Stack


@dataclass
class DataVolumesArgs:
    stack: Stack


class DataVolumes(pulumi.ComponentResource):
    def __init__(self, name: str, args: DataVolumesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:DataVolumes", name, None, opts)
        self.volumes: dict[str, block.Volume] = {}
        for host in args.stack.hosts:
            if not set(host.roles) & set(DATA_ROLES):
                continue
            self.volumes[host.name] = block.Volume(
                f"{host.name}-data", name=f"{host.name}-data", size_in_gb=VOLUME_GB[host.size],
                iops=SCALEWAY_VOLUME_IOPS, zone=host.location,
                tags=[f"podium-stack={args.stack.name}", f"podium-host={host.name}"],
                # Scaleway volumes have no delete-protection flag: Pulumi's protect stands in.
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
        self.register_outputs({})
