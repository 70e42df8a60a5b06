"""The offsite relay of kit/labstore.py (decision 0282): a socat that forwards one listening
address to the store, found by its pid file, stopped with its per-connection children.
Loopback only: it listens on 127.0.0.1 and forwards to a one-shot server on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading

import pytest

from kit import labstore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat (a host package) missing")
def test_relay_forwards_and_stops_with_its_children(tmp_path, monkeypatch):
    monkeypatch.setattr(labstore, "RELAY_DIR", tmp_path)
    relay_port, store_port = _free_port(), _free_port()
    server = socket.create_server(("127.0.0.1", store_port))
    answered = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"from the store:" + conn.recv(64))
        answered.set()

    threading.Thread(target=serve, daemon=True).start()
    args = labstore._relay_args("127.0.0.1", "127.0.0.1", relay_port, store_port)
    proc = subprocess.Popen(args, start_new_session=True)
    (tmp_path / "trial.pid").write_text(f"{proc.pid}\n")
    try:
        client = None
        for _ in range(50):
            try:
                client = socket.create_connection(("127.0.0.1", relay_port), timeout=2)
                break
            except ConnectionRefusedError:
                threading.Event().wait(0.1)
        assert client is not None, "the relay did not listen within 5 s"
        assert labstore.relay_pid("trial") == proc.pid  # socat by then, not the forked Python
        with client:
            client.sendall(b"ping")
            assert client.recv(64) == b"from the store:ping"
        assert answered.wait(5)
    finally:
        labstore.stop_relay("trial")
        server.close()
        try:
            stopped = proc.wait(5) is not None
        except subprocess.TimeoutExpired:
            stopped = False
            proc.kill()  # never leave a relay behind, even when the test failed
    assert stopped
    assert labstore.relay_pid("trial") is None
    assert not (tmp_path / "trial.pid").exists()


def test_a_pid_file_of_another_program_is_not_a_relay(tmp_path, monkeypatch):
    monkeypatch.setattr(labstore, "RELAY_DIR", tmp_path)
    (tmp_path / "trial.pid").write_text("1\n")  # PID 1 is never socat
    assert labstore.relay_pid("trial") is None
    (tmp_path / "trial.pid").write_text("not a pid\n")
    assert labstore.relay_pid("trial") is None
