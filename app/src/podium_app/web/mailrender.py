"""Mail from the app rendered from templates in the recipient's language.

Each message is `templates/mail/NAME.txt` (the text part) and `templates/mail/NAME.html`
(the HTML part, `dir="rtl"` for Arabic), translated through the web front's gettext
catalogues like every page: adding a language adds its mail too. Subjects are below,
marked for extraction. The HTML part is autoescaped; the text part is not (it is not HTML).
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from podium_app.web.i18n import Lang, negotiate


def N_(message: str) -> str:
    return message


SUBJECTS = {
    "confirm": N_("Confirm your email for %(title)s"),
    "reset": N_("Reset your password on %(title)s"),
    "digest": N_("What you missed on %(title)s"),
}

env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                  autoescape=select_autoescape(("html",), default_for_string=False),
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                  keep_trailing_newline=True)


def render(name: str, locale: str | None, params: dict) -> tuple[str, str, str, str]:
    """(language, subject, text, html) of mail `name` in `locale` (best catalogue, else
    English). `params` are the template's values; every template gets `title` and
    `domain`. Raises jinja2.UndefinedError when a value the template uses is missing."""
    lang = Lang(negotiate(locale, None))
    subject = lang.gettext(SUBJECTS[name], title=params["title"])
    values = {"lang": lang, "_": lang.gettext, "ngettext": lang.ngettext, "subject": subject,
              **params}
    text = env.get_template(f"mail/{name}.txt").render(values)
    page = env.get_template(f"mail/{name}.html").render(values)
    return lang.code, subject, text, page
