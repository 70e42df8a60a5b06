"""Reverse DNS for the mail host at Scaleway: receivers check that the sending address maps
back to the name the host greets with (the MX name). Scaleway refuses a reverse name that
does not resolve to the address yet, so this waits for the host's A record."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.instance as instance


@dataclass
class MailReverseDnsArgs:
    ip: instance.Ip
    zone: str
    fqdn: str
    forward_records: list[pulumi.Resource]


class MailReverseDns(pulumi.ComponentResource):
    def __init__(self, name: str, args: MailReverseDnsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:MailReverseDns", name, None, opts)
        self.ipv4 = instance.IpReverseDns(
            f"{name}-v4", ip_id=args.ip.id, reverse=args.fqdn, zone=args.zone,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.forward_records))
        self.register_outputs({})
