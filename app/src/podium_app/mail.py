"""Outgoing mail: messages built here, sent by the worker over SMTP (submission + STARTTLS)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from podium_app.settings import Settings


def build(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.domain)
    message.set_content(body)
    return message


def build_templated(settings: Settings, to: str, template: str, locale: str,
                    params: dict[str, str], unsubscribe_url: str | None = None) -> EmailMessage:
    """A text + HTML message from mailtemplates, with Content-Language and, for digests,
    List-Unsubscribe with one-click unsubscribe (RFC 8058)."""
    from podium_app import mailtemplates

    lang, subject, text, page = mailtemplates.render(
        template, locale, {"title": settings.title, "domain": settings.domain, **params})
    message = build(settings, to, subject, text)
    message.add_alternative(page, subtype="html")
    message["Content-Language"] = lang
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Send one message (blocking; the worker runs it in a thread), with the VERP envelope
    sender of podium_app.bounces when bounces are configured. Raises OSError or
    smtplib.SMTPException, which the job turns into a retry with backoff."""
    from podium_app.bounces import envelope_sender

    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
        smtp.ehlo()
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=settings.smtp_ca_file))
            smtp.ehlo()
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message, from_addr=envelope_sender(settings, str(message["To"])))
