"""The app factory: create_app(settings) -> FastAPI.

Resources (database engines, Redis, the queue connection) are opened in the lifespan and
kept on app.state, so one process can host several apps with different settings (tests).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from podium_app import __version__, errors, instance_settings, queue, web
from podium_app.api import (
    accounts,
    admin,
    apps,
    instance,
    media,
    notifications,
    oauth,
    ops,
    statuses,
    timelines,
)
from podium_app.api.deps import reject_nul_in_url
from podium_app.db import Database
from podium_app.homefast import HomeFastPath
from podium_app.metrics import MetricsMiddleware
from podium_app.readrouting import ReadYourWritesMiddleware
from podium_app.redis_client import make_redis
from podium_app.settings import Settings, get_settings
from podium_app.statuscache import StatusCache
from podium_app.tokencache import TokenCache

log = logging.getLogger("podium_app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.db = Database.from_settings(settings)
        app.state.db.start()
        app.state.redis = make_redis(settings)
        app.state.queue = await queue.connect(settings)
        try:
            yield
        finally:
            await app.state.queue.aclose()
            await app.state.redis.aclose()
            await app.state.db.dispose()

    app = FastAPI(
        title="Podium",
        version=__version__,
        description="Podium's client API: Mastodon's, so Mastodon apps and libraries work.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_nul_in_url),
                      Depends(instance_settings.load_into_request)],
    )
    app.state.settings = settings
    app.state.status_cache = (StatusCache(settings.status_cache_entries)
                              if settings.status_cache_entries else None)
    app.state.token_cache = (TokenCache(settings.token_cache_entries)
                             if settings.token_cache_entries else None)
    errors.install(app)
    # Timelines first: routes are matched in order, and the home timeline is the busiest
    # (no other route's path overlaps theirs).
    for module in (timelines, ops, instance, apps, oauth, accounts, statuses, notifications,
                   admin, media):
        app.include_router(module.router)
    web.install(app)  # the web pages (podium_app.web): after the API, they share no path
    app.add_middleware(HomeFastPath)  # innermost: inside the metrics, like a route
    app.add_middleware(ReadYourWritesMiddleware)
    app.add_middleware(MetricsMiddleware)
    return app
