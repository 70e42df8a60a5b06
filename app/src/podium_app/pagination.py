"""Mastodon pagination: max_id / since_id / min_id / limit and the Link header."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from podium_app import ids


@dataclass
class Page:
    max_id: uuid.UUID | None
    since_id: uuid.UUID | None
    min_id: uuid.UUID | None
    limit: int

    @property
    def ascending(self) -> bool:
        """min_id asks for the entries just after it: read upwards, then reverse."""
        return self.min_id is not None

    def lower(self) -> uuid.UUID | None:
        return self.min_id or self.since_id

    def apply(self, query, column):
        if self.max_id is not None:
            query = query.where(column < self.max_id)
        lower = self.lower()
        if lower is not None:
            query = query.where(column > lower)
        order = column.asc() if self.ascending else column.desc()
        return query.order_by(order).limit(self.limit)

    def finish(self, rows: list) -> list:
        return list(reversed(rows)) if self.ascending else rows

    def keep(self, value: uuid.UUID) -> bool:
        if self.max_id is not None and value >= self.max_id:
            return False
        lower = self.lower()
        return lower is None or value > lower


async def page_params(  # async: a plain def would run in the thread pool on every request
    max_id: Annotated[str | None, Query(max_length=40)] = None,
    since_id: Annotated[str | None, Query(max_length=40)] = None,
    min_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=80)] = 20,
) -> Page:
    # Unknown or malformed ids bound nothing rather than fail, as Mastodon does.
    return Page(ids.parse(max_id), ids.parse(since_id), ids.parse(min_id), min(limit, 40))


def _link(request: Request, first: str, last: str) -> str:
    base = str(request.url.replace(query=""))
    keep = {k: v for k, v in request.query_params.items()
            if k not in ("max_id", "since_id", "min_id")}
    next_url = f"{base}?{urlencode({**keep, 'max_id': last})}"
    prev_url = f"{base}?{urlencode({**keep, 'min_id': first})}"
    return f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'


def link_header(request: Request, response: Response, first: str | None, last: str | None,
                ) -> None:
    """next -> older than the last entry, prev -> newer than the first (Mastodon's Link)."""
    if first is None or last is None:
        return
    response.headers["Link"] = _link(request, first, last)


def json_page(request: Request, entities: list[dict], first: str | None, last: str | None,
              ) -> Response:
    """A rendered page as JSON with its Link header, encoded once by the C JSON encoder
    (the entities are plain JSON values already: FastAPI's field-by-field validation and
    jsonable_encoder pass would cost more than the rendering on timeline reads)."""
    return json_body_page(request, json.dumps(entities, ensure_ascii=False,
                                              separators=(",", ":")).encode(), first, last)


def json_body_page(request: Request, body: bytes, first: str | None, last: str | None,
                   ) -> Response:
    """json_page() for a body encoded already (the home timeline's cached entities)."""
    headers = {"Link": _link(request, first, last)} if first and last else None
    return Response(body, media_type="application/json", headers=headers)
