"""The deployed app, from the controller: its command on an app host (over SSH) and its API
through the proxy's private frontend (plain HTTP, lab addresses only).

Used by tests/lab/test_deploy.py, tests/lab/test_edge.py and ./podium bench proxy.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets

from kit import ssh
from kit.errors import PodiumError

APP_CLI = ("sudo -u podium-app env PODIUM_ENV_FILE=/etc/podium/app.env "
           "/opt/podium/app/current/venv/bin/podium-app")


def on(stack, paths, address: str, command: str) -> str:
    """stdout of ``command`` on a lab host; raises PodiumError when it fails."""
    result = ssh.run(paths, stack.admin.user, address, command)
    if result.returncode != 0:
        raise PodiumError(f"'{command}' failed on {address}", "check the host with ./podium ssh",
                          detail=result.stderr[-2000:])
    return result.stdout.strip()


# HAProxy's runtime API on the proxy host (roles/proxy), and its app backend's name.
HAPROXY_SOCKET = "/run/haproxy/admin.sock"
HAPROXY_BACKEND = "app"
# Run as root on the proxy host: one runtime API command (argv[2]), prints the answer.
HAPROXY_RUNTIME = (
    "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
    "s.sendall(sys.argv[2].encode()+b\"\\n\"); "
    "print(b\"\".join(iter(lambda: s.recv(65536), b\"\")).decode())' "
)


def haproxy(stack, paths, proxy_address: str, command: str) -> str:
    """The answer of HAProxy's runtime API to ``command`` (e.g. "show stat")."""
    return on(stack, paths, proxy_address, f"sudo {HAPROXY_RUNTIME}{HAPROXY_SOCKET} '{command}'")


def call(stack, proxy: tuple[str, int], method: str, path: str, token: str | None = None,
         body: dict | None = None, headers: dict | None = None, status: int = 200):
    """One API request through the proxy; the JSON answer (None for an empty body).
    Raises AssertionError naming the request when the status differs from ``status``."""
    conn = http.client.HTTPConnection(*proxy, timeout=15)
    head = {"Host": stack.domain, **({"Authorization": f"Bearer {token}"} if token else {}),
            **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        head["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=head)
        answer = conn.getresponse()
        payload = answer.read()
    finally:
        conn.close()
    assert answer.status == status, (method, path, answer.status, payload[:300])
    return json.loads(payload) if payload else None


def account(stack, paths, proxy, app_address: str, prefix: str, publisher: bool) -> dict:
    """A new confirmed account made with the app's command: name, token, API id."""
    name = f"{prefix}{secrets.token_hex(3)}"
    on(stack, paths, app_address, f"{APP_CLI} create-user {name} {name}@{stack.domain}"
                                  + (" --role owner --publisher" if publisher else ""))
    out = on(stack, paths, app_address, f"{APP_CLI} tokens create {name}")
    token = re.search(r"token: (\S+)", out).group(1)
    me = call(stack, proxy, "GET", "/api/v1/accounts/verify_credentials", token)
    return {"name": name, "token": token, "id": me["id"]}
