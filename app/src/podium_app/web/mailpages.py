"""Pages that links in the app's mail lead to: turning the email digest off.

`/digest/unsubscribe/TOKEN` (TOKEN signed by services/digest.py, naming the account):
GET shows a button (a link scanner opening the URL changes nothing); POST turns the digest
off. The POST is also RFC 8058's one-click unsubscribe that mail clients send without a
session or CSRF token: the signed token is the authority, and it can only turn mail off.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from podium_app.api.deps import Session
from podium_app.models import Account
from podium_app.services import digest as digest_service
from podium_app.web import pages, render

router = APIRouter(include_in_schema=False, route_class=pages.WebRoute)
Token = Annotated[str, Path(max_length=300)]


async def _account(request: Request, session, token: str) -> Account | None:
    account_id = digest_service.account_of_token(request.app.state.settings, token)
    return await session.get(Account, account_id) if account_id else None


def _invalid_link(request: Request, viewer: Account | None) -> Response:
    lang = pages._lang(request, viewer)
    return render.page(request, "error.html", lang, viewer=viewer, status_code=404,
                       message=lang.gettext("This link is not valid or has expired."))


@router.get("/digest/unsubscribe/{token}")
async def unsubscribe_form(request: Request, session: Session, viewer: pages.Viewer,
                           token: Token) -> Response:
    account = await _account(request, session, token)
    if account is None:
        return _invalid_link(request, viewer)
    return render.page(request, "unsubscribe.html", pages._lang(request, account),
                       viewer=viewer, token=token, done=account.digest == "off")


@router.post("/digest/unsubscribe/{token}")
async def unsubscribe(request: Request, session: Session, viewer: pages.Viewer,
                      token: Token) -> Response:
    account = await _account(request, session, token)
    if account is None:
        return _invalid_link(request, viewer)
    account.digest = "off"
    await session.commit()
    return render.page(request, "unsubscribe.html", pages._lang(request, account),
                       viewer=viewer, token=token, done=True)
