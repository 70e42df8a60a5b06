"""Localized mail (en, fr, ar): a subject, a text part and an HTML part each.

The messages are templates translated by the web front's gettext catalogues
(podium_app.web.mailrender: templates/mail/*.txt and *.html); this module keeps the name
the mail queue calls.
"""

from __future__ import annotations

from podium_app.web import mailrender


def render(name: str, locale: str, params: dict) -> tuple[str, str, str, str]:
    """(language, subject, text, html) for mail `name` in `locale` (en fallback)."""
    return mailrender.render(name, locale, params)
