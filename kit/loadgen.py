"""A small, bounded HTTP load generator for the lab: steady GETs from a few client threads to
one address (the proxy's private frontend, or an edge over TLS), every answer counted.

Used by tests/lab/test_deploy.py (requests during a rolling deploy must all succeed),
tests/lab/test_edge.py (a client loop through the edge while app hosts stop) and
``./podium bench proxy`` (uncached timeline throughput through HAProxy or an edge). Lab
addresses only: the caller passes an address of its own stack. HTTP/1.1 with keep-alive, one
connection per client, reconnecting after an error (which is counted as a failure).

Standard library only: ``./podium bench proxy --target edge`` copies this file to the edge
host and runs it there (``python3 loadgen.py`` with a JSON run spec on stdin, see ``main``).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    """Answers of a run: ``ok`` (2xx), ``failed`` (anything else: status or error, by
    reason in ``reasons``), latencies of the 2xx answers in seconds, wall time."""

    ok: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return self.ok + self.failed

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def summary(self) -> str:
        median = statistics.median(self.latencies) * 1000 if self.latencies else float("nan")
        return (f"{self.total} requests in {self.seconds:.1f}s: {self.ok} ok, {self.failed} "
                f"failed{(' ' + dict(self.reasons).__repr__()) if self.reasons else ''}; "
                f"{self.rate:.0f} req/s, median {median:.0f} ms, "
                f"p99 {self.percentile(0.99) * 1000:.0f} ms")


class SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with another name (the platform's) in SNI and in the
    certificate check: the lab has no public DNS for its domain."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(address, port, context=context, timeout=timeout)
        self.server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)


class Load:
    """``clients`` threads sending GET ``path_of()`` to ``address:port`` until ``stop()``
    (or ``max_seconds``), pausing ``pause`` seconds between a client's requests. With
    ``tls`` (a client context), HTTPS with ``host`` in SNI.

    Use as a context manager: the load runs inside the ``with`` block.
    """

    def __init__(self, address: str, port: int, host: str, path_of: Callable[[], str],
                 clients: int = 4, pause: float = 0.0, headers: dict[str, str] | None = None,
                 max_seconds: float = 900, timeout: float = 15,
                 tls: ssl.SSLContext | None = None) -> None:
        self.address, self.port, self.host = address, port, host
        self.path_of, self.clients, self.pause = path_of, clients, pause
        self.headers = {"Host": host, **(headers or {})}
        self.max_seconds, self.timeout, self.tls = max_seconds, timeout, tls
        self.result = Result()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def _connection(self) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        return SNIConnection(self.address, self.port, self.host, self.tls, self.timeout)

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        deadline = self._started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            if conn is None:
                conn = self._connection()
            began = time.monotonic()
            try:
                conn.request("GET", self.path_of(), headers=self.headers)
                answer = conn.getresponse()
                answer.read()
                reason = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
                if answer.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as err:
                reason = type(err).__name__
                if conn is not None:
                    conn.close()
                conn = None
            took = time.monotonic() - began
            with self.result.lock:
                if reason is None:
                    self.result.ok += 1
                    self.result.latencies.append(took)
                else:
                    self.result.failed += 1
                    self.result.reasons[reason] += 1
            if self.pause:
                self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Result:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self.result.seconds = time.monotonic() - self._started
        return self.result

    def __exit__(self, *exc) -> None:
        self.stop()


def run_for(seconds: float, **kwargs) -> Result:
    """A run of ``seconds`` (``Load``'s arguments)."""
    with Load(**kwargs) as load:
        time.sleep(seconds)
    return load.result


def counted(template: str) -> Callable[[], str]:
    """Paths from ``template`` with ``{n}`` replaced by 0, 1, 2, ... (one counter shared by
    every client): a new URL per request, which no cache has seen."""
    counter = iter(range(10**12))
    lock = threading.Lock()

    def path_of() -> str:
        with lock:
            return template.replace("{n}", str(next(counter)))
    return path_of


def main() -> None:
    """One run from a JSON spec on stdin; prints the Result as JSON on stdout.

    Spec: ``address``, ``port``, ``host``, ``path`` (a ``counted`` template), ``seconds``,
    ``clients``; optional ``headers`` (object), ``ca_pem`` (HTTPS, trusting only this PEM).
    Secrets such as a bearer token travel on stdin, never on a command line.
    """
    spec = json.load(sys.stdin)
    tls = None
    if spec.get("ca_pem"):
        tls = ssl.create_default_context(cadata=spec["ca_pem"])
    result = run_for(spec["seconds"], address=spec["address"], port=spec["port"],
                     host=spec["host"], path_of=counted(spec["path"]),
                     clients=spec["clients"], headers=spec.get("headers"), tls=tls)
    json.dump({"ok": result.ok, "failed": result.failed, "reasons": dict(result.reasons),
               "latencies": result.latencies, "seconds": result.seconds}, sys.stdout)


def from_json(text: str) -> Result:
    """The Result ``main`` printed."""
    data = json.loads(text)
    return Result(ok=data["ok"], failed=data["failed"], reasons=Counter(data["reasons"]),
                  latencies=data["latencies"], seconds=data["seconds"])


if __name__ == "__main__":
    main()
