"""One listening socket per web worker, so that new connections are spread across
`podium-app serve`'s workers by the kernel
(docs/decisions/0301-one-listening-socket-per-web-worker.md).

uvicorn binds one socket and hands it to every worker. Each worker's event loop watches it,
and the worker that wakes first accepts all the pending connections. In a burst test, 16
connections opened together split 14/2, 15/1 and 16/0 between two workers. wrk and HAProxy
keep their connections for a long time, so one worker ends up with most of the work while the
other core idles. With SO_REUSEPORT, each worker gets its own socket bound to the same
address, and the kernel picks a socket for each new connection by a hash of its addresses and
ports.

Everything else stays with uvicorn's supervisor (`Multiprocess`): health checks, replacing
dead or hung workers, rolling restarts on SIGHUP, and SIGTTIN/SIGTTOU. The supervisor builds
every worker as `Process(self.config, self.sockets)`. Here, reading `sockets` binds a fresh
socket for that worker. The parent closes its copy once the worker has started. After that,
the worker holds the only reference, so a worker that dies takes its socket out of the group.
Otherwise the socket would keep receiving connections that nobody accepts.
"""

from __future__ import annotations

import socket
import sys

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess


class AddressInUse(RuntimeError):
    """The address is taken by another process, which would otherwise share its connections."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def claim_port(host: str, port: int) -> int:
    """The port the workers will share, checked free first.

    The check binds without SO_REUSEPORT. If another server already listens there with
    SO_REUSEPORT (an old `podium-app serve` left running), that bind fails. The workers'
    own binds would succeed and quietly split the traffic with it. Port 0 resolves to one
    free port here, so that every worker binds the same one.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AddressInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        return probe.getsockname()[1]


def bind_worker_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT. The worker's event loop calls
    listen() on it."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AddressInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


class SocketPerWorker(Multiprocess):
    """uvicorn's supervisor, except that every worker it starts gets a socket of its own."""

    def __init__(self, config: Config) -> None:
        self._port = claim_port(config.host, config.port)
        self._handed_over: list[socket.socket] = []
        super().__init__(config, sockets=[])

    @property  # type: ignore[override]
    def sockets(self) -> list[socket.socket]:
        """A fresh socket for the worker about to be built (see the module docstring)."""
        sock = bind_worker_socket(self.config.host, self._port)
        self._handed_over.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, value: list[socket.socket]) -> None:
        # Multiprocess.__init__ stores the shared socket list it was given (empty here).
        if value:
            raise ValueError("SocketPerWorker binds its own sockets; pass sockets=[]")

    def _close_handed_over(self) -> None:
        # A worker is spawned with its sockets passed at exec (multiprocessing's spawn
        # context dups the descriptors during Process.start), so once the supervisor's
        # method returns, the parent's copies are no longer needed.
        while self._handed_over:
            self._handed_over.pop().close()

    # The three places the supervisor starts workers: at start, on a signal (SIGHUP's
    # rolling restart, SIGTTIN), and when it replaces a dead or hung worker.
    def init_processes(self) -> None:
        try:
            super().init_processes()
        finally:
            self._close_handed_over()

    def handle_signals(self) -> None:
        try:
            super().handle_signals()
        finally:
            self._close_handed_over()

    def keep_subprocess_alive(self) -> None:
        try:
            super().keep_subprocess_alive()
        finally:
            self._close_handed_over()


def run(config: Config) -> None:
    """Serve `config` with `config.workers` processes, each on its own socket."""
    try:
        supervisor = SocketPerWorker(config)
    except AddressInUse as exc:
        print(f"podium-app serve: {exc}. Stop the server using it, or set "
              "PODIUM_BIND_HOST/PODIUM_BIND_PORT (or --host/--port).", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    supervisor.run()
