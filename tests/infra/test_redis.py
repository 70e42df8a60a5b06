"""The redis role: private address only, password required, AOF persistence, no eviction."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from exporter_checks import listening_addresses, metrics_port, scrape, value

testinfra_hosts = ["ansible://redis"]


def _password(stack_vars: dict) -> str:
    return (Path(stack_vars["podium_secrets_dir"]) / "redis").read_text().split()[0]


def _ask(address: str, *commands: bytes) -> bytes:
    """Send inline commands from the controller (on the private network), return the reply."""
    with socket.create_connection((address, 6379), timeout=5) as s:
        s.sendall(b"".join(c + b"\r\n" for c in commands))
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    return reply


def _config(host, stack_vars: dict, name: str) -> str:
    result = host.run("REDISCLI_AUTH=%s redis-cli --raw CONFIG GET %s", _password(stack_vars), name)
    assert result.rc == 0, result.stderr
    return result.stdout.splitlines()[1]


def test_redis_running_and_enabled(host):
    unit = host.service("redis-server")
    assert unit.is_running
    assert unit.is_enabled


def test_redis_listens_only_on_private_address_and_localhost(host, host_vars):
    bound = {s.split("://", 1)[1].rsplit(":", 1)[0]
             for s in host.socket.get_listening_sockets() if s.endswith(":6379")}
    assert bound == {host_vars["podium_private_address"], "127.0.0.1", "::1"}


def test_redis_refuses_unauthenticated_clients(host_vars):
    reply = _ask(host_vars["podium_private_address"], b"PING", b"SET podium-test x")
    assert reply.startswith(b"-NOAUTH")
    assert b"+OK" not in reply and b"+PONG" not in reply


def test_redis_refuses_a_wrong_password(host_vars):
    reply = _ask(host_vars["podium_private_address"], b"AUTH not-the-password", b"PING")
    assert reply.startswith(b"-WRONGPASS")


def test_redis_answers_with_the_password(host_vars, stack_vars):
    reply = _ask(host_vars["podium_private_address"],
                 b"AUTH " + _password(stack_vars).encode(), b"PING")
    assert reply == b"+OK\r\n+PONG\r\n"


@pytest.mark.parametrize(("name", "expected"), [
    ("appendonly", "yes"),
    ("appendfsync", "everysec"),
    ("maxmemory-policy", "noeviction"),
    ("protected-mode", "yes"),
])
def test_redis_persistence_and_memory_policy(host, stack_vars, name, expected):
    assert _config(host, stack_vars, name) == expected


def test_redis_config_file_is_private(host):
    with host.sudo():
        config = host.file("/etc/redis/redis.conf")
        assert config.user == "root"
        assert config.group == "redis"
        assert config.mode == 0o640


def test_redis_exporter_listens_on_the_private_address_only(host, host_vars, stack_vars):
    assert host.service("prometheus-redis-exporter").is_enabled
    assert listening_addresses(host, metrics_port(stack_vars, "redis", "redis")) == {
        host_vars["podium_private_address"]}


def test_redis_exporter_logs_in_with_the_password(host, host_vars, stack_vars):
    text = scrape(host, host_vars["podium_private_address"],
                  metrics_port(stack_vars, "redis", "redis"))
    assert value(text, "redis_up") == 1
    assert value(text, "redis_connected_clients") >= 1


def test_redis_exporter_password_is_readable_by_root_only(host):
    with host.sudo():
        defaults = host.file("/etc/default/prometheus-redis-exporter")
        assert (defaults.user, defaults.mode) == ("root", 0o600)
