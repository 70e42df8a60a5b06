"""The home timeline's common case served below FastAPI (docs/decisions/0250-home-read-raw-
asyncpg.md).

`GET /api/v1/timelines/home` with a bearer token is the busiest request. FastAPI's routing and
dependency solving cost more CPU per read than its four statements; this pure ASGI middleware
answers the request itself when everything about it is ordinary: the exact path, GET, query
parameters FastAPI would accept, a token that passes the route's checks. It runs the same code
as the route (`timelines.home_page`, `deps.raw_auth_by_hash`, `pagination.page_params`), on
the same database choice (primary or replica, `deps.use_replica`; a connection without a
transaction, as the route's read-only session has) and gives the same answer.

Anything else — a bad or missing token, a malformed parameter, NUL in the URL, HEAD, a
trailing slash — goes on to FastAPI untouched, which answers it as it always has (the
refusals and 422s stay FastAPI's and the error handlers'). So the middleware never has to
reproduce an error, only the one answer it gives.

A token it has seen pass (the per-process token cache, podium_app/tokencache.py) is checked
inside the page statement instead of by a statement of its own; a token that fails that
check is looked up as above (docs/decisions/0297-home-read-token-cache.md).
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request

from podium_app import instance_settings, security
from podium_app.api import deps, timelines
from podium_app.errors import ApiError
from podium_app.pagination import page_params
from podium_app.rawsql import Raw
from podium_app.services import feeds

HOME_PATH = "/api/v1/timelines/home"
ID_PARAMS = ("max_id", "since_id", "min_id")


def _route():
    """The FastAPI route object, put in the scope as routing would (the metrics label and
    the replica choice read its path)."""
    return next(route for route in timelines.router.routes
                if getattr(route, "path", None) == HOME_PATH)


def _page_values(query: bytes) -> dict | None:
    """The page parameters when FastAPI would accept them all as they are (ids of at most 40
    characters, a limit of ASCII digits from 1 to 80), else None."""
    if b"%00" in query or b"\x00" in query:  # FastAPI's answer: 422 (deps.reject_nul_in_url)
        return None
    params = QueryParams(query)
    values: dict = {}
    for name in ID_PARAMS:
        value = params.get(name)
        if value is not None and len(value) > 40:
            return None
        values[name] = value
    limit = params.get("limit")
    if limit is not None:
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 80):
            return None
        values["limit"] = int(limit)
    return values


class HomeFastPath:
    """Pure ASGI middleware: see the module doc."""

    def __init__(self, app) -> None:
        self.app = app
        self.route = None

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET"
                or scope["path"] != HOME_PATH):
            await self.app(scope, receive, send)
            return
        response = await self._answer(scope)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _answer(self, scope):
        values = _page_values(scope.get("query_string", b""))
        if values is None:
            return None
        request = Request(scope)
        creds = await deps.bearer(request)
        if creds is None or not creds.credentials:
            return None
        if self.route is None:
            self.route = _route()
        scope["route"] = self.route
        app = scope["app"]
        settings = await instance_settings.effective(app.state.db, app.state.settings)
        page = await page_params(**values)
        # The route's session choice (deps.session_of: a read-only route), minus the session.
        engine = app.state.db.read_only_engine(await deps.use_replica(request))
        token_hash = security.token_hash(creds.credentials)
        tokens = app.state.token_cache
        account_id = tokens.get(token_hash) if tokens is not None else None
        async with Raw.connect(engine) as run:
            if account_id is not None:
                # The token is checked in the page statement
                # (docs/decisions/0297-home-read-token-cache.md); if it fails, the answer
                # is the ordinary path's below, as if the token had never been cached.
                try:
                    response = await timelines.home_page_by_cached_token(
                        request, run, settings, page, token_hash, account_id)
                except feeds.NotBuilt:  # rebuilt below, once the token is checked
                    tokens.checked(token_hash, None)
                else:
                    tokens.checked(token_hash, response is not None)
                    if response is not None:
                        return response
            try:
                auth = await deps.raw_auth_by_hash(run, token_hash, timelines.HOME_SCOPE)
            except ApiError:
                return None  # FastAPI answers the refusal (401, 403, 422)
            if tokens is not None:
                tokens.put(token_hash, auth.account.id)
            return await timelines.home_page(request, run, settings, page, auth)
