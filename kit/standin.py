"""A stand-in for the app on the lab's app hosts, for testing and benching the proxy and the
edge before the real app role deploys there (tests/lab/test_edge.py, ./podium bench edge).

It is NOT the app: a few lines of Python's http.server run as a transient systemd unit
(``podium-standin-<random>``, DynamicUser) on the app port, answering:
  /readyz, /healthz      200 "ready"
  /public/<anything>     200, ``Cache-Control: public, max-age=T`` (``?ttl=T``, default 60),
                         a body of ``?size=N`` bytes (default 2048): anonymous pages, feeds
  anything else          the same, so a personal request that the app wrongly marked public
                         shows whether the edge still refuses to cache it
Every answer names the host in ``X-Standin-Host``. When something already listens on the app
port (the real app), nothing is started and ``start`` returns False.
"""

from __future__ import annotations

import secrets

from kit import ssh
from kit.errors import PodiumError
from kit.paths import StackPaths
from kit.stack import Stack, role_ports

UNIT = "podium-standin"
SCRIPT = "/run/podium-standin.py"

SERVER = r'''
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOST = socket.gethostname()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, body_only=False):
        url = urlsplit(self.path)
        if url.path in ("/readyz", "/healthz"):
            body, ttl = b"ready\n", 0
        else:
            query = parse_qs(url.query)
            size = int(query.get("size", ["2048"])[0])
            ttl = int(query.get("ttl", ["60"])[0])
            body = (b"<p>stand-in page " + url.path.encode() + b"</p>\n").ljust(size, b".")[:size]
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", f"public, max-age={ttl}")
        self.send_header("X-Standin-Host", HOST)
        self.end_headers()
        if not body_only:
            self.wfile.write(body)

    def do_GET(self):
        self._answer()

    def do_HEAD(self):
        self._answer(body_only=True)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
'''


def app_port() -> int:
    return role_ports()["app"][0]["port"]


def _run(stack: Stack, paths: StackPaths, address: str, command: str,
         stdin: str | None = None) -> str:
    import subprocess

    result = subprocess.run(
        ["ssh", *ssh.base_args(paths), f"{stack.admin.user}@{address}", command],
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise PodiumError(f"stand-in app on {address}: '{command}' failed",
                          "check the host with ./podium ssh", detail=result.stderr[-2000:])
    return result.stdout


def start(stack: Stack, paths: StackPaths, address: str) -> bool:
    """Start the stand-in on ``address`` unless the app port is taken; True if started."""
    port = app_port()
    stop(stack, paths, address)
    busy = _run(stack, paths, address, f"sudo ss -Hltn 'sport = :{port}' | wc -l").strip()
    if busy != "0":
        return False
    _run(stack, paths, address, f"sudo tee {SCRIPT} >/dev/null",
         stdin=f"PORT = {port}\n" + SERVER)
    _run(stack, paths, address,
         f"sudo systemd-run --collect --unit={UNIT}-{secrets.token_hex(4)} "
         f"--property=DynamicUser=yes /usr/bin/python3 {SCRIPT} >/dev/null 2>&1")
    return True


def stop(stack: Stack, paths: StackPaths, address: str) -> None:
    _run(stack, paths, address,
         f"sudo systemctl stop '{UNIT}*' 2>/dev/null; sudo systemctl reset-failed '{UNIT}*' "
         f"2>/dev/null; sudo rm -f {SCRIPT}; true")
