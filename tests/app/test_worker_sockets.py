"""`podium-app serve --workers N` gives each worker a listening socket of its own
(SO_REUSEPORT, decision 0301), so new connections spread across the workers, and a worker
that dies takes its socket with it.

These tests start the real command against the tier's PostgreSQL and Redis, and read the
listening sockets' owners with `ss`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from kit.appservices import free_port


def _env(settings) -> dict:
    return {**os.environ, "PODIUM_ENV_FILE": "/dev/null",
            "PODIUM_DATABASE_URL": settings.database_url, "PODIUM_REDIS_URL": settings.redis_url,
            "PODIUM_DATABASE_PGBOUNCER": "false"}


def _listeners(port: int) -> dict[int, int]:
    """Listening socket inode -> the pid holding it, for 127.0.0.1:port."""
    out = subprocess.run(["ss", "-tlnpeH", f"( sport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    found: dict[int, int] = {}
    for line in out.splitlines():
        pids = re.findall(r"pid=(\d+)", line)
        inode = re.search(r"ino:(\d+)", line)
        assert inode and len(pids) == 1, f"one owner per listening socket expected: {line}"
        found[int(inode.group(1))] = int(pids[0])
    return found


def _wait_for_listeners(port: int, count: int, proc: subprocess.Popen,
                        timeout: float = 60) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"podium-app serve exited: {proc.stdout.read()}"
        found = _listeners(port)
        if len(found) == count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} listening sockets expected on port {port}, "
                         f"found {_listeners(port)}")


def _burst(port: int, count: int) -> Counter:
    """Open `count` connections together, get /healthz on each, and count the
    connections per serving pid."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        for conn in conns:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: podium.test\r\n\r\n")
        for conn in conns:
            assert conn.recv(4096).startswith(b"HTTP/1.1 200"), "no answer on a connection"
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
        return Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out))
    finally:
        for conn in conns:
            conn.close()


@pytest.fixture
def served(base_settings) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "podium_app", "serve", "--workers", "2", "--port", str(port)],
        env=_env(base_settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_each_worker_listens_on_a_socket_of_its_own(served):
    proc, port = served
    listeners = _wait_for_listeners(port, 2, proc)
    owners = set(listeners.values())
    assert len(owners) == 2, f"two workers, one socket each: {listeners}"
    # The supervisor keeps no copy: a socket it held would outlive its worker.
    assert proc.pid not in owners
    # 64 connections opened together reach both workers. With a hash per connection the
    # chance of all landing on one is 2 in 2**64; with one shared socket, the worker that
    # wakes first took 15 or 16 of 16 in most trials (docs/perf.md).
    per_worker = _burst(port, 64)
    assert set(per_worker) == owners, per_worker
    assert min(per_worker.values()) >= 8, per_worker


def test_a_dead_workers_socket_goes_with_it(served):
    proc, port = served
    before = _wait_for_listeners(port, 2, proc)
    victim = next(iter(before.values()))
    os.kill(victim, signal.SIGKILL)
    # The supervisor replaces the worker, which binds a new socket.
    deadline = time.monotonic() + 60
    while True:
        after = _listeners(port)
        if len(after) == 2 and victim not in after.values():
            break
        assert time.monotonic() < deadline, f"no replacement worker: {after}"
        time.sleep(0.2)
    assert proc.pid not in after.values()
    # Every connection is answered: none is left queued on a socket nobody accepts from.
    per_worker = _burst(port, 32)
    assert sum(per_worker.values()) == 32
    assert victim not in per_worker


def test_serve_refuses_a_port_another_server_listens_on(served, base_settings):
    proc, port = served
    _wait_for_listeners(port, 2, proc)
    second = subprocess.run(
        [sys.executable, "-m", "podium_app", "serve", "--workers", "2", "--port", str(port)],
        env=_env(base_settings), capture_output=True, text=True, timeout=60)
    assert second.returncode == 3, second.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert len(_listeners(port)) == 2  # the running server is untouched
