"""Queue jobs (arq) and the worker's settings. Every job is idempotent.

Retries: a job that raises arq.Retry (mail server down, ...) runs again after a growing
delay, up to MAX_TRIES; mail is therefore delayed, not lost, while the SMTP server is away.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

from arq import Retry, cron, func

from podium_app import bounces, instance_settings, mail, queue
from podium_app.db import Database
from podium_app.redis_client import make_redis
from podium_app.services import accounts as account_service
from podium_app.services import digest, feeds
from podium_app.settings import Settings

log = logging.getLogger("podium_app.worker")
MAX_TRIES = 12
# A purge is retried until its deadline (PODIUM_EDGE_PURGE_RETRY_SECONDS, 1 day by default):
# with the backoff capped at 30 minutes a day takes about 56 tries.
PURGE_MAX_TRIES = 100


def _backoff(try_number: int) -> int:
    return min(5 * 2 ** (try_number - 1), 1800)


async def _undeliverable(ctx: dict, to: str) -> bool:
    """True (and logged) when `to` bounced hard before: the mail is dropped, not retried."""
    async with ctx["db"].sessions() as session:
        if await bounces.is_undeliverable(session, to):
            log.info("not mailing %s: the address bounced (hard) before", to)
            return True
    return False


async def send_mail(ctx: dict, to: str, subject: str, body: str) -> None:
    settings: Settings = ctx["settings"]
    if await _undeliverable(ctx, to):
        return
    message = mail.build(settings, to, subject, body)
    try:
        await asyncio.to_thread(mail.send, settings, message)
    except (OSError, mail.smtplib.SMTPException) as err:
        log.warning("mail to %s failed (%s), retrying", to, err)
        raise Retry(defer=_backoff(ctx.get("job_try", 1))) from err


async def send_templated_mail(ctx: dict, to: str, template: str, locale: str,
                              params: dict, unsubscribe_url: str | None = None) -> None:
    """Localized text + HTML mail (mailtemplates.py), with the same retries as send_mail."""
    settings: Settings = ctx["settings"]
    if await _undeliverable(ctx, to):
        return
    message = mail.build_templated(settings, to, template, locale, params, unsubscribe_url)
    try:
        await asyncio.to_thread(mail.send, settings, message)
    except (OSError, mail.smtplib.SMTPException) as err:
        log.warning("mail to %s failed (%s), retrying", to, err)
        raise Retry(defer=_backoff(ctx.get("job_try", 1))) from err


async def fanout_status(ctx: dict, status_id: str) -> None:
    await feeds.fan_out(ctx["db"], ctx["redis"], ctx["settings"], status_id)


async def unfan_statuses(ctx: dict, status_ids: list[str], author_id: str) -> None:
    await feeds.remove_everywhere(ctx["db"], ctx["redis"], status_ids, author_id)


async def admit_waitlist(ctx: dict) -> int:
    """Admit waitlisted accounts at PODIUM_WAITLIST_ADMIT_PER_HOUR or the admins' run-time
    setting (runs every minute)."""
    settings = await instance_settings.effective(ctx["db"], ctx["settings"])
    per_minute = settings.waitlist_admit_per_hour / 60
    if per_minute <= 0:
        return 0
    # Carry fractions over minutes so e.g. 30/hour admits one every other minute.
    credit = float(await ctx["redis"].incrbyfloat("podium:waitlist:credit", per_minute))
    count = int(credit)
    if count < 1:
        return 0
    async with ctx["db"].sessions() as session, session.begin():
        admitted = await account_service.admit(session, count)
    await ctx["redis"].incrbyfloat("podium:waitlist:credit", -count)
    return len(admitted)


async def send_digests(ctx: dict) -> int:
    """Queue the email digests that are due (services/digest.py; runs hourly). Returns how
    many were queued."""
    settings: Settings = ctx["settings"]
    now = datetime.now(UTC)
    queued, after = 0, None
    while True:
        async with ctx["db"].sessions() as session, session.begin():
            due, after = await digest.due(session, settings, now, after)
        for item in due:
            try:
                await ctx["queue"].enqueue_job(
                    "send_templated_mail", item.to, "digest", item.locale, item.params,
                    item.unsubscribe_url, _queue_name=queue.QUEUE_NAME)
                queued += 1
            except Exception as err:  # the queue's Redis went away: this digest is lost
                log.error("could not queue the digest for %s: %s", item.account_id, err)
        if after is None:
            return queued


async def process_bounces(ctx: dict) -> dict:
    """Read the bounce mailbox (every minute, when PODIUM_BOUNCE_IMAP_HOST is set): hard
    bounces mark their address undeliverable (podium_app.bounces). Never fails the worker:
    an unreachable mailbox is logged and read again at the next run."""
    settings: Settings = ctx["settings"]
    if not settings.bounce_imap_host:
        return {}
    try:
        counts = await bounces.process_mailbox(settings, ctx["db"])
    except (OSError, bounces.imaplib.IMAP4.error) as err:
        log.warning("bounce mailbox %s unreadable: %s", settings.bounce_imap_host, err)
        return {}
    return dict(counts)


async def transcode_video(ctx: dict, media_id: str) -> None:
    from podium_app.media import service as media_service
    from podium_app.media import storage

    settings: Settings = ctx["settings"]
    parsed = uuid.UUID(media_id)
    async with ctx["db"].sessions() as session, session.begin():
        await media_service.transcode(session, settings, storage.from_settings(settings),
                                      parsed)


async def delete_account(ctx: dict, account_id: str) -> dict:
    """Real deletion of an account scheduled by services.deletion.schedule (idempotent)."""
    from podium_app.media import storage
    from podium_app.services import deletion

    result = await deletion.purge(ctx["db"], ctx["redis"],
                                  storage.from_settings(ctx["settings"]), account_id)
    if result.get("names"):
        await ctx["queue"].enqueue_job("purge_media", result["names"],
                                       _queue_name=queue.QUEUE_NAME)
    return result


async def purge_media(ctx: dict, names: list[str]) -> dict:
    """After a deletion (docs/decisions/0180-edge-purge.md): delete at the origin the names
    no attachment uses any more (again: the request's attempt was best effort), retrying
    while the origin is away, then queue one purge_edge job per edge, so that one edge being
    down neither blocks the others nor the deletion."""
    from podium_app.media import service as media_service
    from podium_app.media import storage

    settings: Settings = ctx["settings"]
    async with ctx["db"].sessions() as session:
        free = await media_service.unreferenced(session, names)
    store = storage.from_settings(settings)
    for name in free:
        try:
            await asyncio.to_thread(store.delete, name)
        except storage.StorageError as err:
            log.warning("media origin: %s, retrying", err)
            raise Retry(defer=_backoff(ctx.get("job_try", 1))) from err
    deadline = time.time() + settings.edge_purge_retry_seconds
    for edge in settings.edge_purge_targets:
        if free:
            await ctx["queue"].enqueue_job("purge_edge", edge, free, deadline,
                                           _queue_name=queue.QUEUE_NAME)
    return {"deleted": len(free), "edges": len(settings.edge_purge_targets) if free else 0}


async def purge_edge(ctx: dict, edge: str, names: list[str], deadline: float) -> dict:
    """Refresh `names` at one edge's purge listener (media/purge.py). While the edge does not
    answer, retried with backoff until `deadline` (Unix time): past it, the edge's own
    ceiling (edge_media_cache_valid) has expired the copy anyway, so the purge is dropped
    with an error in the log."""
    from podium_app.media import purge

    try:
        return await asyncio.to_thread(purge.refresh, edge, names)
    except purge.PurgeError as err:
        if time.time() >= deadline:
            log.error("gave up purging %d names at %s (%s): its cache ceiling covers them",
                      len(names), edge, err)
            return {}
        log.warning("purge at %s failed (%s), retrying", edge, err)
        raise Retry(defer=min(_backoff(ctx.get("job_try", 1)),
                              max(1, int(deadline - time.time())))) from err


def _startup_for(settings: Settings):
    async def startup(ctx: dict) -> None:
        ctx["settings"] = settings
        # Jobs read what the request that queued them has just written: the primary only.
        ctx["db"] = Database.from_settings(settings, use_replica=False)
        ctx["redis"] = make_redis(settings)
        ctx["queue"] = await queue.connect(settings)  # jobs that queue jobs (digests)

    return startup


async def _shutdown(ctx: dict) -> None:
    await ctx["redis"].aclose()
    await ctx["queue"].aclose()
    await ctx["db"].dispose()


def worker_settings(settings: Settings) -> dict:
    """Keyword arguments for arq.Worker."""
    return {
        "functions": [send_mail, send_templated_mail, fanout_status, unfan_statuses,
                      transcode_video, send_digests, delete_account, purge_media,
                      func(purge_edge, max_tries=PURGE_MAX_TRIES)],
        "cron_jobs": [cron(admit_waitlist, second=0, run_at_startup=False),
                      cron(send_digests, minute=7, second=30, run_at_startup=False),
                      cron(process_bounces, second=30, run_at_startup=False)],
        "on_startup": _startup_for(settings),
        "on_shutdown": _shutdown,
        "redis_settings": queue.redis_settings(settings),
        "queue_name": queue.QUEUE_NAME,
        "max_tries": MAX_TRIES,
        "max_jobs": 20,
        "job_timeout": 300,
        "handle_signals": True,
    }
