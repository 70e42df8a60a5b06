"""Bounces: the VERP envelope sender on outgoing mail, DSN parsing (a real Postfix DSN from
the lab, and variants of it), hard bounces marking the account, soft ones and forgeries
changing nothing, junk never raising, and no more mail to a marked address."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest
from aiosmtpd.controller import Controller
from podium_app import bounces
from podium_app.db import Database
from podium_app.models import Account
from sqlalchemy import select
from test_mail_queue import enqueue

from kit.appservices import free_port

DATA = Path(__file__).parent / "data"
BOUNCE = "bounce@podium.test"


@pytest.fixture
def verp(configure):
    return configure(mail_bounce_address=BOUNCE)


def dsn(settings, recipient: str, *, status: str = "5.1.1", action: str = "failed",
        token_for: str | None = None, diagnostic: str = "550 5.1.1 User unknown") -> bytes:
    """A DSN shaped as Postfix's bounce daemon writes it, addressed to the VERP sender of
    mail to `token_for` (default: the recipient itself)."""
    sender = bounces.envelope_sender(settings, token_for or recipient)
    return (
        "Return-Path: <>\r\n"
        f"Delivered-To: {sender}\r\n"
        "From: MAILER-DAEMON@mail1.podium.test (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"To: {sender}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail1.podium.test\r\n"
        "Arrival-Date: Sat, 21 Nov 2026 17:00:00 +0000 (UTC)\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{sender}>\r\nFrom: Podium <noreply@podium.test>\r\n"
        f"To: {recipient}\r\nSubject: Confirm\r\n"
        "\r\n--B--\r\n").encode()


def test_outgoing_mail_has_a_verp_envelope_sender_per_recipient(configure, drain):
    port = free_port()
    senders: dict[str, str] = {}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            senders[envelope.rcpt_tos[0]] = envelope.mail_from
            return "250 OK"

    sink = Controller(Handler(), hostname="127.0.0.1", port=port)
    sink.start()
    try:
        settings = configure(mail_bounce_address=BOUNCE, smtp_port=port, smtp_starttls=False)
        enqueue(settings, ("send_mail", "Ann@example.org", "s", "b"),
                ("send_templated_mail", "bob@example.org", "confirm", "en",
                 {"link": "x", "name": "bob"}))
        drain()
    finally:
        sink.stop()
    secret = settings.require_secret()
    assert senders == {
        "Ann@example.org": f"bounce+{bounces.token_for(secret, 'ann@example.org')}@podium.test",
        "bob@example.org": f"bounce+{bounces.token_for(secret, 'bob@example.org')}@podium.test"}


def test_token_is_case_insensitive_and_secret_bound(verp):
    secret = verp.require_secret()
    assert bounces.token_for(secret, "Ann@Example.org") == bounces.token_for(secret,
                                                                            "ann@example.org")
    assert bounces.token_for(secret, "ann@example.org") != bounces.token_for(
        "another-secret-" + "y" * 32, "ann@example.org")


def test_real_postfix_dsn_from_the_lab_is_a_hard_bounce(verp):
    """Captured from the lab's Postfix (tests/app/data/README.md says how): mail submitted with
    the VERP sender these tests compute to a local user that does not exist."""
    raw = (DATA / "postfix-dsn.eml").read_bytes()
    report = bounces.parse(raw, verp)
    assert report.kind == "hard"
    assert report.recipient == "nobody-lab@podium.test"
    assert report.status == "5.1.1"
    # The same DSN for an address our token does not name proves nothing.
    tampered = raw.replace(b"nobody-lab@podium.test", b"someone-else@podium.test")
    assert bounces.parse(tampered, verp).kind == "unverified"


@pytest.mark.parametrize(("status", "action", "kind"), [
    ("5.1.1", "failed", "hard"), ("5.2.2", "failed", "hard"), ("4.4.1", "delayed", "soft"),
    ("4.2.2", "failed", "soft")])
def test_status_classes(verp, status, action, kind):
    report = bounces.parse(dsn(verp, "ann@example.org", status=status, action=action), verp)
    assert (report.kind, report.recipient, report.status) == (kind, "ann@example.org", status)


def test_a_dsn_whose_token_belongs_to_another_address_is_unverified(verp):
    """Someone who got mail from us knows their own token, not anybody else's."""
    forged = dsn(verp, "victim@example.org", token_for="attacker@example.org")
    assert bounces.parse(forged, verp).kind == "unverified"


JUNK = {
    "empty": b"",
    "binary": bytes(range(256)) * 8,
    "plain mail": b"From: a@b\r\nSubject: hi\r\n\r\nhello\r\n",
    "report without status": (b"Content-Type: multipart/report; boundary=X\r\n\r\n--X\r\n"
                              b"Content-Type: text/plain\r\n\r\nno\r\n--X--\r\n"),
    "status without recipients": (b"Content-Type: multipart/report; boundary=X\r\n\r\n--X\r\n"
                                  b"Content-Type: message/delivery-status\r\n\r\n"
                                  b"Reporting-MTA: dns; x\r\n--X--\r\n"),
    "broken base64 status": (b"Content-Type: multipart/report; boundary=X\r\n\r\n--X\r\n"
                             b"Content-Type: message/delivery-status\r\n"
                             b"Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n--X--\r\n"),
    "unterminated multipart": b"Content-Type: multipart/report; boundary=X\r\n\r\n--X\r\n",
    "deep nesting": (b"Content-Type: multipart/mixed; boundary=A\r\n\r\n"
                     + b"--A\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n" * 500),
}


@pytest.mark.parametrize("name", sorted(JUNK))
def test_junk_is_classified_and_never_raises(verp, name):
    assert bounces.parse(JUNK[name], verp).kind in ("junk", "unverified")


class FakeMailbox:
    """Mailbox's interface over a list, to test the job's bookkeeping without a server (the
    lab test reads the real Dovecot)."""

    store: ClassVar[dict[bytes, bytes]] = {}
    moved: ClassVar[list[bytes]] = []

    def __init__(self, settings) -> None:
        pass

    def open(self) -> None:
        pass

    def fetch(self, limit: int = bounces.BATCH) -> list[tuple[bytes, bytes]]:
        return list(self.store.items())[:limit]

    def finish(self, handled, kept) -> None:
        FakeMailbox.moved += kept
        for uid in [*handled, *kept]:
            del self.store[uid]

    def close(self) -> None:
        pass


def test_the_job_marks_hard_bounces_only_and_clears_the_mailbox(verp, make_user, monkeypatch,
                                                                drain, sink):
    make_user("ann")
    make_user("bob")
    FakeMailbox.store = {
        b"1": dsn(verp, "ann@example.org"),
        b"2": dsn(verp, "bob@example.org", status="4.4.1", action="delayed"),
        b"3": dsn(verp, "bob@example.org", token_for="eve@example.org"),
        b"4": JUNK["binary"],
    }
    FakeMailbox.moved = []
    monkeypatch.setattr(bounces, "Mailbox", FakeMailbox)
    settings = verp.model_copy(update={"bounce_imap_host": "imap.invalid"})
    db = Database.from_settings(settings)
    try:
        counts = asyncio.run(bounces.process_mailbox(settings, db))
    finally:
        asyncio.run(db.dispose())
    assert counts == Counter(hard=1, soft=1, unverified=1, junk=1)
    assert FakeMailbox.store == {} and sorted(FakeMailbox.moved) == [b"3", b"4"]
    marked = asyncio.run(_bounced(verp))
    assert marked == {"ann": "5.1.1 smtp; 550 5.1.1 User unknown", "bob": None}
    # No more mail to ann; bob still gets his.
    enqueue(verp, ("send_mail", "ann@example.org", "s", "b"),
            ("send_mail", "bob@example.org", "s", "b"))
    drain()
    assert [str(m["To"]) for m in sink.messages] == ["bob@example.org"]


async def _bounced(settings) -> dict:
    db = Database.from_settings(settings)
    try:
        async with db.sessions() as session:
            rows = await session.execute(select(Account.username, Account.email_bounce_detail))
            return dict(rows.all())
    finally:
        await db.dispose()


def test_the_account_and_admin_see_the_bounce(verp, make_user, client):
    ann = make_user("ann")
    admin = make_user("root", role="admin")
    assert client.get("/api/v1/accounts/verify_credentials", headers=ann.headers).json()[
        "source"]["email_undeliverable"] is False
    settings = verp
    db = Database.from_settings(settings)

    async def mark() -> None:
        async with db.sessions() as session, session.begin():
            assert await bounces.mark_undeliverable(session, "ANN@example.org", "5.1.1 x") == 1
            assert await bounces.mark_undeliverable(session, "ann@example.org", "5.1.1 y") == 0
        await db.dispose()

    asyncio.run(mark())
    me = client.get("/api/v1/accounts/verify_credentials", headers=ann.headers).json()
    assert me["source"]["email_undeliverable"] is True
    seen = client.get(f"/api/v1/admin/accounts/{ann.id}", headers=admin.headers).json()
    assert seen["email"] == "ann@example.org" and seen["email_bounce_detail"] == "5.1.1 x"
    assert seen["email_bounced_at"].endswith("Z")
    assert client.get(f"/api/v1/admin/accounts/{ann.id}",
                      headers=ann.headers).status_code == 403


def test_the_cron_job_survives_an_unreachable_mailbox(verp):
    from podium_app.tasks import process_bounces
    settings = verp.model_copy(update={"bounce_imap_host": "127.0.0.1",
                                       "bounce_imap_port": free_port()})
    db = Database.from_settings(settings)
    try:
        assert asyncio.run(process_bounces({"settings": settings, "db": db})) == {}
    finally:
        asyncio.run(db.dispose())
