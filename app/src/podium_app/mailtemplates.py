# ruff: noqa: RUF001 (Arabic text is meant to be Arabic)
"""Localized mail templates (en, fr, ar): a subject, a text part and an HTML part each.

Kept as plain Python dicts with `{name}` placeholders so they can move into the web
helper's Babel catalogues (one msgid per entry) without changing callers; the web branch
had no catalogues for mail when this was written. Values are HTML-escaped for the HTML part.
"""

from __future__ import annotations

import html

TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "confirm": {
        "en": {"subject": "Confirm your email for {title}",
               "body": "Welcome to {title}!\n\nConfirm your email address with this link:\n"
                       "{link}\n\nIf you did not sign up, ignore this message."},
        "fr": {"subject": "Confirmez votre adresse pour {title}",
               "body": "Bienvenue sur {title} !\n\nConfirmez votre adresse avec ce lien :\n"
                       "{link}\n\nSi vous ne vous êtes pas inscrit, ignorez ce message."},
        "ar": {"subject": "أكّد بريدك الإلكتروني على {title}",
               "body": "مرحبًا بك في {title}!\n\nأكّد عنوان بريدك الإلكتروني عبر هذا الرابط:\n"
                       "{link}\n\nإذا لم تقم بالتسجيل، تجاهل هذه الرسالة."},
    },
    "reset": {
        "en": {"subject": "Reset your password on {title}",
               "body": "Someone asked to reset your password on {title}.\n\n{link}\n\n"
                       "If it was not you, ignore this message."},
        "fr": {"subject": "Réinitialisez votre mot de passe sur {title}",
               "body": "Une réinitialisation de votre mot de passe sur {title} a été "
                       "demandée.\n\n{link}\n\nSi ce n'était pas vous, ignorez ce message."},
        "ar": {"subject": "أعد تعيين كلمة المرور على {title}",
               "body": "طلب أحدهم إعادة تعيين كلمة المرور الخاصة بك على {title}.\n\n{link}\n\n"
                       "إذا لم تكن أنت، تجاهل هذه الرسالة."},
    },
    "digest": {
        "en": {"subject": "What you missed on {title}",
               "body": "{count} new posts from people you follow on {title}.\n\n{link}"},
        "fr": {"subject": "Ce que vous avez manqué sur {title}",
               "body": "{count} nouvelles publications de vos abonnements sur {title}.\n\n"
                       "{link}"},
        "ar": {"subject": "ما فاتك على {title}",
               "body": "{count} منشورات جديدة ممن تتابعهم على {title}.\n\n{link}"},
    },
}
RTL = {"ar"}


def render(name: str, locale: str, params: dict[str, str]) -> tuple[str, str, str, str]:
    """(language, subject, text, html) for template `name` in `locale` (en fallback)."""
    lang = (locale or "en").split("-")[0].split("_")[0].lower()
    entry = TEMPLATES[name].get(lang) or TEMPLATES[name]["en"]
    lang = lang if lang in TEMPLATES[name] else "en"
    subject = entry["subject"].format(**params)
    text = entry["body"].format(**params)
    escaped = {k: html.escape(str(v)) for k, v in params.items()}
    paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>"
                         for p in entry["body"].format(**escaped).split("\n\n"))
    direction = "rtl" if lang in RTL else "ltr"
    page = (f'<!DOCTYPE html><html lang="{lang}" dir="{direction}"><head><meta charset="utf-8">'
            f"<title>{html.escape(subject)}</title></head><body>{paragraphs}</body></html>")
    return lang, subject, text, page
