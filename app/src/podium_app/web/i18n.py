"""UI languages: one gettext catalogue per language under locale/<lang>/LC_MESSAGES/.

Adding a language means adding locale/<lang>/LC_MESSAGES/messages.po: the catalogues are
found by listing the folder and compiled in memory with Babel when this module is imported
(no build step, no .mo files to forget; docs/decisions/0071-web-i18n.md). English is the
source language (its catalogue may be empty). Direction comes from Babel's locale data
(Arabic, Hebrew, Persian, ... are right-to-left), dates and numbers from CLDR via Babel.
"""

from __future__ import annotations

import gettext
import io
from datetime import datetime
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"


def _compile(po: Path) -> gettext.GNUTranslations:
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=po.parent.parent.name)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@cache
def catalogues() -> dict[str, gettext.GNUTranslations]:
    """Every language with a catalogue, by code (the folder's name)."""
    found = {}
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")):
        found[po.parent.parent.name] = _compile(po)
    found.setdefault(DEFAULT, gettext.NullTranslations())  # type: ignore[assignment]
    return found


def available() -> list[str]:
    return sorted(catalogues())


def negotiate(preferred: str | None, accept_language: str | None) -> str:
    """The account's setting if it is a UI language, else the best Accept-Language match,
    else English."""
    langs = available()
    if preferred:
        code = preferred.replace("-", "_").split("_")[0].lower()
        if code in langs:
            return code
    wanted: list[tuple[float, str]] = []
    for part in (accept_language or "").split(",")[:20]:
        item, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if item:
            wanted.append((weight, item.strip()))
    for _, item in sorted(wanted, key=lambda pair: -pair[0]):
        code = item.replace("-", "_").split("_")[0].lower()
        if code in langs:
            return code
    return DEFAULT


class Lang:
    """What a template needs for one language: messages, direction, formatting."""

    def __init__(self, code: str):
        self.code = code
        self.translations = catalogues().get(code) or catalogues()[DEFAULT]
        try:
            self.locale = Locale.parse(code)
        except (UnknownLocaleError, ValueError):
            self.locale = Locale.parse(DEFAULT)
        self.dir = "rtl" if self.locale.character_order == "right-to-left" else "ltr"

    def gettext(self, message: str, **values) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values) -> str:
        text = self.translations.ngettext(singular, plural, n)
        return text % {"num": self.number(n), **values}

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def datetime(self, value: str | datetime | None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return format_datetime(value, format="medium", locale=self.locale, tzinfo=None)

    def name(self) -> str:
        return self.locale.get_display_name(self.locale) or self.code
