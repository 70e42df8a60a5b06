"""The platform's DNS records at Scaleway Domains and DNS, from the kit's record data.

The domain itself must already be in the Scaleway project (registered there, or added as an
external domain in the console): the Pulumi provider manages records and sub-zones, not the
addition of an external apex domain. Scaleway stores one value per record, with the MX
preference in its own field, so each kit record becomes one resource per value. TXT values
are given unquoted, as in Scaleway's own examples (the kit writes zone-file syntax: one or
more quoted strings, which are joined here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.domain as domain

from kit.dns_records import Record


@dataclass
class RecordsArgs:
    domain: str
    records: list[Record]


QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def txt_data(value: str) -> str:
    """Zone-file TXT (one or more quoted strings) as Scaleway's record data."""
    parts = QUOTED.findall(value)
    return "".join(parts) if parts else value


class Records(pulumi.ComponentResource):
    def __init__(self, name: str, args: RecordsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:Records", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.records: list[domain.Record] = []
        self.by_name: dict[tuple[str, str], list[domain.Record]] = {}
        for record in args.records:
            label = "" if record.name == "@" else record.name
            for index, value in enumerate(record.values):
                priority = None
                if record.type == "MX":
                    preference, _, value = str(value).partition(" ")
                    priority = int(preference)
                elif record.type == "TXT":
                    value = txt_data(str(value))
                resource = domain.Record(
                    f"{name}-{record.type.lower()}-{record.name.replace('@', 'apex')}-{index}",
                    dns_zone=args.domain, name=label, type=record.type, data=value,
                    ttl=record.ttl, priority=priority, opts=child)
                self.records.append(resource)
                self.by_name.setdefault((record.name, record.type), []).append(resource)
        self.register_outputs({})
