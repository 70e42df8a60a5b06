"""Block volumes for the hosts that keep data (database, media, backup).

Each volume is attached by its own VolumeAttachment rather than the volume's server_id: the
volume then does not depend on the server, so `pulumi destroy --exclude-protected` (what
./podium down runs) removes the server and the attachment and keeps the protected volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from kit.providers import DATA_ROLES, VOLUME_GB
from kit.stack import Stack


@dataclass
class DataVolumesArgs:
    stack: Stack
    servers: dict[str, hcloud.Server]


class DataVolumes(pulumi.ComponentResource):
    def __init__(self, name: str, args: DataVolumesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:DataVolumes", name, None, opts)
        self.volumes: dict[str, hcloud.Volume] = {}
        self.attachments: dict[str, hcloud.VolumeAttachment] = {}
        for host in args.stack.hosts:
            if not set(host.roles) & set(DATA_ROLES):
                continue
            self.volumes[host.name] = hcloud.Volume(
                f"{host.name}-data", size=VOLUME_GB[host.size], format="ext4",
                location=host.location,
                # Hetzner's delete protection guards against the console and API; Pulumi's
                # protect lets `./podium down` (destroy --exclude-protected) keep the data.
                delete_protection=True,
                labels={"podium-stack": args.stack.name, "podium-host": host.name},
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            self.attachments[host.name] = hcloud.VolumeAttachment(
                f"{host.name}-data-attachment",
                volume_id=self.volumes[host.name].id.apply(int),
                server_id=args.servers[host.name].id.apply(int), automount=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({})
