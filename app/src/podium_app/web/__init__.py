"""The platform's web pages: server-rendered HTML on the same services as the API.

install(app) adds the pages, the Atom feeds, oEmbed and the static files. Everything the
web front needs lives in this package (templates/, static/, locale/); the logic it runs is
podium_app.services.*, shared with the Mastodon API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from podium_app.web import compose, mailpages, pages

HERE = Path(__file__).parent


def install(app: FastAPI) -> None:
    app.include_router(pages.router)
    app.include_router(compose.router)
    app.include_router(mailpages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
