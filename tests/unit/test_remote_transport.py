"""The drills' transport (drillkit.Remote through Fabric, decision 0299) against a real SSH
server on loopback: output, exit status, stdin, bytes, timeouts and host-key checks.

The controller runs no sshd, and the lab hosts are only up in the lab tier, so the server
here is paramiko's server side in a thread on 127.0.0.1: it authenticates the client's
ed25519 key and runs each command with bash, as an OpenSSH server would for the admin user.
The drill tier runs the same client code against the lab's real hosts.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import threading
from collections.abc import Iterator

import paramiko
import pytest

from kit import reach
from kit.drillkit import Remote
from kit.errors import PodiumError
from kit.reach import Reach
from kit.stack import load_stack

USER = "podium"


class _Exec(paramiko.ServerInterface):
    """Public-key auth for USER with one key; `exec` requests run with bash."""

    def __init__(self, client_key: paramiko.PKey):
        self.client_key = client_key

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        ok = username == USER and key == self.client_key
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED_OPEN_FAILED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=_run, args=(channel, command.decode()), daemon=True).start()
        return True


def _run(channel: paramiko.Channel, command: str) -> None:
    proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def feed():  # the client's stdin until it shuts its side (EOF)
        while data := channel.recv(65536):
            proc.stdin.write(data)
        proc.stdin.close()

    def drain(stream, send):
        while data := stream.read1(65536):
            send(data)

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, channel.sendall_stderr),
                                daemon=True)]
    for thread in threads:
        thread.start()
    drain(proc.stdout, channel.sendall)
    threads[1].join()
    channel.send_exit_status(proc.wait())
    channel.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict]:
    """A loopback SSH server; yields its port, host key and the client's key file."""
    tmp = tmp_path_factory.mktemp("sshd")
    key_file = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)],
                   check=True)
    client_key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
    host_key = paramiko.ECDSAKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    transports: list[paramiko.Transport] = []

    def accept():
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(sock)
            transport.add_server_key(host_key)
            transports.append(transport)
            try:
                transport.start_server(server=_Exec(client_key))
            except (paramiko.SSHException, EOFError, OSError):
                continue  # a client that refused our host key hangs up here

    threading.Thread(target=accept, daemon=True).start()
    yield {"port": port, "host_key": host_key, "key_file": key_file}
    listener.close()
    for transport in transports:
        transport.close()


def _remote(server, tmp_path, monkeypatch, known: paramiko.PKey | None,
            accept_new: bool = False) -> Remote:
    """A Remote whose one host, db1, is the loopback server; ``known`` is the host key the
    stack's known-hosts file holds for it (None: the file is empty)."""
    known_hosts = tmp_path / "known_hosts"
    line = (f"[127.0.0.1]:{server['port']} {known.get_name()} {known.get_base64()}\n"
            if known else "")
    known_hosts.write_text(line)
    monkeypatch.setattr(reach, "Connection",
                        functools.partial(reach.Connection, port=server["port"]))
    remote = Remote(load_stack("local"), None)
    remote.__dict__["reach"] = Reach("local", USER, {"db1": "127.0.0.1"}, (),
                                     server["key_file"], known_hosts, accept_new)
    return remote


def test_output_exit_status_and_errors(server, tmp_path, monkeypatch):
    remote = _remote(server, tmp_path, monkeypatch, server["host_key"])
    assert remote.run("db1", "echo one; echo two") == "one\ntwo\n"
    assert remote.answers("db1")
    assert remote.run("db1", "exit 3", check=False) == ""
    with pytest.raises(PodiumError) as failed:
        remote.run("db1", "echo why >&2; exit 4")
    assert "failed (exit 4)" in failed.value.message and failed.value.detail == "why\n"
    assert "./podium ssh --stack local db1" in failed.value.hint


def test_bytes_both_ways_and_pipefail(server, tmp_path, monkeypatch):
    remote = _remote(server, tmp_path, monkeypatch, server["host_key"])
    blob = bytes(range(256)) * 64  # every byte value, not text
    file = tmp_path / "blob.bin"
    file.write_bytes(blob)
    assert remote.read_bytes("db1", f"cat {file}") == blob
    # stdin reaches the command and is closed after (cat ends).
    assert remote.read_bytes("db1", "cat", data=b"line 1\nline 2\n") == b"line 1\nline 2\n"
    with pytest.raises(PodiumError, match="failed"):
        remote.read_bytes("db1", f"cat {tmp_path}/missing | cat")  # not hidden by the pipe


def test_a_command_over_its_time_is_named(server, tmp_path, monkeypatch):
    remote = _remote(server, tmp_path, monkeypatch, server["host_key"])
    with pytest.raises(PodiumError, match=r"`sleep 5` took longer than 1s"):
        remote.run("db1", "sleep 5", timeout=1)


def test_an_unknown_or_changed_host_key_is_refused(server, tmp_path, monkeypatch):
    remote = _remote(server, tmp_path, monkeypatch, known=None)
    assert not remote.answers("db1")
    with pytest.raises(PodiumError) as refused:
        remote.run("db1", f"touch {tmp_path}/should-not-exist")
    assert "failed (exit 255)" in refused.value.message
    assert "not found in known_hosts" in refused.value.detail
    changed = _remote(server, tmp_path, monkeypatch, known=paramiko.ECDSAKey.generate())
    assert changed.in_recovery("db1") is None
    with pytest.raises(PodiumError) as bad:
        changed.run("db1", "true")
    assert "BadHostKeyException" in bad.value.detail
    assert not (tmp_path / "should-not-exist").exists()


def test_accept_new_records_the_key_once(server, tmp_path, monkeypatch):
    remote = _remote(server, tmp_path, monkeypatch, known=None, accept_new=True)
    assert remote.run("db1", "echo hi") == "hi\n"
    saved = (tmp_path / "known_hosts").read_text()
    assert f"[127.0.0.1]:{server['port']}" in saved
    assert server["host_key"].get_base64() in saved
