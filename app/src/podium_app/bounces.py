"""Bounces: VERP envelope senders out, delivery status notifications in (decision 0140).

Every message leaves with envelope sender ``LOCAL+TOKEN@DOMAIN`` (PODIUM_MAIL_BOUNCE_ADDRESS
is ``LOCAL@DOMAIN``), TOKEN an HMAC of the recipient under the app's secret key. A bounce
comes back to that address, lands in the bounce mailbox (Postfix and Dovecot strip ``+TOKEN``
to find it), and the worker reads it over IMAPS every minute:

- a DSN (RFC 3464, ``multipart/report; report-type=delivery-status``) whose recipient block
  says ``Action: failed`` with a ``5.x.x`` status, and whose TOKEN matches that recipient,
  marks the account with that address undeliverable (``Account.email_bounced_at``); mail
  jobs then skip the address;
- a ``4.x.x``/delayed report is a soft bounce: nothing is marked;
- both are deleted from the mailbox once handled;
- anything else (not a DSN, no token, a token that does not match: forged or mangled) is
  moved to the ``Unprocessed`` folder for a person to look at, and changes nothing.

The token is what makes a bounce trustworthy: anybody can send a DSN-shaped message to the
bounce address, but only mail the app sent carries the HMAC of its own recipient.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import hashlib
import hmac
import imaplib
import logging
import re
import ssl
from collections import Counter
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app.models import Account
from podium_app.settings import Settings

log = logging.getLogger("podium_app.bounces")

UNPROCESSED = "Unprocessed"
# Messages read per run (the cron runs every minute): a bounce storm is worked off in steps.
BATCH = 200
_TOKEN_CHARS = 16  # base32 characters: 80 bits of the HMAC


def token_for(secret: str, recipient: str) -> str:
    """The VERP token for one recipient address (case-insensitive)."""
    mac = hmac.new(secret.encode(), b"podium-bounce\0" + recipient.strip().lower().encode(),
                   hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:_TOKEN_CHARS]


def envelope_sender(settings: Settings, recipient: str) -> str | None:
    """``LOCAL+TOKEN@DOMAIN`` for mail to `recipient`; None when bounces are not configured
    (the SMTP library then uses the From address)."""
    if not settings.mail_bounce_address:
        return None
    local, _, domain = settings.mail_bounce_address.rpartition("@")
    return f"{local}+{token_for(settings.require_secret(), recipient)}@{domain}"


@dataclass(frozen=True)
class Report:
    """What one message in the bounce mailbox says. kind: ``hard`` (recipient verified, mark
    it), ``soft`` (temporary: leave the address alone), ``unverified`` (a DSN whose token does
    not match any of its recipients) or ``junk`` (not a delivery status notification)."""

    kind: str
    recipient: str | None = None
    status: str = ""
    diagnostic: str = ""

    @property
    def detail(self) -> str:
        return f"{self.status} {self.diagnostic}".strip()[:500]


def _address(field: str | None) -> str | None:
    """``rfc822; user@example.org`` -> ``user@example.org`` (other address types: None)."""
    if not field:
        return None
    kind, sep, value = str(field).partition(";")
    if not sep:
        value, kind = kind, "rfc822"
    value = value.strip().strip("<>").strip()
    return value if kind.strip().lower() == "rfc822" and "@" in value else None


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):  # the stdlib parser splits message/delivery-status
        return payload
    raw = part.get_payload(decode=True) or b""  # e.g. a base64-encoded report
    text = raw.decode("utf-8", "replace")
    return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", text)
            if chunk.strip()]


def _tokens(report: Message, settings: Settings) -> set[str]:
    """VERP tokens in the addresses the report was sent to, and in the Return-Path of the
    returned message (or its headers)."""
    local, _, domain = (settings.mail_bounce_address or "").rpartition("@")
    if not local:
        return set()
    pattern = re.compile(rf"{re.escape(local)}\+([a-z2-7]{{{_TOKEN_CHARS}}})@{re.escape(domain)}",
                         re.IGNORECASE)
    seen = [str(report.get_all(h, [])) for h in ("To", "Delivered-To", "X-Original-To")]
    for part in report.walk():
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            seen.append(str(part.get_payload(0).get_all("Return-Path", [])))
        elif part.get_content_type() == "text/rfc822-headers":
            headers = HeaderParser().parsestr(
                (part.get_payload(decode=True) or b"").decode("utf-8", "replace"))
            seen.append(str(headers.get_all("Return-Path", [])))
    return {t.lower() for text in seen for t in pattern.findall(text)}


def parse(raw: bytes, settings: Settings) -> Report:
    """Classify one message from the bounce mailbox. Never raises: anything it cannot read
    is ``junk``."""
    try:
        return _parse(email.message_from_bytes(raw), settings)
    except Exception as err:  # hostile or broken input must never stop the worker
        log.warning("unreadable message in the bounce mailbox: %s", err)
        return Report("junk")


def _parse(report: Message, settings: Settings) -> Report:
    statuses = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    if not statuses:
        return Report("junk")
    tokens = _tokens(report, settings)
    secret = settings.require_secret()
    recipients = [b for b in _status_blocks(statuses[0])[1:]
                  if b.get("Final-Recipient") or b.get("Original-Recipient")]
    if not recipients:
        return Report("junk")
    for block in recipients:
        candidates = [a for a in (_address(block.get("Original-Recipient")),
                                  _address(block.get("Final-Recipient"))) if a]
        verified = next((a for a in candidates if token_for(secret, a) in tokens), None)
        if verified is None:
            continue
        action = str(block.get("Action", "")).strip().lower()
        status = str(block.get("Status", "")).strip().split(" ")[0]
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        hard = action == "failed" and status.startswith("5.")
        return Report("hard" if hard else "soft", verified.lower(), status, diagnostic)
    return Report("unverified")


async def mark_undeliverable(session: AsyncSession, address: str, detail: str) -> int:
    """Mark the account(s) whose address this is; the first bounce's date and detail stay.
    Returns the number of accounts newly marked."""
    result = await session.execute(
        update(Account)
        .where(func.lower(Account.email) == address.lower(), Account.email_bounced_at.is_(None))
        .values(email_bounced_at=func.now(), email_bounce_detail=detail[:500]))
    return result.rowcount or 0


async def is_undeliverable(session: AsyncSession, address: str) -> bool:
    return bool(await session.scalar(
        select(func.count()).select_from(Account).where(
            func.lower(Account.email) == address.lower(),
            Account.email_bounced_at.is_not(None))))


class Mailbox:
    """The bounce mailbox over IMAPS (blocking; the worker calls it in a thread). Raises
    OSError or imaplib.IMAP4.error when the server is unreachable or refuses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.imap: imaplib.IMAP4_SSL | None = None

    def open(self) -> None:
        s = self.settings
        context = ssl.create_default_context(cafile=s.smtp_ca_file)
        self.imap = imaplib.IMAP4_SSL(s.bounce_imap_host, s.bounce_imap_port,
                                      ssl_context=context, timeout=30)
        password = s.bounce_imap_password.get_secret_value() if s.bounce_imap_password else ""
        self.imap.login(s.bounce_imap_user or "", password)
        self.imap.select("INBOX")

    def fetch(self, limit: int = BATCH) -> list[tuple[bytes, bytes]]:
        """(uid, raw message) of the oldest `limit` messages."""
        assert self.imap is not None
        _, found = self.imap.uid("SEARCH", None, "ALL")
        messages = []
        for uid in (found[0] or b"").split()[:limit]:
            _, data = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), None)
            if raw is not None:
                messages.append((uid, raw))
        return messages

    def finish(self, handled: list[bytes], kept: list[bytes]) -> None:
        """Delete handled messages; move the others to UNPROCESSED (created if missing)."""
        assert self.imap is not None
        if kept:
            self.imap.create(UNPROCESSED)  # answers NO when it exists: fine
            status, _ = self.imap.uid("COPY", b",".join(kept), UNPROCESSED)
            if status == "OK":
                handled = handled + kept
        if handled:
            self.imap.uid("STORE", b",".join(handled), "+FLAGS.SILENT", r"(\Deleted)")
            self.imap.expunge()

    def close(self) -> None:
        if self.imap is None:
            return
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.imap.logout()
        self.imap = None


async def process_mailbox(settings: Settings, db) -> Counter:
    """Read the bounce mailbox once: mark hard bounces, clear what was handled. Returns the
    count of messages by kind. Raises OSError/imaplib.IMAP4.error when IMAP fails (nothing is
    lost: unhandled messages stay in the mailbox for the next run)."""
    mailbox = Mailbox(settings)
    counts: Counter = Counter()
    try:
        await asyncio.to_thread(mailbox.open)
        messages = await asyncio.to_thread(mailbox.fetch)
        handled, kept = [], []
        for uid, raw in messages:
            report = parse(raw, settings)
            counts[report.kind] += 1
            if report.kind == "hard":
                async with db.sessions() as session, session.begin():
                    marked = await mark_undeliverable(session, report.recipient, report.detail)
                log.info("hard bounce for %s (%s): %d account(s) marked", report.recipient,
                         report.detail, marked)
            (handled if report.kind in ("hard", "soft") else kept).append(uid)
        await asyncio.to_thread(mailbox.finish, handled, kept)
    finally:
        await asyncio.to_thread(mailbox.close)
    return counts
