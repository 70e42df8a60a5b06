"""Server time of the two pages most visitors land on: the anonymous post page and the
landing page (sequential requests on loopback, one uvicorn worker, the app tier's
PostgreSQL and Redis). Figures are printed (pytest -s) and recorded in docs/perf.md; the
bound is loose, it catches a regression by an order of magnitude (an N+1 query, say)."""

from __future__ import annotations

import statistics
import time
from urllib.parse import urlparse

REQUESTS = 150


def _median_ms(client, path: str) -> float:
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        answer = client.get(path)
        timings.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200
    return statistics.median(timings)


def test_post_and_landing_pages_are_fast(client, make_user, post):
    alice = make_user("alice", publisher=True)
    bob = make_user("bob")
    statuses = [post(alice, f"post {n} #news with a link https://example.org/{n}")
                for n in range(25)]
    for n in range(5):
        post(bob, f"@alice reply {n}", in_reply_to_id=statuses[-1]["id"])
    figures = {"landing": _median_ms(client, "/"),
               "post page": _median_ms(client, urlparse(statuses[-1]["url"]).path)}
    print("\nweb server time, median of", REQUESTS, "sequential requests (ms):",
          {k: round(v, 1) for k, v in figures.items()})
    assert all(value < 250 for value in figures.values()), figures
