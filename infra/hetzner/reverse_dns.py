"""Reverse DNS for the mail host: receivers check that the sending address maps back to
the name the host greets with (the MX name)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud


@dataclass
class MailReverseDnsArgs:
    server: hcloud.Server
    fqdn: str


class MailReverseDns(pulumi.ComponentResource):
    def __init__(self, name: str, args: MailReverseDnsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:MailReverseDns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        server_id = args.server.id.apply(int)
        self.ipv4 = hcloud.Rdns(f"{name}-v4", server_id=server_id,
                                ip_address=args.server.ipv4_address, dns_ptr=args.fqdn,
                                opts=child)
        self.ipv6 = hcloud.Rdns(f"{name}-v6", server_id=server_id,
                                ip_address=args.server.ipv6_address, dns_ptr=args.fqdn,
                                opts=child)
        self.register_outputs({})
