"""The platform's DNS zone at the provider, from the kit's record data (kit.dns_records)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from kit.dns_records import Record


@dataclass
class ZoneArgs:
    domain: str
    records: list[Record]
    labels: dict[str, str]


class Zone(pulumi.ComponentResource):
    def __init__(self, name: str, args: ZoneArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:Zone", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.zone = hcloud.Zone(name, name=args.domain, mode="primary", ttl=300,
                                labels=args.labels, opts=child)
        self.rrsets = [
            hcloud.ZoneRrset(
                f"{name}-{record.type.lower()}-{record.name.replace('@', 'apex')}",
                zone=self.zone.name, name=record.name, type=record.type, ttl=record.ttl,
                records=[hcloud.ZoneRrsetRecordArgs(value=value) for value in record.values],
                opts=child)
            for record in args.records
        ]
        self.register_outputs({"zone": self.zone.name})
