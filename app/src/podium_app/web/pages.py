"""The web pages (HTML without JavaScript), Atom feeds and oEmbed.

Routers stay thin: every rule (who may post, who sees what, registration modes, follows)
is decided by podium_app.services, exactly as for the API. Errors from the services
(ApiError) are shown in the page's language next to the form instead of as JSON.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Annotated
from urllib.parse import quote, urlparse

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from redis.exceptions import RedisError
from sqlalchemy import select

from podium_app import ids, instance_settings, jobs, ratelimit, security
from podium_app.api.deps import Session
from podium_app.errors import ApiError
from podium_app.models import (
    DIGESTS,
    Account,
    AuditEntry,
    Notification,
    Report,
    Status,
    StatusTag,
    Tag,
)
from podium_app.pagination import Page
from podium_app.services import accounts as account_service
from podium_app.services import deletion, feeds
from podium_app.services import follows as follow_service
from podium_app.services import moderation as moderation_service
from podium_app.services import statuses as status_service
from podium_app.web import render
from podium_app.web import session as web_session
from podium_app.web.i18n import Lang, available, negotiate

PAGE_SIZE = 20


class WebRoute(APIRoute):
    """Errors raised by the services (ApiError) become an HTML page in the visitor's
    language rather than the API's JSON."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as err:
                lang = _lang(request, None)
                message = (lang.gettext("This page does not exist.") if err.status == 404
                           else err.message)
                # A GET's 404 is public for anonymous visitors (render.cacheable says why).
                response = render.page(request, "error.html", lang, viewer=None,
                                       public=request.method in ("GET", "HEAD"),
                                       status_code=err.status, message=message)
                response.headers.update(err.headers)
                return response

        return run


router = APIRouter(include_in_schema=False, route_class=WebRoute)


async def _viewer(request: Request, session: Session) -> Account | None:
    found = web_session.read_session(request)
    if found is None:
        return None
    account = await session.get(Account, uuid.UUID(int=found[0]))
    if (account is None or account.suspended_at is not None or not account.approved
            or web_session.fingerprint(account) != found[1]):
        return None
    return account


Viewer = Annotated[Account | None, Depends(_viewer)]


def _lang(request: Request, viewer: Account | None) -> Lang:
    return Lang(negotiate(viewer.locale if viewer else None,
                          request.headers.get("accept-language")))


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _redirect(url: str) -> Response:
    return render.security_headers(RedirectResponse(url, status_code=303,
                                                    headers={"Cache-Control": "no-store"}))


def _login_redirect(request: Request) -> Response:
    return _redirect("/login?next=" + quote(request.url.path))


async def _form(request: Request) -> dict[str, str]:
    """The posted form after the CSRF check (ApiError 403 when it fails)."""
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    if not web_session.csrf_ok(request, data.get(web_session.CSRF_FIELD)):
        raise ApiError(403, "csrf")
    for value in data.values():
        if "\x00" in value:
            raise ApiError(422, "Validation failed: text must not contain NUL characters")
    return data


def _csrf_refusal(request: Request, viewer: Account | None) -> Response:
    lang = _lang(request, viewer)
    return render.page(request, "error.html", lang, viewer=viewer, status_code=403,
                       message=lang.gettext("This form has expired. Go back, reload the page "
                                            "and send it again."))


async def _posted(request: Request, viewer: Account | None, *,
                  login: bool = False) -> dict[str, str] | Response:
    """The posted form, or the page to answer instead: the login page for a visitor when
    ``login``, the expired-form page when the CSRF check fails, an error page (422) for text
    the form refuses."""
    if login and viewer is None:
        return _login_redirect(request)
    try:
        return await _form(request)
    except ApiError as err:
        if err.message == "csrf":
            return _csrf_refusal(request, viewer)
        return render.page(request, "error.html", _lang(request, viewer), viewer=viewer,
                           status_code=err.status, message=err.message)


async def _statuses(session, request, rows: list[Status], viewer) -> list[dict]:
    return await status_service.render(session, instance_settings.of(request), rows, viewer)


def _older(rows: list[Status]) -> str | None:
    return ids.to_str(rows[-1].id) if len(rows) >= PAGE_SIZE else None


def _page(max_id: str | None) -> Page:
    return Page(ids.parse(max_id), None, None, PAGE_SIZE)


def _public_query():
    return (select(Status).join(Account, Account.id == Status.account_id)
            .where(Status.visibility == "public", Status.reblog_of_id.is_(None),
                   Account.suspended_at.is_(None)))


# --- public pages ------------------------------------------------------------------------

@router.get("/")
async def landing(request: Request, session: Session, viewer: Viewer) -> Response:
    """The publishers' latest public posts."""
    query = _public_query().where((Account.publisher.is_(True))
                                  | Account.role.in_(("owner", "admin")))
    rows = list((await session.scalars(_page(None).apply(query, Status.id))).all())
    publishers = list((await session.scalars(select(Account).where(
        Account.publisher.is_(True), Account.suspended_at.is_(None))
        .order_by(Account.followers_count.desc()).limit(5))).all())
    return render.page(request, "landing.html", _lang(request, viewer), public=True,
                       viewer=viewer, statuses=await _statuses(session, request, rows, viewer),
                       publishers=publishers)


@router.get("/public")
async def public_timeline(request: Request, session: Session, viewer: Viewer,
                          max_id: Annotated[str | None, Query(max_length=40)] = None
                          ) -> Response:
    rows = list((await session.scalars(_page(max_id).apply(_public_query(), Status.id))).all())
    lang = _lang(request, viewer)
    return render.page(request, "timeline.html", lang, public=True, viewer=viewer,
                       title=lang.gettext("Public timeline"),
                       statuses=await _statuses(session, request, rows, viewer),
                       older=_older(rows))


def _tag_query(name: str):
    return _public_query().join(StatusTag, StatusTag.status_id == Status.id).join(
        Tag, Tag.id == StatusTag.tag_id).where(Tag.name == name.lower())


@router.get("/tags/{name}")
async def tag_page(request: Request, session: Session, viewer: Viewer, name: str,
                   max_id: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    if name.endswith(".atom"):
        return await tag_feed(request, session, name.removesuffix(".atom"))
    name = name[:100]
    rows = list((await session.scalars(_page(max_id).apply(_tag_query(name), Status.id))).all())
    return render.page(request, "timeline.html", _lang(request, viewer), public=True,
                       viewer=viewer, title="#" + name.lower(), tag=name.lower(),
                       feed=f"/tags/{quote(name.lower())}.atom",
                       statuses=await _statuses(session, request, rows, viewer),
                       older=_older(rows))


async def _profile_account(session, username: str) -> Account:
    account = await account_service.find_by_username(session, username)
    if account is None or account.suspended_at is not None or not account.approved:
        raise ApiError(404, "Record not found")
    return account


@router.get("/@{username}")
async def profile(request: Request, session: Session, viewer: Viewer, username: str,
                  max_id: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    if username.endswith(".atom"):
        return await account_feed(request, session, username.removesuffix(".atom"))
    account = await _profile_account(session, username[:30])
    query = (select(Status).where(Status.account_id == account.id,
                                  status_service.visible_clause(viewer)))
    rows = list((await session.scalars(_page(max_id).apply(query, Status.id))).all())
    following = False
    if viewer is not None and viewer.id != account.id:
        following = await status_service.is_follower(session, viewer.id, account.id)
    return render.page(request, "profile.html", _lang(request, viewer), public=True,
                       viewer=viewer, account=account, following=following,
                       statuses=await _statuses(session, request, rows, viewer),
                       older=_older(rows), feed=f"/@{account.username}.atom")


async def _thread(session, st: Status, viewer) -> tuple[list[Status], list[Status]]:
    """Ancestors (oldest first, up to 40) and descendants (breadth-first, up to 200)."""
    ancestors: list[Status] = []
    parent_id = st.in_reply_to_id
    while parent_id is not None and len(ancestors) < 40:
        parent = await session.get(Status, parent_id)
        if parent is None or not await status_service.can_see(session, parent, viewer):
            break
        ancestors.insert(0, parent)
        parent_id = parent.in_reply_to_id
    descendants: list[Status] = []
    frontier = [st.id]
    while frontier and len(descendants) < 200:
        rows = list((await session.scalars(select(Status).where(
            Status.in_reply_to_id.in_(frontier), status_service.visible_clause(viewer))
            .order_by(Status.id).limit(200))).all())
        descendants.extend(rows)
        frontier = [r.id for r in rows]
    return ancestors, descendants


@router.get("/@{username}/{status_id}")
async def status_page(request: Request, session: Session, viewer: Viewer, username: str,
                      status_id: str) -> Response:
    st = await status_service.get_visible(session, ids.parse(status_id[:40]), viewer)
    author = await session.get(Account, st.account_id)
    if author is None or author.username.lower() != username.lower() or st.reblog_of_id:
        raise ApiError(404, "Record not found")
    ancestors, descendants = await _thread(session, st, viewer)
    rendered = await _statuses(session, request, [*ancestors, st, *descendants], viewer)
    by_id = {s["id"]: s for s in rendered}
    main = by_id.get(ids.to_str(st.id))
    if main is None:
        raise ApiError(404, "Record not found")
    settings = instance_settings.of(request)
    url = f"https://{settings.domain}/@{author.username}/{ids.to_str(st.id)}"
    return render.page(
        request, "status.html", _lang(request, viewer), public=st.visibility == "public",
        viewer=viewer, status=main, author=author, url=url, share=share_links(url, st.text),
        ancestors=[by_id[ids.to_str(s.id)] for s in ancestors if ids.to_str(s.id) in by_id],
        descendants=[by_id[ids.to_str(s.id)] for s in descendants
                     if ids.to_str(s.id) in by_id],
        oembed=f"https://{settings.domain}/api/oembed?url={quote(url, safe='')}",
        description=_plain(st.text), preview=_preview_image(main))


def _preview_image(status: dict) -> dict | None:
    """The first attachment with a still image (a picture's preview, a video's poster) for
    the link preview that Open Graph and Twitter Cards show; None while it is processing."""
    for media in status.get("media_attachments") or ():
        if media.get("preview_url"):
            return media
    return None


def _plain(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def share_links(url: str, text: str) -> list[tuple[str, str]]:
    """(network, address) pairs for the share buttons."""
    u, t = quote(url, safe=""), quote(_plain(text, 200), safe="")
    return [
        ("X", f"https://x.com/intent/post?url={u}&text={t}"),
        ("Facebook", f"https://www.facebook.com/sharer/sharer.php?u={u}"),
        ("Telegram", f"https://t.me/share/url?url={u}&text={t}"),
        ("WhatsApp", f"https://wa.me/?text={t}%20{u}"),
        ("Email", f"mailto:?subject={t}&body={u}"),
    ]


# --- signed-in pages ---------------------------------------------------------------------

@router.get("/home")
async def home(request: Request, session: Session, viewer: Viewer,
               max_id: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    if viewer is None:
        return _login_redirect(request)
    settings = instance_settings.of(request)
    rows = await feeds.home(session, request.app.state.redis, settings, viewer, _page(max_id))
    lang = _lang(request, viewer)
    return render.page(request, "timeline.html", lang, viewer=viewer, title=lang.gettext("Home"),
                       compose=status_service.may_publish(viewer) or settings.mode == "social",
                       statuses=await _statuses(session, request, rows, viewer),
                       older=_older(rows))


@router.post("/@{username}/follow")
@router.post("/@{username}/unfollow")
async def follow(request: Request, session: Session, viewer: Viewer, username: str,
                 ) -> Response:
    form = await _posted(request, viewer, login=True)
    if isinstance(form, Response):
        return form
    target = await _profile_account(session, username[:30])
    try:
        if request.url.path.endswith("/unfollow"):
            await follow_service.unfollow(session, viewer, target)
        else:
            await follow_service.follow(session, viewer, target)
        await session.commit()
    except ApiError as err:
        return render.page(request, "error.html", _lang(request, viewer), viewer=viewer,
                           status_code=err.status, message=err.message)
    with contextlib.suppress(RedisError):  # the home feed is rebuilt with the new edges
        await request.app.state.redis.delete(feeds.built_key(viewer.id))
    return _redirect(f"/@{target.username}")


@router.get("/notifications")
async def notifications(request: Request, session: Session, viewer: Viewer) -> Response:
    if viewer is None:
        return _login_redirect(request)
    rows = list((await session.scalars(select(Notification).where(
        Notification.account_id == viewer.id).order_by(Notification.id.desc()).limit(40))).all())
    senders = {a.id: a for a in (await session.scalars(select(Account).where(
        Account.id.in_({n.from_account_id for n in rows})))).all()}
    items = [{"type": n.type, "account": senders.get(n.from_account_id),
              "status_id": ids.to_str(n.status_id) if n.status_id else None,
              "created_at": n.created_at} for n in rows if n.from_account_id in senders]
    return render.page(request, "notifications.html", _lang(request, viewer), viewer=viewer,
                       items=items)


# --- accounts: sign up, confirm, log in/out, reset, settings -----------------------------

@router.get("/signup")
async def signup_form(request: Request, viewer: Viewer) -> Response:
    return render.page(request, "signup.html", _lang(request, viewer), viewer=viewer, form={})


@router.post("/signup")
async def signup(request: Request, session: Session, viewer: Viewer) -> Response:
    lang = _lang(request, viewer)
    form = await _posted(request, viewer)
    if isinstance(form, Response):
        return form
    settings = instance_settings.of(request)
    mode = settings.registration_mode
    try:
        if mode == "closed":
            raise ApiError(403, lang.gettext("Registrations are closed on this server."))
        await ratelimit.hit(request.app.state.redis, "signup", _ip(request),
                            settings.rate_signup_ip)
        if form.get("agreement") != "on":
            raise ApiError(422, lang.gettext("Please accept the rules to sign up."))
        invite = (await account_service.use_invite(session, form.get("invite_code"))
                  if mode == "invite" else None)
        account = await account_service.create_account(
            session, username=form.get("username", ""), email=form.get("email", ""),
            password=form.get("password", ""), approved=mode != "approval",
            locale=lang.code, invite=invite)
        token = await account_service.issue_email_token(session, account, "confirm")
        await session.commit()
    except ApiError as err:
        form.pop("password", None)
        return render.page(request, "signup.html", lang, viewer=viewer, form=form,
                           error=err.message, status_code=err.status)
    link = f"https://{settings.domain}/confirm?token={token}"
    await jobs.templated_mail(request, account.email, "confirm", account.locale,
                              {"name": account.username, "link": link})
    position = await account_service.waitlist_position(session, account)
    return render.page(request, "signed_up.html", lang, viewer=viewer, account=account,
                       position=position)


@router.get("/confirm")
async def confirm(request: Request, session: Session, viewer: Viewer,
                  token: Annotated[str, Query(max_length=200)] = "") -> Response:
    lang = _lang(request, viewer)
    try:
        account = await account_service.consume_email_token(session, token, "confirm")
    except ApiError:
        return render.page(request, "error.html", lang, viewer=viewer, status_code=404,
                           message=lang.gettext("This link is not valid or has expired."))
    account.confirmed_at = account.confirmed_at or account_service.now()
    await session.commit()
    position = await account_service.waitlist_position(session, account)
    return render.page(request, "confirmed.html", lang, viewer=viewer, position=position)


def _safe_next(value: str | None) -> str:
    """Only a local path: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/home"


@router.get("/login")
async def login_form(request: Request, viewer: Viewer,
                     next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return render.page(request, "login.html", _lang(request, viewer), viewer=viewer,
                       next=_safe_next(next))


@router.post("/login")
async def login(request: Request, session: Session, viewer: Viewer) -> Response:
    lang = _lang(request, viewer)
    form = await _posted(request, viewer)
    if isinstance(form, Response):
        return form
    settings = instance_settings.of(request)
    next_url = _safe_next(form.get("next"))
    try:
        await ratelimit.hit(request.app.state.redis, "login", _ip(request),
                            settings.rate_login_ip)
    except ApiError as err:
        return render.page(request, "login.html", lang, viewer=viewer, next=next_url,
                           error=lang.gettext("Too many attempts; try again later."),
                           status_code=err.status)
    name = form.get("username", "").strip()[:320]
    account = (await account_service.find_by_email(session, name) if "@" in name
               else await account_service.find_by_username(session, name))
    error, code = None, 403
    if account is None or not security.verify_password(account.password_hash,
                                                       form.get("password", "")):
        error, code = lang.gettext("Wrong username or password."), 401
    elif account.suspended_at is not None:
        error = lang.gettext("This account is suspended.")
    elif account.confirmed_at is None:
        error = lang.gettext("Confirm your email address first: open the link we mailed you.")
    elif not account.approved:
        position = await account_service.waitlist_position(session, account)
        error = lang.gettext("You are on the waitlist, at position %(position)s.",
                             position=lang.number(position or 0))
    if error:
        return render.page(request, "login.html", lang, viewer=viewer, next=next_url,
                           error=error, status_code=code)
    response = _redirect(next_url)
    web_session.start_session(request, response, account)
    return response


@router.post("/logout")
async def logout(request: Request, viewer: Viewer) -> Response:
    form = await _posted(request, viewer)
    if isinstance(form, Response):
        return form
    response = _redirect("/")
    web_session.end_session(response)
    return response


@router.get("/password/reset")
async def reset_request_form(request: Request, viewer: Viewer) -> Response:
    return render.page(request, "reset_request.html", _lang(request, viewer), viewer=viewer)


@router.post("/password/reset")
async def reset_request(request: Request, session: Session, viewer: Viewer) -> Response:
    lang = _lang(request, viewer)
    form = await _posted(request, viewer)
    if isinstance(form, Response):
        return form
    settings = instance_settings.of(request)
    try:
        await ratelimit.hit(request.app.state.redis, "reset", _ip(request),
                            settings.rate_login_ip)
    except ApiError as err:
        return render.page(request, "error.html", lang, viewer=viewer, status_code=err.status,
                           message=lang.gettext("Too many attempts; try again later."))
    account = await account_service.find_by_email(session, form.get("email", "")[:320])
    if account is not None and account.suspended_at is None:
        token = await account_service.issue_email_token(session, account, "reset")
        await session.commit()
        await jobs.templated_mail(
            request, account.email, "reset", account.locale,
            {"name": account.username,
             "link": f"https://{settings.domain}/password/edit?token={token}"})
    # The same answer whether the address is known or not.
    return render.page(request, "reset_sent.html", lang, viewer=viewer)


@router.get("/password/edit")
@router.get("/auth/password/edit")  # the address in the API's reset mail (Mastodon's)
async def reset_form(request: Request, viewer: Viewer,
                     token: Annotated[str, Query(max_length=200)] = "",
                     reset_password_token: Annotated[str, Query(max_length=200)] = "",
                     ) -> Response:
    return render.page(request, "reset_form.html", _lang(request, viewer), viewer=viewer,
                       token=token or reset_password_token)


@router.post("/password/edit")
async def reset_password(request: Request, session: Session, viewer: Viewer) -> Response:
    lang = _lang(request, viewer)
    form = await _posted(request, viewer)
    if isinstance(form, Response):
        return form
    try:
        account = await account_service.consume_email_token(session, form.get("token", ""),
                                                            "reset")
        await account_service.set_password(session, account, form.get("password", ""))
        await session.commit()
    except ApiError as err:
        message = (lang.gettext("This link is not valid or has expired.")
                   if err.status == 404 else err.message)
        return render.page(request, "reset_form.html", lang, viewer=viewer,
                           token=form.get("token", ""), error=message, status_code=err.status)
    return _redirect("/login")


@router.get("/settings")
async def settings_form(request: Request, viewer: Viewer) -> Response:
    if viewer is None:
        return _login_redirect(request)
    return render.page(request, "settings.html", _lang(request, viewer), viewer=viewer,
                       languages=[Lang(code) for code in available()])


@router.post("/settings")
async def settings_save(request: Request, session: Session, viewer: Viewer) -> Response:
    form = await _posted(request, viewer, login=True)
    if isinstance(form, Response):
        return form
    account = await session.get(Account, viewer.id)
    assert account is not None
    account.display_name = form.get("display_name", account.display_name)[:100]
    account.note = form.get("note", account.note)[:1000]
    if form.get("locale") in available():
        account.locale = form["locale"]
    if form.get("digest") in DIGESTS and form["digest"] != account.digest:
        account.digest = form["digest"]
        account.digest_sent_at = account_service.now()  # the first one after a full period
    await session.commit()
    return _redirect("/settings")


@router.post("/settings/delete")
async def delete_account(request: Request, session: Session, viewer: Viewer) -> Response:
    """Delete one's own account, confirmed by the password: hidden and logged out at once,
    deleted for real by the queue (services/deletion.py). Owners cannot delete themselves
    (the instance would lose its last owner): they hand the role over first."""
    form = await _posted(request, viewer, login=True)
    if isinstance(form, Response):
        return form
    lang = _lang(request, viewer)
    account = await session.get(Account, viewer.id)
    assert account is not None
    languages = [Lang(code) for code in available()]
    if not security.verify_password(account.password_hash, form.get("password", "")):
        return render.page(request, "settings.html", lang, viewer=viewer, languages=languages,
                           delete_error=lang.gettext("The password is not correct."),
                           status_code=403)
    if account.role == "owner":
        return render.page(request, "settings.html", lang, viewer=viewer, languages=languages,
                           delete_error=lang.gettext(
                               "An owner account cannot be deleted: give the role to "
                               "someone else first."), status_code=403)
    await deletion.schedule(session, account)
    await session.commit()
    await jobs.enqueue(request, "delete_account", str(account.id))
    response = render.page(request, "account_deleted.html", lang, viewer=None)
    web_session.end_session(response)
    return response


# --- moderation --------------------------------------------------------------------------

@router.get("/moderation")
async def moderation_queue(request: Request, session: Session, viewer: Viewer) -> Response:
    if viewer is None:
        return _login_redirect(request)
    lang = _lang(request, viewer)
    if not moderation_service.is_staff(viewer):
        return render.page(request, "error.html", lang, viewer=viewer, status_code=403,
                           message=lang.gettext("This page is for moderators."))
    reports = list((await session.scalars(select(Report).where(
        Report.action_taken_at.is_(None)).order_by(Report.created_at).limit(50))).all())
    people = {a.id: a for a in (await session.scalars(select(Account).where(Account.id.in_(
        {r.account_id for r in reports} | {r.target_account_id for r in reports})))).all()}
    audit = list((await session.scalars(select(AuditEntry).order_by(
        AuditEntry.created_at.desc()).limit(50))).all())
    actors = {a.id: a for a in (await session.scalars(select(Account).where(
        Account.id.in_({e.actor_id for e in audit if e.actor_id})))).all()}
    return render.page(request, "moderation.html", lang, viewer=viewer, reports=reports,
                       people=people, audit=audit, actors=actors)


@router.post("/moderation/reports/{report_id}/{action}")
async def moderation_action(request: Request, session: Session, viewer: Viewer,
                            report_id: str, action: str) -> Response:
    """resolve: close the report; suspend: suspend the reported account and close it.
    The services decide who may act on whom (rank) and write the audit log."""
    form = await _posted(request, viewer, login=True)
    if isinstance(form, Response):
        return form
    lang = _lang(request, viewer)
    if not moderation_service.is_staff(viewer) or action not in ("resolve", "suspend"):
        return render.page(request, "error.html", lang, viewer=viewer, status_code=403,
                           message=lang.gettext("This page is for moderators."))
    parsed = ids.parse(report_id[:40])
    report = await session.get(Report, parsed) if parsed else None
    if report is None:
        raise ApiError(404, "Record not found")
    if action == "suspend":
        target = await session.get(Account, report.target_account_id)
        if target is None:
            raise ApiError(404, "Record not found")
        await moderation_service.suspend(session, viewer, target, report)
    else:
        await moderation_service.resolve(session, viewer, report)
    await session.commit()
    return _redirect("/moderation")


# --- instance settings (admins) -----------------------------------------------------------

def _admin_refusal(request: Request, viewer: Account) -> Response | None:
    if moderation_service.is_staff(viewer, "admin"):
        return None
    lang = _lang(request, viewer)
    return render.page(request, "error.html", lang, viewer=viewer, status_code=403,
                       message=lang.gettext("This page is for admins."))


@router.get("/admin/settings")
async def admin_settings_form(request: Request, viewer: Viewer) -> Response:
    if viewer is None:
        return _login_redirect(request)
    return _admin_refusal(request, viewer) or render.page(
        request, "admin_settings.html", _lang(request, viewer), viewer=viewer,
        saved=request.query_params.get("saved") == "1")


@router.post("/admin/settings")
async def admin_settings_save(request: Request, session: Session, viewer: Viewer) -> Response:
    """Store the changed run-time settings (instance_settings.update writes the audit log)."""
    form = await _posted(request, viewer, login=True)
    if isinstance(form, Response):
        return form
    refused = _admin_refusal(request, viewer)
    if refused is not None:
        return refused
    current = instance_settings.of(request)
    changes = {key: form[key].strip() for key in instance_settings.RUNTIME_KEYS
               if key in form and form[key].strip() != str(getattr(current, key))}
    try:
        await instance_settings.update(session, viewer, changes, via="web")
        await session.commit()
        instance_settings.forget()
    except ApiError as err:
        return render.page(request, "admin_settings.html", _lang(request, viewer),
                           viewer=viewer, error=err.message, status_code=err.status)
    return _redirect("/admin/settings?saved=1")


# --- feeds and oEmbed --------------------------------------------------------------------

async def _feed(request: Request, session, title: str, page_url: str, self_url: str,
                rows: list[Status]) -> Response:
    settings = instance_settings.of(request)
    statuses = await _statuses(session, request, rows, None)
    body = render.env.get_template("feed.atom").render(
        title=title, page_url=page_url, self_url=self_url, statuses=statuses,
        updated=statuses[0]["created_at"] if statuses else "1970-01-01T00:00:00Z",
        domain=settings.domain)
    return render.cacheable(request, body.encode(), "application/atom+xml; charset=utf-8")


async def account_feed(request: Request, session, username: str) -> Response:
    account = await _profile_account(session, username[:30])
    rows = list((await session.scalars(_public_query().where(Status.account_id == account.id)
                                       .order_by(Status.id.desc()).limit(PAGE_SIZE))).all())
    domain = instance_settings.of(request).domain
    return await _feed(request, session, f"{account.display_name or account.username} "
                       f"(@{account.username}@{domain})", f"https://{domain}/@{account.username}",
                       f"https://{domain}/@{account.username}.atom", rows)


async def tag_feed(request: Request, session, name: str) -> Response:
    name = name[:100].lower()
    rows = list((await session.scalars(_tag_query(name).order_by(Status.id.desc())
                                       .limit(PAGE_SIZE))).all())
    domain = instance_settings.of(request).domain
    return await _feed(request, session, f"#{name}", f"https://{domain}/tags/{quote(name)}",
                       f"https://{domain}/tags/{quote(name)}.atom", rows)


@router.get("/api/oembed")
async def oembed(request: Request, session: Session,
                 url: Annotated[str, Query(max_length=500)],
                 maxwidth: Annotated[int, Query(ge=100, le=2000)] = 550) -> Response:
    """oEmbed (https://oembed.com) for a post page address of this platform: rich HTML, a
    quoted post with a link back (no iframe, no script)."""
    settings = instance_settings.of(request)
    parsed = urlparse(url)
    parts = parsed.path.strip("/").split("/")
    if (parsed.hostname or "").lower() != settings.domain.lower() or len(parts) != 2 or (
            not parts[0].startswith("@")):
        raise ApiError(404, "Record not found")
    st = await status_service.get_visible(session, ids.parse(parts[1]), None)
    author = await session.get(Account, st.account_id)
    if author is None or author.username.lower() != parts[0][1:].lower() or (
            st.visibility != "public"):
        raise ApiError(404, "Record not found")
    html = render.env.get_template("oembed.html").render(
        content=st.content, author=author, url=url, domain=settings.domain).strip()
    body = {"version": "1.0", "type": "rich", "provider_name": settings.title,
            "provider_url": f"https://{settings.domain}/",
            "author_name": author.display_name or author.username,
            "author_url": f"https://{settings.domain}/@{author.username}",
            "title": _plain(st.text, 100), "html": html, "width": maxwidth, "height": None,
            "cache_age": 300}
    return render.cacheable(request, json.dumps(body).encode(), "application/json")
