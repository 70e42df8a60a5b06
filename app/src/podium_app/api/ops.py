"""Operations endpoints: /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from podium_app import metrics, migrate, queue

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready for traffic: PostgreSQL and Redis answer and the schema suits the code (at its
    head migration, or at a later release's during a rolling deploy: migrate.schema_state)."""
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            current = await migrate.current_revision(state.db.writer)
        checks["database"] = "ok"
        checks["migrations"] = migrate.schema_state(current)
    except Exception as err:  # any failure means not ready; the reason goes to the operator
        checks["database"] = f"unreachable: {type(err).__name__}"
        checks["migrations"] = "unknown"
    try:
        async with asyncio.timeout(3):
            await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as err:
        checks["redis"] = f"unreachable: {type(err).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    try:
        metrics.QUEUE_DEPTH.set(await queue.depth(request.app.state.queue))
        metrics.QUEUE_LAG.set(await queue.oldest_age(request.app.state.queue))
        lag = await request.app.state.redis.get("podium:fanout:lag")
        if lag is not None:
            metrics.FANOUT_LAG.set(float(lag))
    except Exception:  # metrics must answer even when Redis is down
        pass
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
