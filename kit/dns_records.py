"""The platform's DNS records, as data: one source for the Pulumi DNS component (cloud)
and the lab's dns role (through the inventory, kit/inventory.py), so both publish the same
zone.

Addresses are passed in (strings in the lab, Pulumi outputs in the cloud): this module only
decides which names exist, their types and what they point to.

DKIM: the mail role generates the key on the controller, into
``<secrets dir>/dkim/<selector>.pub`` (PEM public key); :func:`dkim_from_secrets` reads it
for ``records(..., dkim=...)``. The lab's dns role reads the same file during the converge
(the key is made just before the zone is written) and formats it the same way.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.stack import Stack

TTL = 300


@dataclass(frozen=True)
class Record:
    name: str  # relative to the zone; "@" is the apex
    type: str
    values: tuple[Any, ...]
    ttl: int = TTL


@dataclass(frozen=True)
class Dkim:
    """One DKIM public key published at ``<selector>._domainkey``."""

    selector: str
    public_key_pem: str


# A TXT character-string holds at most 255 bytes; longer values are split into several.
_TXT_CHUNK = 255


def txt(value: str) -> str:
    """``value`` as a TXT record value: quoted strings of at most 255 characters."""
    chunks = [value[i:i + _TXT_CHUNK] for i in range(0, len(value), _TXT_CHUNK)] or [""]
    return " ".join(f'"{chunk}"' for chunk in chunks)


def dkim_value(public_key_pem: str) -> str:
    """The DKIM key record (RFC 6376) for a PEM ``PUBLIC KEY`` (RSA), as one string."""
    body = "".join(line.strip() for line in public_key_pem.strip().splitlines()
                   if not line.startswith("-----"))
    if not body:
        raise ValueError("the DKIM public key is empty: expected a PEM 'PUBLIC KEY' block")
    return f"v=DKIM1; k=rsa; p={body}"


def dkim_from_secrets(secrets_dir: Path, selectors: Sequence[str]) -> list[Dkim]:
    """The DKIM keys of ``selectors`` found in ``secrets_dir/dkim/`` (missing ones skipped:
    the mail role has not generated them yet)."""
    out = []
    for selector in selectors:
        path = Path(secrets_dir) / "dkim" / f"{selector}.pub"
        if path.is_file():
            out.append(Dkim(selector, path.read_text()))
    return out


def mail_host(stack: Stack) -> str | None:
    hosts = [h.name for h in stack.hosts if "mail" in h.roles]
    return hosts[0] if hosts else None


# MTA-STS (RFC 8461): enforce, because the conditions it asks are met by construction: the
# mail role runs only with a CA certificate (Let's Encrypt; the lab's pebble) for exactly the
# MX name, and the policy's mx line comes from the same stack data as the MX record.
# "testing" would protect against nothing (a downgrade by stripping STARTTLS is the attack);
# TLS-RPT reports (_smtp._tls) reach postmaster@ either way. docs/decisions/0190-mta-sts.md.
MTA_STS_MODE = "enforce"
# One week: long enough to cover an attacker-controlled window (RFC 8461 suggests weeks),
# short enough that a change of mail host is honoured within days.
MTA_STS_MAX_AGE = 604800


def mta_sts_policy(stack: Stack) -> str | None:
    """The policy file served at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (by the
    edges), CRLF line endings as RFC 8461 writes them; None when the stack has no mail host."""
    mail = mail_host(stack)
    return _mta_sts_policy(f"{mail}.{stack.domain}") if mail else None


def _mta_sts_policy(mx: str) -> str:
    lines = ["version: STSv1", f"mode: {MTA_STS_MODE}", f"mx: {mx}", f"max_age: {MTA_STS_MAX_AGE}"]
    return "".join(f"{line}\r\n" for line in lines)


def mta_sts_id(policy: str) -> str:
    """The ``id`` of the ``_mta-sts`` TXT record for ``policy``: derived from its content, so
    it changes whenever the policy does (senders refetch the policy only when the id changes).
    RFC 8461 allows 1 to 32 letters and digits."""
    return hashlib.sha256(policy.encode()).hexdigest()[:20]


def records(stack: Stack, ipv4: dict[str, Any], ipv6: dict[str, Any],
            dkim: Sequence[Dkim] = ()) -> list[Record]:
    """Records for ``stack`` given each host's public addresses (host name -> address).

    ``dkim``: the DKIM keys to publish (the active selector and any standby ones, see
    docs/runbooks/dkim-rotation.md); nothing is published for DKIM when it is empty.
    """
    domain = stack.domain
    edges = [h.name for h in stack.hosts if "edge" in h.roles]
    out: list[Record] = []
    for host in stack.hosts:
        out.append(Record(host.name, "A", (ipv4[host.name],)))
        if host.name in ipv6:
            out.append(Record(host.name, "AAAA", (ipv6[host.name],)))
    # The platform and its media are served by the edges.
    for name in ("@", "media", "mta-sts"):
        out.append(Record(name, "A", tuple(ipv4[e] for e in edges)))
        if all(e in ipv6 for e in edges):
            out.append(Record(name, "AAAA", tuple(ipv6[e] for e in edges)))
    mail = mail_host(stack)
    if mail:
        out += [
            Record("@", "MX", (f"10 {mail}.{domain}.",)),
            Record("@", "TXT", ('"v=spf1 mx -all"',)),
            Record("_dmarc", "TXT", (f'"v=DMARC1; p=quarantine; adkim=s; aspf=s; '
                                     f'rua=mailto:postmaster@{domain}"',)),
            # The id follows the policy file the edges serve at mta-sts.<domain>.
            Record("_mta-sts", "TXT",
                   (f'"v=STSv1; id={mta_sts_id(_mta_sts_policy(f"{mail}.{domain}"))}"',)),
            Record("_smtp._tls", "TXT", (f'"v=TLSRPTv1; rua=mailto:postmaster@{domain}"',)),
        ]
        out += [Record(f"{key.selector}._domainkey", "TXT", (txt(dkim_value(key.public_key_pem)),))
                for key in dkim]
    return out


def reverse_zone(cidr: str) -> str:
    """The in-addr.arpa zone holding the PTR records of an IPv4 network, on an octet
    boundary (a /24 or smaller network: its /24; /16 to /23: its /16)."""
    network = ipaddress.ip_network(cidr)
    octets = 3 if network.prefixlen >= 24 else 2 if network.prefixlen >= 16 else 1
    labels = str(network.network_address).split(".")[:octets]
    return ".".join(reversed(labels)) + ".in-addr.arpa"


def ptr_records(stack: Stack, ipv4: dict[str, Any]) -> list[Record]:
    """PTR records (relative to :func:`reverse_zone` of the stack's network) for every host
    whose address is in the network: the lab's reverse DNS, the mail host's included (the
    cloud's reverse DNS is set at the provider, infra/reverse_dns.py)."""
    zone = reverse_zone(stack.network.cidr)
    network = ipaddress.ip_network(stack.network.cidr)
    out = []
    for host in stack.hosts:
        address = ipaddress.ip_address(str(ipv4[host.name]))
        if address in network:
            name = address.reverse_pointer.removesuffix("." + zone)
            out.append(Record(name, "PTR", (f"{host.name}.{stack.domain}.",)))
    return out
