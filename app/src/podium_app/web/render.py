"""Responses for pages: templates, caching headers, the Content-Security-Policy.

Anonymous public pages are cacheable by the edge: `Cache-Control: public, max-age=30,
stale-while-revalidate=300`, a strong ETag of the body (304 on If-None-Match) and never a
Set-Cookie. So is the anonymous "does not exist" page of a GET, so that the edge replaces
the copy of a deleted post or account with it (docs/decisions/0180-edge-purge.md).
Pages for a signed-in visitor, forms and anything carrying the session cookie are
`private, no-store`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from podium_app import instance_settings
from podium_app.web import session as web_session
from podium_app.web.i18n import Lang

PUBLIC_CACHE = "public, max-age=30, stale-while-revalidate=300"
PRIVATE_CACHE = "private, no-store"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "media-src 'self' https:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                  autoescape=select_autoescape(("html", "xml", "atom")),
                  trim_blocks=True, lstrip_blocks=True)


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response


def cacheable(request: Request, body: bytes, media_type: str,
              status_code: int = 200) -> Response:
    """A public answer with an ETag; 304 when the visitor's copy is current. A 404 is public
    too (no ETag): at the edge it replaces the copy of a page that was deleted, which a
    private 404 never would (nginx would keep serving that copy stale, decision 0180)."""
    if status_code != 200:
        headers = {"Cache-Control": PUBLIC_CACHE, "Vary": "Accept-Language"}
        return security_headers(Response(body, status_code=status_code, media_type=media_type,
                                         headers=headers))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": PUBLIC_CACHE, "Vary": "Accept-Language"}
    match = request.headers.get("if-none-match", "")
    if etag in [part.strip().removeprefix("W/") for part in match.split(",")]:
        return security_headers(Response(status_code=304, headers=headers))
    return security_headers(Response(body, media_type=media_type, headers=headers))


def page(request: Request, template: str, lang: Lang, *, public: bool = False,
         status_code: int = 200, **context) -> Response:
    """Render `template`. public=True: cacheable (only for anonymous visitors without the
    session cookie); otherwise private, no-store, with the CSRF cookie if a form needs it."""
    viewer = context.get("viewer")
    personal = viewer is not None or web_session.SESSION_COOKIE in request.cookies
    csrf = None if public and not personal else web_session.csrf_token(request)
    body = env.get_template(template).render(
        request=request, lang=lang, _=lang.gettext, ngettext=lang.ngettext, csrf=csrf,
        csrf_field=web_session.CSRF_FIELD, settings=instance_settings.of(request), **context)
    encoded = body.encode()
    if public and not personal and status_code in (200, 404):
        return cacheable(request, encoded, "text/html; charset=utf-8", status_code)
    response = HTMLResponse(encoded, status_code=status_code,
                            headers={"Cache-Control": PRIVATE_CACHE})
    if csrf is not None:
        web_session.set_csrf_cookie(request, response)
    return security_headers(response)
