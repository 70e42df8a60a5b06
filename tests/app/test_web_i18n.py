"""The web front's languages: catalogues found on disk, choice by setting or
Accept-Language, right-to-left Arabic, per-locale dates and numbers, complete catalogues."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from podium_app.web import i18n

WEB = Path(i18n.__file__).parent
ON_DISK = sorted(p.parent.parent.name for p in (WEB / "locale").glob("*/LC_MESSAGES/messages.po"))


def test_languages_are_the_catalogues_on_disk():
    assert i18n.available() == ON_DISK
    assert {"en", "fr", "ar"} <= set(ON_DISK)


def test_a_new_catalogue_is_a_new_language(tmp_path, monkeypatch):
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Home"\nmsgstr "Startseite"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.catalogues.cache_clear()
    try:
        assert "de" in i18n.available()
        assert i18n.negotiate(None, "de-AT,de;q=0.9") == "de"
        assert i18n.Lang("de").gettext("Home") == "Startseite"
    finally:
        i18n.catalogues.cache_clear()


def _messages() -> set:
    found = set()
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2"),
                  ("templates/**.atom", "jinja2"), ("templates/**.txt", "jinja2")]
    for _, _, message, _, _ in extract_from_dir(str(WEB), method_map):
        found.add(message)
    return found


@pytest.mark.parametrize("code", [c for c in ON_DISK if c != "en"])
def test_every_message_is_translated(code):
    with (WEB / "locale" / code / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=code)
    missing = []
    for message in _messages():
        entry = catalog.get(message)
        strings = entry.string if entry else None
        if not entry or not all(strings if isinstance(strings, tuple) else [strings]):
            missing.append(message)
    assert not missing, f"{code}: untranslated {missing[:5]}"


@pytest.mark.parametrize("code", ON_DISK)
def test_placeholders_survive_translation(code):
    with (WEB / "locale" / code / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=code)
    for entry in catalog:
        if not entry.id or not entry.string:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set(re.findall(r"%\((\w+)\)s", ids[-1]))
        for text in filter(None, strings):  # empty: untranslated, gettext shows the source
            found = set(re.findall(r"%\((\w+)\)s", text))
            # A plural form may spell its number out ("ردّ واحد": one reply).
            assert found == wanted or (len(ids) == 2 and found <= wanted), (code, entry.id)


@pytest.mark.parametrize(("header", "expected"), [
    ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("ar-EG", "ar"), ("de-DE,ar;q=0.5", "ar"),
    ("en;q=0.2,fr;q=0.8", "fr"), ("", "en"), ("xx;q=bad", "en"),
])
def test_accept_language_picks_the_best_catalogue(header, expected):
    assert i18n.negotiate(None, header) == expected


def test_the_accounts_setting_wins_over_the_browser():
    assert i18n.negotiate("ar", "fr") == "ar"
    assert i18n.negotiate("tlh", "fr") == "fr"  # not a UI language: the browser decides


def test_direction_comes_from_locale_data():
    for code in ON_DISK:
        expected = "rtl" if Locale.parse(code).character_order == "right-to-left" else "ltr"
        assert i18n.Lang(code).dir == expected
    assert i18n.Lang("ar").dir == "rtl" and i18n.Lang("fr").dir == "ltr"


def test_numbers_and_dates_follow_the_locale():
    assert i18n.Lang("fr").number(1234567) != i18n.Lang("en").number(1234567)
    when = "2026-03-01T15:04:00Z"
    assert "mars" in i18n.Lang("fr").datetime(when)
    assert i18n.Lang("ar").datetime(when).endswith("م")  # Arabic PM marker


def test_pages_follow_accept_language(client):
    fr = client.get("/public", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert '<html lang="fr" dir="ltr">' in fr.text and "Fil public" in fr.text
    assert "Accept-Language" in fr.headers["vary"]
    ar = client.get("/public", headers={"Accept-Language": "ar"})
    assert '<html lang="ar" dir="rtl">' in ar.text and "الخط الزمني العام" in ar.text
    assert ar.headers["etag"] != fr.headers["etag"]


def test_stylesheet_uses_logical_properties_only():
    css = (WEB / "static" / "style.css").read_text()
    physical = re.findall(r"(?<![\w-])(?:margin|padding|border)-(?:left|right)\b|"
                          r"(?<![\w-])(?:left|right)\s*:|text-align:\s*(?:left|right)", css)
    assert physical == []
