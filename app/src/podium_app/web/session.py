"""Web sessions and CSRF tokens (docs/decisions/0070-web-sessions-csrf.md).

- Session: cookie `podium_session` (the name the edge treats as personal and never caches),
  an itsdangerous-signed, time-stamped value holding the account id and a fingerprint of the
  password hash, so a password change or reset ends every web session. Secure, HttpOnly,
  SameSite=Lax, 30 days.
- CSRF: double-submit with a signed token. A random value lives in the `podium_csrf` cookie
  (Secure, HttpOnly, SameSite=Strict); forms carry the value signed with the app's secret
  and a salt. A POST is accepted only when the form token verifies and carries the cookie's
  value. Only pages that are never cached (private, no-store) set these cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from podium_app import instance_settings
from podium_app.models import Account

SESSION_COOKIE = "podium_session"
CSRF_COOKIE = "podium_csrf"
CSRF_FIELD = "csrf_token"
SESSION_DAYS = 30


def _secret(request: Request) -> str:
    secret = instance_settings.of(request).secret_key.get_secret_value()
    if len(secret) < 32:
        raise RuntimeError("PODIUM_SECRET_KEY must be set (32+ characters) for web sessions")
    return secret


def fingerprint(account: Account) -> str:
    return hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]


def read_session(request: Request) -> tuple[int, str] | None:
    """(account id as an integer, password fingerprint) from a valid cookie, else None."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    signer = URLSafeTimedSerializer(_secret(request), salt="podium.web.session")
    try:
        value = signer.loads(raw, max_age=SESSION_DAYS * 86400)
        return int(value["a"]), str(value["k"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


def start_session(request: Request, response: Response, account: Account) -> None:
    signer = URLSafeTimedSerializer(_secret(request), salt="podium.web.session")
    value = signer.dumps({"a": str(account.id.int), "k": fingerprint(account)})
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_DAYS * 86400, path="/",
                        secure=True, httponly=True, samesite="lax")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="lax")


def csrf_token(request: Request, response: Response | None = None) -> str:
    """The token for this visitor's forms; sets the CSRF cookie on `response` if missing.
    Call only for pages that are not cached."""
    value = request.cookies.get(CSRF_COOKIE) or request.state.__dict__.get("csrf_value")
    if not value:
        value = secrets.token_urlsafe(24)
        request.state.csrf_value = value
    request.state.csrf_new = CSRF_COOKIE not in request.cookies
    return URLSafeSerializer(_secret(request), salt="podium.web.csrf").dumps(value)


def set_csrf_cookie(request: Request, response: Response) -> None:
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(CSRF_COOKIE, request.state.csrf_value, path="/", secure=True,
                            httponly=True, samesite="strict")


def csrf_ok(request: Request, token: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not token:
        return False
    try:
        value = URLSafeSerializer(_secret(request), salt="podium.web.csrf").loads(token)
    except BadSignature:
        return False
    return isinstance(value, str) and hmac.compare_digest(value, cookie)
