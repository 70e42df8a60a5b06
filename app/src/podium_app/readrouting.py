"""Which database a request reads from: the replica where lag allows, the primary otherwise.

- Only GET/HEAD requests to READ_ONLY_ROUTES (timelines, profiles, post pages: the bulk of
  the traffic, none of which writes) may use the replica; every other request, and every
  request while the replica is lagging or down (podium_app/db.py), uses the primary.
- Read-your-writes: a request that may write (any other method) marks the client in Redis
  for PODIUM_DATABASE_READ_STICKY_SECONDS before its answer leaves, under each identity it
  carries: its bearer token, its session cookie and its address. Reads from a client with a
  marked identity go to the primary, on any app host. The address covers the requests that
  change identity (sign-up, login, OAuth token): the next read has a new cookie or token but
  comes from the same address.
- Redis unreachable: reads go to the primary (correct, only slower).
- Those routes read without a transaction wherever they read (db.read_only_sessions: no
  BEGIN/ROLLBACK round trips; docs/decisions/0210-home-read-cpu.md): they must never write.

docs/decisions/0150-replica-reads.md gives the reasons.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from redis.exceptions import RedisError

SAFE_METHODS = frozenset({"GET", "HEAD"})
READ_ONLY_ROUTES = frozenset({
    # API: timelines, accounts, statuses
    "/api/v1/timelines/home",
    "/api/v1/timelines/public",
    "/api/v1/timelines/tag/{hashtag}",
    "/api/v1/accounts/lookup",
    "/api/v1/accounts/{account_id}",
    "/api/v1/accounts/{account_id}/statuses",
    "/api/v1/accounts/{account_id}/followers",
    "/api/v1/accounts/{account_id}/following",
    "/api/v1/statuses/{status_id}",
    "/api/v1/statuses/{status_id}/context",
    "/api/v1/statuses/{status_id}/favourited_by",
    "/api/v1/statuses/{status_id}/reblogged_by",
    # Web pages: landing, timelines, profiles, post pages
    "/",
    "/public",
    "/tags/{name}",
    "/home",
    "/@{username}",
    "/@{username}/{status_id}",
})
KEY_PREFIX = "podium:wrote:"


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _cookie(scope: dict, name: str) -> str:
    for part in _header(scope, b"cookie").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def identities(scope: dict) -> list[str]:
    """Redis keys for the client of an ASGI HTTP scope: token, session cookie, address.
    Values are hashed: the keys never hold a credential."""
    from podium_app.web.session import SESSION_COOKIE  # here: web imports the API's deps

    found = []
    auth = _header(scope, b"authorization")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        found.append("token:" + auth[7:].strip())
    session = _cookie(scope, SESSION_COOKIE)
    if session:
        found.append("session:" + session)
    client = scope.get("client")
    if client:
        found.append(f"address:{client[0]}")
    return [KEY_PREFIX + hashlib.sha256(item.encode()).hexdigest()[:32] for item in found]


def may_use_replica(scope: dict) -> bool:
    route = scope.get("route")
    return scope.get("method") in SAFE_METHODS and getattr(route, "path", None) in \
        READ_ONLY_ROUTES


async def recently_wrote(redis, keys: Iterable[str]) -> bool:
    """True when one of ``keys`` was marked by a write, or when Redis cannot tell."""
    keys = list(keys)
    if not keys:
        return False
    try:
        return await redis.exists(*keys) > 0
    except (RedisError, OSError):
        return True


class ReadYourWritesMiddleware:
    """Pure ASGI middleware marking the client of every request that may write (see the
    module doc), just before the answer starts, so the client's next read sees the write."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state if "app" in scope else None

        async def _send(message):
            if message["type"] == "http.response.start" and state is not None:
                await _mark(state, scope)
            await send(message)

        await self.app(scope, receive, _send)


async def _mark(state, scope: dict) -> None:
    db = getattr(state, "db", None)
    seconds = state.settings.database_read_sticky_seconds
    if db is None or db.replica is None or seconds <= 0:
        return
    try:
        async with state.redis.pipeline(transaction=False) as pipe:
            for key in identities(scope):
                pipe.set(key, 1, px=int(seconds * 1000))
            await pipe.execute()
    except (RedisError, OSError):
        # Without the mark this client may read a stale replica for up to the allowed lag.
        pass
