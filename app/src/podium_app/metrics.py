"""Prometheus metrics: requests, latency, queue depth and age, fan-out lag (/metrics).

The names are the contract with the monitoring role's alert rules (roles/monitoring/README.md:
http_requests_total{status}, http_request_duration_seconds, podium_fanout_queue_lag_seconds);
change both together.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate

REGISTRY = CollectorRegistry()
REQUESTS = Counter("http_requests", "HTTP requests answered", ["method", "route", "status"],
                   registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request",
    ["method", "route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
QUEUE_DEPTH = Gauge("podium_queue_depth", "Jobs waiting in the background queue",
                    registry=REGISTRY)
FANOUT_LAG = Gauge("podium_fanout_lag_seconds",
                   "Seconds between a post's creation and the end of its fan-out (last job)",
                   registry=REGISTRY)
# Grows while the workers are stuck (a lag measured at the end of a fan-out would not).
QUEUE_LAG = Gauge("podium_fanout_queue_lag_seconds",
                  "Age of the oldest job waiting in the background queue (fan-out, mail, media)",
                  registry=REGISTRY)

# Reads from the replica where lag allows (podium_app/db.py).
DB_READS = Counter("podium_db_reads", "Read-only sessions opened, by the server they go to",
                   ["target"], registry=REGISTRY)
REPLICA_LAG = Gauge("podium_db_replica_lag_seconds",
                    "The replica's lag at the last check (NaN: not streaming or unreachable)",
                    registry=REGISTRY)
REPLICA_USABLE = Gauge("podium_db_replica_usable",
                       "1 while reads may go to the replica, 0 while they go to the primary",
                       registry=REGISTRY)
# The home timeline's rendered-status cache (podium_app/statuscache.py), per web worker.
STATUS_CACHE = Counter("podium_status_cache_lookups",
                       "Home timeline entities looked up in the rendered-status cache",
                       ["result"], registry=REGISTRY)
STATUS_CACHE_HITS = STATUS_CACHE.labels(result="hit")
STATUS_CACHE_MISSES = STATUS_CACHE.labels(result="miss")
# The home read's token -> account cache (podium_app/tokencache.py), per web worker: hit (the
# page statement's token check passed), miss (not cached: the token statement ran), refused
# (cached, but the check failed: the ordinary path answered).
TOKEN_CACHE = Counter("podium_token_cache_lookups",
                      "Home timeline reads by what the token -> account cache gave",
                      ["result"], registry=REGISTRY)
TOKEN_CACHE_HITS = TOKEN_CACHE.labels(result="hit")
TOKEN_CACHE_MISSES = TOKEN_CACHE.labels(result="miss")
TOKEN_CACHE_REFUSED = TOKEN_CACHE.labels(result="refused")


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task overhead) timing every HTTP request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUEST_SECONDS.labels(scope["method"], path).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], path, str(status["code"])).inc()


def render() -> tuple[bytes, str]:
    return _generate(REGISTRY), CONTENT_TYPE_LATEST
