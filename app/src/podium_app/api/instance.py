"""/api/v1/instance and /api/v2/instance: what this server is and allows."""

from __future__ import annotations

from fastapi import APIRouter, Request

from podium_app import __version__, instance_settings
from podium_app.settings import Settings

router = APIRouter(tags=["instance"])


def _registrations(settings: Settings) -> dict:
    mode = settings.registration_mode
    return {
        "enabled": mode in ("open", "approval", "invite"),
        "approval_required": mode == "approval",
        "invite_required": mode == "invite",
        "message": None,
    }


def _configuration(settings: Settings) -> dict:
    return {
        "statuses": {"max_characters": settings.max_post_chars, "max_media_attachments": 4,
                     "characters_reserved_per_url": 23},
        "accounts": {"max_featured_tags": 0},
        "podium": {"mode": settings.mode, "registration_mode": settings.registration_mode},
    }


@router.get("/api/v1/instance")
async def instance_v1(request: Request) -> dict:
    settings: Settings = instance_settings.of(request)
    registrations = _registrations(settings)
    return {
        "uri": settings.domain,
        "title": settings.title,
        "short_description": settings.description,
        "description": settings.description,
        "email": settings.contact_email,
        "version": f"4.3.0 (compatible; Podium {__version__})",
        "urls": {},
        "stats": {},
        "languages": ["en", "fr", "ar"],
        "registrations": registrations["enabled"],
        "approval_required": registrations["approval_required"],
        "invites_enabled": registrations["invite_required"],
        "configuration": _configuration(settings),
        "contact_account": None,
        "rules": [],
    }


@router.get("/api/v2/instance")
async def instance_v2(request: Request) -> dict:
    settings: Settings = instance_settings.of(request)
    return {
        "domain": settings.domain,
        "title": settings.title,
        "version": f"4.3.0 (compatible; Podium {__version__})",
        "api_versions": {"mastodon": 2},
        "description": settings.description,
        "usage": {"users": {"active_month": 0}},
        "thumbnail": {"url": None},
        "languages": ["en", "fr", "ar"],
        "configuration": {**_configuration(settings), "urls": {}},
        "registrations": _registrations(settings),
        "contact": {"email": settings.contact_email, "account": None},
        "rules": [],
    }
