"""The acme role: pebble answers on its port with the API certificate the controller trusts,
its management API stays on loopback, the exported root is the one it issues from, and the
host's own trust store is untouched."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

testinfra_hosts = ["ansible://acme"]


def _exports(stack_vars: dict) -> Path:
    return Path(stack_vars["podium_state_dir"]) / "acme"


def test_pebble_is_running_and_enabled(host):
    service = host.service("pebble")
    assert service.is_running
    assert service.is_enabled


def test_management_api_listens_on_loopback_only(host):
    listening = host.socket.get_listening_sockets()
    assert "tcp://127.0.0.1:15000" in listening
    assert not [s for s in listening if s.endswith(":15000") and "127.0.0.1" not in s]


def test_directory_answers_with_the_exported_api_ca(stack_vars, host_vars):
    """From the controller, as certbot on a lab host sees it: TLS verified with api-root.pem
    only (not the system store), the address on the certificate."""
    port = stack_vars["podium_role_ports"]["acme"][0]["port"]
    context = ssl.create_default_context(cafile=str(_exports(stack_vars) / "api-root.pem"))
    url = f"https://{host_vars['podium_private_address']}:{port}/dir"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        directory = json.load(response)
    assert {"newAccount", "newNonce", "newOrder"} <= set(directory)


def test_exported_root_is_the_one_pebble_issues_from(host, stack_vars):
    with host.sudo():
        current = host.run("python3 -c %s", (
            "import ssl, urllib.request; "
            "ctx = ssl.create_default_context(cafile='/etc/pebble/tls/ca.pem'); "
            "print(urllib.request.urlopen('https://127.0.0.1:15000/roots/0', "
            "context=ctx).read().decode())"))
    assert current.rc == 0, current.stderr
    exported = (_exports(stack_vars) / "root.pem").read_text()
    assert exported.strip() == current.stdout.strip()


def test_host_trust_store_is_untouched(host):
    with host.sudo():
        extra = host.run("find /usr/local/share/ca-certificates -type f").stdout.split()
        bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
        api_ca = host.file("/etc/pebble/tls/ca.pem").content_string
    assert extra == []
    assert api_ca.strip().splitlines()[1] not in bundle
