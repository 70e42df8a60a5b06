"""Compose on the web: a post with up to 4 images or 1 video, each with its alt text.

The form is `multipart/form-data` with the CSRF token like every form, and works without
JavaScript: `POST /compose` redirects to the new post (or back to /home), and a refusal
re-renders the form at `/compose` with the reason in the visitor's language and the text
kept. static/app.js posts the same form with `Accept: application/json` and shows the
reason (JSON `{"error": ...}`) without a reload.

Images are processed during the request (as for the API); a video is probed during the
request, attached at once and transcoded by the worker: the post shows "being processed"
until then (the API refuses to attach an unprocessed video, as Mastodon does; a web visitor
has no way to wait and retry, so the web path attaches it and lets the page catch up).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from starlette.datastructures import UploadFile

from podium_app import ids, instance_settings, jobs, ratelimit
from podium_app.api.deps import Session
from podium_app.api.media import store_of
from podium_app.errors import ApiError
from podium_app.media import service as media_service
from podium_app.media.processing import MediaRefused
from podium_app.models import Account
from podium_app.services import feeds
from podium_app.services import statuses as status_service
from podium_app.web import pages, render
from podium_app.web.i18n import Lang

FILES = 4  # file inputs on the form: up to 4 images, or 1 video


def N_(message: str) -> str:
    """Marks a message for extraction into the catalogues; translated where it is shown."""
    return message


# Every reason the media pipeline gives (MediaRefused in podium_app.media), marked so
# that the catalogues translate them; tests/app/test_web_compose.py checks that this
# list and the pipeline's reasons are the same.
REFUSALS = (
    N_("the file is empty"),
    N_("the file is larger than %(mb)s MB"),
    N_("unsupported file type (JPEG, PNG, WebP or GIF images only)"),
    N_("the content type %(declared)s does not match the file, which is %(actual)s"),
    N_("the image is %(width)sx%(height)s pixels, more than the %(allowed)s allowed"),
    N_("the image has too many pixels (a decompression bomb)"),
    N_("the file is truncated or corrupt"),
    N_("the image needs too much memory to decode"),
    N_("the content type %(declared)s is not MP4, MOV or WebM video"),
    N_("the file is not MP4, MOV or WebM video"),
    N_("the video could not be read in time"),
    N_("the video is truncated or corrupt"),
    N_("the file has no video stream"),
    N_("the video is %(width)sx%(height)s pixels, more than allowed"),
    N_("the video has no duration"),
    N_("the video is longer than %(seconds)s seconds"),
)

router = APIRouter(include_in_schema=False, route_class=pages.WebRoute)


def refusal(lang: Lang, err: ApiError) -> str:
    """The reason for a refused post in `lang`: the pipeline's reason translated, with the
    file's name when known; other errors as the services word them."""
    cause = err.__cause__
    if isinstance(cause, MediaRefused):
        values = {k: lang.number(v) if isinstance(v, int) and k in ("mb", "seconds", "allowed")
                  else v for k, v in cause.values.items()}
        return lang.gettext(cause.reason, **values)
    if err.status == 503:
        return lang.gettext("The media storage is unavailable; try again later.")
    return err.message


async def _uploads(request: Request) -> list[tuple[int, UploadFile, str]]:
    """(position, file, alt text) for each file input that holds a file."""
    form = await request.form()  # parsed once by _form; starlette keeps it
    found = []
    for position in range(FILES):
        upload = form.get(f"media_{position}")
        if isinstance(upload, UploadFile) and upload.filename:
            alt = form.get(f"description_{position}")
            found.append((position, upload, alt if isinstance(alt, str) else ""))
    return found


def _form_page(request: Request, lang: Lang, viewer: Account, *, error: str | None = None,
               form: dict | None = None, status_code: int = 200) -> Response:
    return render.page(request, "compose.html", lang, viewer=viewer, error=error,
                       form=form or {}, status_code=status_code, files=range(FILES))


@router.get("/compose")
async def compose_form(request: Request, viewer: pages.Viewer) -> Response:
    if viewer is None:
        return pages._login_redirect(request)
    return _form_page(request, pages._lang(request, viewer), viewer)


async def _publish(request: Request, session, viewer: Account, form: dict[str, str],
                   lang: Lang):
    settings = instance_settings.of(request)
    status_service.check_mode(settings, viewer)
    redis = request.app.state.redis
    await ratelimit.hit(redis, "post", str(viewer.id), settings.rate_post_account)
    await ratelimit.hit(redis, "post-ip", pages._ip(request), settings.rate_post_ip)
    visibility = form.get("visibility", "public")
    if visibility not in ("public", "unlisted", "private"):
        visibility = "public"
    reply_to = ids.parse(form.get("in_reply_to_id")) if form.get("in_reply_to_id") else None
    st = await status_service.create(session, settings, viewer, text=form.get("status", ""),
                                     in_reply_to_id=reply_to, visibility=visibility,
                                     language=lang.code)
    uploads = await _uploads(request)
    limit = max(settings.media_max_image_bytes, settings.media_max_video_bytes)
    attached = []
    for _, upload, alt in uploads:
        if len(alt) > 1500:
            raise ApiError(422, lang.gettext("An image description is longer than 1500 "
                                             "characters."))
        data = await upload.read(limit + 1)
        attached.append(await media_service.create(
            session, settings, store_of(request), viewer, data, upload.content_type, alt))
    if len(attached) > 1 and any(m.type == "video" for m in attached):
        raise ApiError(422, lang.gettext("A post takes up to 4 images or one video."))
    if attached:
        await media_service.attach(session, viewer, st.id, [m.id for m in attached],
                                   allow_processing=True)
    await session.commit()
    return st, [m for m in attached if media_service.processing(m)]


@router.post("/compose")
async def compose(request: Request, session: Session, viewer: pages.Viewer) -> Response:
    if viewer is None:
        return pages._login_redirect(request)
    try:
        form = await pages._form(request)
    except ApiError as err:
        if err.message == "csrf":
            return pages._csrf_refusal(request, viewer)
        raise
    lang = pages._lang(request, viewer)
    wants_json = request.headers.get("accept", "").startswith("application/json")
    try:
        st, videos = await _publish(request, session, viewer, form, lang)
    except ApiError as err:
        # Nothing was committed: the session rolls the post back when it closes (not here,
        # which would expire `viewer` before the page is rendered).
        message = refusal(lang, err)
        if wants_json:
            return render.security_headers(JSONResponse(
                {"error": message}, status_code=err.status,
                headers={"Cache-Control": render.PRIVATE_CACHE}))
        kept = {k: form.get(k, "") for k in ("status", "visibility")}
        return _form_page(request, lang, viewer, error=message, form=kept,
                          status_code=err.status)
    settings = instance_settings.of(request)
    for media in videos:
        await jobs.enqueue(request, "transcode_video", str(media.id))
    with contextlib.suppress(RedisError):
        await feeds.push(request.app.state.redis, settings, [st.account_id], st.id)
    await jobs.enqueue(request, "fanout_status", str(st.id))
    url = f"/@{viewer.username}/{ids.to_str(st.id)}"
    if wants_json:
        rendered = await pages._statuses(session, request, [st], viewer)
        return render.security_headers(JSONResponse(
            {"url": url, "status": rendered[0]},
            headers={"Cache-Control": render.PRIVATE_CACHE}))
    return pages._redirect(form.get("next") if form.get("next", "").startswith("/home")
                           else url)
