"""HTTP requests made from a lab host itself (python3 is on every host; curl is not), so the
source address is the real one the target's rules see. Shared by the role tests."""

from __future__ import annotations

import json

import pytest
import testinfra

# Runs on a lab host: one HTTP request, prints {"status": N, "headers": {...}}.
_CLIENT = r"""
import json, sys, urllib.request, urllib.error
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=body, method=method)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        out = {"status": r.status, "headers": dict(r.headers), "body": r.read().decode()}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "headers": dict(e.headers), "body": ""}
print(json.dumps(out))
"""


def group_host(pytestconfig, inventory, group):
    """(name, testinfra host) of the first host of ``group``; skips when there is none."""
    names = list((inventory["all"]["children"].get(group) or {}).get("hosts") or {})
    if not names:
        pytest.skip(f"the stack has no {group} host")
    return names[0], testinfra.get_host(
        f"ansible://{names[0]}", ansible_inventory=pytestconfig.option.ansible_inventory)


def outsider(pytestconfig, inventory, name: str, groups: tuple[str, ...]):
    """A testinfra host to probe a refusal from: host ``name`` when it holds none of
    ``groups``; otherwise (a one-host stack, where it holds them all) this controller, whose
    bridge address is in the private network but belongs to no host of any role."""
    children = inventory["all"]["children"]
    if any(name in ((children.get(g) or {}).get("hosts") or {}) for g in groups):
        return testinfra.get_host("local://")
    return testinfra.get_host(f"ansible://{name}",
                              ansible_inventory=pytestconfig.option.ansible_inventory)


def http_from(remote, method: str, url: str, body: bytes | None = None) -> dict:
    """One request from ``remote``: {"status", "headers", "body"} (HTTP errors included)."""
    args = [method, url] + ([body.decode()] if body is not None else [])
    result = remote.run("python3 -c " + quote(_CLIENT) + " " + " ".join(map(quote, args)))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
