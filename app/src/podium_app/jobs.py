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


async def templated_mail(request: Request, to: str, template: str, locale: str,
                         params: dict) -> None:
    """A localized text + HTML mail (podium_app.web.mailrender) through the queue."""
    await enqueue(request, "send_templated_mail", to, template, locale, params)
