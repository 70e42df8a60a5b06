"""A small, bounded HTTP load generator for the lab: steady GETs from a few client threads to
one address (the proxy's private frontend), every answer counted.

Used by tests/lab/test_deploy.py (requests during a rolling deploy must all succeed) and by
``./podium bench proxy`` (uncached timeline throughput through HAProxy). Lab addresses only:
the caller passes an address of its own stack. Plain HTTP/1.1 with keep-alive, one
connection per client, reconnecting after an error (which is counted as a failure).
"""

from __future__ import annotations

import http.client
import statistics
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


class Load:
    """``clients`` threads sending GET ``path_of()`` to ``address:port`` until ``stop()``
    (or ``max_seconds``), pausing ``pause`` seconds between a client's requests.

    Use as a context manager: the load runs inside the ``with`` block.
    """

    def __init__(self, address: str, port: int, host: str, path_of: Callable[[], str],
                 clients: int = 4, pause: float = 0.0, headers: dict[str, str] | None = None,
                 max_seconds: float = 900, timeout: float = 15) -> None:
        self.address, self.port, self.host = address, port, host
        self.path_of, self.clients, self.pause = path_of, clients, pause
        self.headers = {"Host": host, **(headers or {})}
        self.max_seconds, self.timeout = max_seconds, timeout
        self.result = Result()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        deadline = self._started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
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
