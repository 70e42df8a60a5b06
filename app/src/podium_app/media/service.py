"""Media attachments: create from an upload, render as Mastodon's MediaAttachment, attach to
a post, delete files at the origin when nothing references them any more."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app.errors import ApiError, unprocessable
from podium_app.ids import new_id, to_str
from podium_app.media import storage, video
from podium_app.media.processing import MediaRefused, process_image
from podium_app.models import Account, MediaAttachment
from podium_app.settings import Settings

log = logging.getLogger("podium_app.media")
MAX_PER_STATUS = 4


def _meta(width: int, height: int) -> dict:
    return {"width": width, "height": height, "size": f"{width}x{height}",
            "aspect": round(width / height, 4) if height else None}


async def create(session: AsyncSession, settings: Settings, store: storage.Storage,
                 owner: Account, data: bytes, content_type: str | None,
                 description: str) -> MediaAttachment:
    if (content_type or "").startswith("video/") or video.looks_like_video(data):
        return await _create_video(session, settings, store, owner, data, content_type,
                                   description)
    try:
        result = await asyncio.to_thread(
            process_image, data, content_type, max_bytes=settings.media_max_image_bytes,
            max_pixels=settings.media_max_image_pixels,
            output_pixels=settings.media_output_pixels)
    except MediaRefused as err:
        raise unprocessable(str(err)) from err
    names = []
    for rendition in (result.original, result.preview):
        name = storage.name_for(rendition.data, rendition.ext)
        try:
            await asyncio.to_thread(store.put, name, rendition.data, rendition.content_type)
        except storage.StorageError as err:
            log.error("media upload failed: %s", err)
            raise ApiError(503, "The media storage is unavailable, try again later") from err
        names.append(name)
    media = MediaAttachment(
        id=new_id(), account_id=owner.id, type="image", file_name=names[0],
        preview_name=names[1], description=description, blurhash=result.blurhash,
        meta={"original": _meta(result.original.width, result.original.height),
              "small": _meta(result.preview.width, result.preview.height)})
    session.add(media)
    await session.flush()
    return media


async def _create_video(session, settings, store, owner, data, content_type,
                        description) -> MediaAttachment:
    try:
        probed = await asyncio.to_thread(
            video.probe, data, content_type, max_bytes=settings.media_max_video_bytes,
            max_seconds=settings.media_max_video_seconds,
            max_pixels=settings.media_max_video_pixels)
    except MediaRefused as err:
        raise unprocessable(str(err)) from err
    source = storage.name_for(data, "src")
    try:
        await asyncio.to_thread(store.put, source, data, "application/octet-stream")
    except storage.StorageError as err:
        log.error("media upload failed: %s", err)
        raise ApiError(503, "The media storage is unavailable, try again later") from err
    media = MediaAttachment(
        id=new_id(), account_id=owner.id, type="video", description=description,
        meta={"source": source, "processing": True,
              "original": {**_meta(probed.width, probed.height),
                           "duration": round(probed.duration, 3)}})
    session.add(media)
    await session.flush()
    return media


def processing(media: MediaAttachment) -> bool:
    return bool(media.meta.get("processing"))


async def transcode(session: AsyncSession, settings: Settings, store: storage.Storage,
                    media_id: uuid.UUID) -> None:
    """The worker's half of a video upload. Never raises for bad input: a file ffmpeg cannot
    handle marks the attachment failed (url stays null) and the job ends."""
    media = await session.get(MediaAttachment, media_id)
    if media is None or not processing(media):
        return  # deleted meanwhile, or done already (the job is idempotent)
    source = media.meta["source"]
    data = await asyncio.to_thread(store.get, source)
    meta = dict(media.meta)
    try:
        if data is None:
            raise RuntimeError("the uploaded file is missing at the origin")
        mp4, poster = await asyncio.to_thread(video.transcode, data)
        still = await asyncio.to_thread(
            process_image, poster, "image/jpeg", max_bytes=50_000_000,
            max_pixels=settings.media_max_video_pixels, output_pixels=settings.media_output_pixels)
    except (RuntimeError, MediaRefused, OSError) as err:
        log.error("video %s could not be processed: %s", media.id, err)
        meta.update(processing=False, failed=True)
        media.meta = meta
        return
    media.file_name = storage.name_for(mp4, "mp4")
    await asyncio.to_thread(store.put, media.file_name, mp4, "video/mp4")
    media.preview_name = storage.name_for(still.preview.data, still.preview.ext)
    await asyncio.to_thread(store.put, media.preview_name, still.preview.data,
                            still.preview.content_type)
    media.blurhash = still.blurhash
    meta.pop("source", None)
    meta.update(processing=False,
                small={**_meta(still.preview.width, still.preview.height)})
    media.meta = meta
    await session.flush()
    if not await session.scalar(select(func.count()).select_from(MediaAttachment).where(
            MediaAttachment.meta["source"].astext == source)):
        await asyncio.to_thread(store.delete, source)


def render(media: MediaAttachment, settings: Settings) -> dict:
    url = storage.public_url(settings, media.file_name) if media.file_name else None
    preview = storage.public_url(settings, media.preview_name) if media.preview_name else None
    return {"id": to_str(media.id), "type": media.type, "url": url, "preview_url": preview,
            "remote_url": None, "text_url": None,
            "meta": {k: v for k, v in media.meta.items() if k in ("original", "small")},
            "description": media.description or None, "blurhash": media.blurhash}


async def attach(session: AsyncSession, owner: Account, status_id: uuid.UUID,
                 media_ids: list[uuid.UUID | None], *, allow_processing: bool = False) -> None:
    """Give unattached media of `owner` to a post, in order; 422 for anything else.

    allow_processing: attach a video the worker is still transcoding (the web form; the
    API refuses it as Mastodon does, and its clients retry)."""
    if len(media_ids) > MAX_PER_STATUS:
        raise unprocessable(f"at most {MAX_PER_STATUS} attachments per post")
    if any(i is None for i in media_ids) or len(set(media_ids)) != len(media_ids):
        raise unprocessable("unknown or repeated media_ids")
    rows = {m.id: m for m in (await session.scalars(select(MediaAttachment).where(
        MediaAttachment.id.in_(media_ids)))).all()}
    found = [rows.get(i) for i in media_ids]
    if any(m is not None and m.type == "video" for m in found) and len(found) > 1:
        raise unprocessable("a post takes one video, or up to 4 images")
    for position, media_id in enumerate(media_ids):
        media = rows.get(media_id)
        if media is None or media.account_id != owner.id or media.status_id is not None:
            raise unprocessable("unknown media_ids or media already attached")
        if not allow_processing and (processing(media) or media.file_name is None):
            raise unprocessable("Cannot attach files that have not finished processing. "
                                "Try again in a moment!")
        media.status_id = status_id
        media.position = position


async def for_statuses(session: AsyncSession,
                       status_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[MediaAttachment]]:
    rows = (await session.scalars(select(MediaAttachment).where(
        MediaAttachment.status_id.in_(status_ids)).order_by(MediaAttachment.position))).all()
    out: dict[uuid.UUID, list[MediaAttachment]] = {}
    for media in rows:
        out.setdefault(media.status_id, []).append(media)
    return out


async def names_of(session: AsyncSession, status_id: uuid.UUID) -> list[str]:
    rows = (await session.execute(select(MediaAttachment.file_name, MediaAttachment.preview_name)
                                  .where(MediaAttachment.status_id == status_id))).all()
    return [n for row in rows for n in row if n]


async def unreferenced(session: AsyncSession, names: list[str]) -> list[str]:
    """The names no remaining attachment uses (identical uploads share a name), sorted."""
    free = []
    for name in sorted(set(names)):
        used = await session.scalar(select(func.count()).select_from(MediaAttachment).where(
            (MediaAttachment.file_name == name) | (MediaAttachment.preview_name == name)))
        if not used:
            free.append(name)
    return free


async def delete_unreferenced(session: AsyncSession, store: storage.Storage,
                              names: list[str]) -> None:
    """Delete files no remaining attachment uses, at once and best effort: the purge_media
    job that follows deletes them again with retries, then purges the edges."""
    for name in await unreferenced(session, names):
        try:
            await asyncio.to_thread(store.delete, name)
        except storage.StorageError as err:
            # The row is gone; the purge_media job tries again. Logged so an operator sees it.
            log.error("could not delete %s at the media origin: %s", name, err)
