"""/api/v1/apps: OAuth client registration, as Mastodon does it."""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from podium_app.api.deps import Auth, Session, body, body_doc, require
from podium_app.errors import unprocessable
from podium_app.ids import to_str
from podium_app.models import OAuthApp
from podium_app.scopes import normalize

router = APIRouter(tags=["apps"])


class AppIn(BaseModel):
    client_name: str = Field(min_length=1, max_length=200)
    redirect_uris: str | list[str] = "urn:ietf:wg:oauth:2.0:oob"
    scopes: str = Field("read", max_length=1000)
    website: str | None = Field(None, max_length=2000)

    @field_validator("redirect_uris")
    @classmethod
    def _uris(cls, value: str | list[str]) -> list[str]:
        uris = value.split() if isinstance(value, str) else [u for v in value for u in v.split()]
        if not uris or len(uris) > 10:
            raise ValueError("give 1 to 10 redirect URIs")
        for uri in uris:
            if len(uri) > 2000 or not (uri == "urn:ietf:wg:oauth:2.0:oob" or ":" in uri):
                raise ValueError(f"{uri[:80]!r} is not an absolute URI")
        return uris


def app_json(app: OAuthApp, secret: bool = True) -> dict:
    data = {
        "id": to_str(app.id), "name": app.name, "website": app.website,
        "redirect_uri": "\n".join(app.redirect_uris), "redirect_uris": app.redirect_uris,
        "scopes": app.scopes.split(), "vapid_key": None,
    }
    if secret:
        data.update(client_id=app.client_id, client_secret=app.client_secret,
                    client_secret_expires_at=0)
    return data


@router.post("/api/v1/apps", openapi_extra=body_doc(AppIn))
async def create_app(session: Session, params: AppIn = body(AppIn)) -> dict:
    scopes = normalize(params.scopes)
    if scopes is None:
        raise unprocessable("scopes contains an unknown scope")
    app = OAuthApp(name=params.client_name, website=params.website,
                   redirect_uris=params.redirect_uris, scopes=" ".join(scopes),
                   client_id=secrets.token_urlsafe(32), client_secret=secrets.token_urlsafe(32))
    session.add(app)
    await session.commit()
    return app_json(app)


@router.get("/api/v1/apps/verify_credentials")
async def verify_app(session: Session, auth: Auth = require("read", user=False)) -> dict:
    app = await session.get(OAuthApp, auth.token.app_id) if auth.token.app_id else None
    if app is None:
        return {"name": "podium-app", "website": None, "scopes": auth.token.scopes.split()}
    return app_json(app, secret=False)
