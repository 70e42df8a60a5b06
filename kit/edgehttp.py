"""HTTPS requests to one edge by its address, with the platform's names in SNI and Host
(the lab has no public DNS for podium.test). Used by the lab tests and ./podium bench edge."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from kit.loadgen import SNIConnection


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


def context(trusted_pem: str | None) -> ssl.SSLContext:
    """A client context trusting only ``trusted_pem`` (the lab CA's root, or the edge's own
    self-signed certificate); host names are checked."""
    ctx = ssl.create_default_context(cadata=trusted_pem) if trusted_pem else \
        ssl.create_default_context()
    return ctx


def request(address: str, server_name: str, path: str, ctx: ssl.SSLContext,
            method: str = "GET", headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float = 10) -> Answer:
    conn = SNIConnection(address, 443, server_name, ctx, timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": server_name, **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        merged: dict[str, str] = {}
        for name, value in resp.getheaders():
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return Answer(resp.status, merged, data)
    finally:
        conn.close()
