"""Enqueueing from request handlers: after the commit, and never failing the request."""

from __future__ import annotations

import logging

from fastapi import Request

log = logging.getLogger("podium_app.jobs")


async def enqueue(request: Request, function: str, *args) -> None:
    try:
        await request.app.state.queue.enqueue_job(function, *args)
    except Exception as err:  # Redis down: the data is committed; feeds rebuild on read
        log.error("could not enqueue %s: %s", function, err)


async def mail(request: Request, to: str, subject: str, body: str) -> None:
    await enqueue(request, "send_mail", to, subject, body)
