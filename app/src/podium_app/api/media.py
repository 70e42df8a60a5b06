"""/api/v1/media and /api/v2/media: upload, read, describe (Mastodon's MediaAttachment).

Images are processed during the request (about a second for a 12 MP photo), so both
versions answer 200 with the URLs set. Videos are probed during the request and transcoded
by the worker: 202 with url null until then, and GET answers 206 while processing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from podium_app import ids, jobs
from podium_app.api.deps import AppSettings, Auth, Session, require, user_of
from podium_app.errors import not_found, unprocessable
from podium_app.media import service, storage
from podium_app.models import MediaAttachment

router = APIRouter(tags=["media"])


def store_of(request: Request) -> storage.Storage:
    """The storage backend for the app's current settings (built once per configuration)."""
    state = request.app.state
    settings = state.settings
    key = (settings.media_backend, settings.media_dir, settings.media_webdav_url,
           settings.media_s3_endpoint, settings.media_s3_bucket)
    cached = getattr(state, "media_storage", None)
    if cached is None or cached[0] != key:
        state.media_storage = cached = (key, storage.from_settings(settings))
    return cached[1]


async def forget(request: Request, session, names: list[str]) -> None:
    """The files of posts whose rows are deleted (committed): deleted at the origin now (best
    effort), then the purge_media job deletes them again with retries and purges every edge's
    cached copy (docs/decisions/0180-edge-purge.md)."""
    if not names:
        return
    await service.delete_unreferenced(session, store_of(request), names)
    await jobs.enqueue(request, "purge_media", sorted(set(names)))


async def _upload(request: Request, session, settings, auth: Auth, file: UploadFile,
                  description: str):
    if len(description) > 1500:
        raise unprocessable("description is longer than 1500 characters")
    # Read one byte past the largest limit: enough to know it is too large, never the whole
    # body (processing then applies the image or the video limit).
    limit = max(settings.media_max_image_bytes, settings.media_max_video_bytes)
    data = await file.read(limit + 1)
    media = await service.create(session, settings, store_of(request), user_of(auth), data,
                                 file.content_type, description)
    await session.commit()
    if service.processing(media):
        await jobs.enqueue(request, "transcode_video", str(media.id))
        # Mastodon: 202 Accepted and url null until the worker is done.
        return JSONResponse(service.render(media, settings), status_code=202)
    return service.render(media, settings)


@router.post("/api/v2/media")
async def upload_v2(request: Request, session: Session, settings: AppSettings,
                    file: Annotated[UploadFile, File()],
                    description: Annotated[str, Form(max_length=1500)] = "",
                    auth: Auth = require("write:media")):
    return await _upload(request, session, settings, auth, file, description)


@router.post("/api/v1/media")
async def upload_v1(request: Request, session: Session, settings: AppSettings,
                    file: Annotated[UploadFile, File()],
                    description: Annotated[str, Form(max_length=1500)] = "",
                    auth: Auth = require("write:media")):
    return await _upload(request, session, settings, auth, file, description)


async def _own(session, auth: Auth, media_id: str) -> MediaAttachment:
    parsed = ids.parse(media_id)
    media = await session.get(MediaAttachment, parsed) if parsed else None
    if media is None or media.account_id != user_of(auth).id:
        raise not_found()
    return media


@router.get("/api/v1/media/{media_id}")
async def get_media(session: Session, settings: AppSettings, media_id: str,
                    auth: Auth = require("write:media")):
    media = await _own(session, auth, media_id)
    if service.processing(media):
        # Mastodon answers 206 Partial Content while processing.
        return JSONResponse(service.render(media, settings), status_code=206)
    return service.render(media, settings)


@router.put("/api/v1/media/{media_id}")
async def update_media(request: Request, session: Session, settings: AppSettings,
                       media_id: str, auth: Auth = require("write:media")) -> dict:
    media = await _own(session, auth, media_id)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        payload = await request.json()
    else:
        payload = dict((await request.form()).items())
    description = payload.get("description")
    if description is not None:
        if not isinstance(description, str) or len(description) > 1500 or "\x00" in description:
            raise unprocessable("description must be text of at most 1500 characters")
        media.description = description
    await session.commit()
    return service.render(media, settings)


@router.get("/m/{a}/{b}/{name}", include_in_schema=False)
async def serve_local(request: Request, settings: AppSettings, a: str, b: str,
                      name: str) -> Response:
    """The local backend's files, for ./podium dev and tests (servers put nginx in front)."""
    if settings.media_backend != "local":
        raise not_found()
    try:
        data = store_of(request).get(f"m/{a}/{b}/{name}")
    except ValueError:
        data = None
    if data is None:
        raise not_found()
    types = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}
    ctype = types.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return Response(data, media_type=ctype,
                    headers={"Cache-Control": "public, max-age=31536000, immutable",
                             "X-Content-Type-Options": "nosniff"})
