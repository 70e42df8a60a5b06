"""Mail through the queue: a mail server that goes away mid-run delays mail and loses none;
localized text + HTML messages with the right headers."""

from __future__ import annotations

import asyncio
import threading
import time
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from arq.connections import ArqRedis, create_pool
from podium_app import queue

from kit.appservices import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def enqueue(settings, *jobs) -> None:
    async def run() -> None:
        pool: ArqRedis = await create_pool(queue.redis_settings(settings))
        for function, *args in jobs:
            await pool.enqueue_job(function, *args, _queue_name=queue.QUEUE_NAME)
        await pool.aclose()

    asyncio.run(run())


def test_mail_server_down_mid_run_delays_mail_and_loses_none(configure, drain):
    port = free_port()
    settings = configure(smtp_port=port, smtp_starttls=False)
    inbox = Inbox()
    sink = Controller(inbox, hostname="127.0.0.1", port=port)
    sink.start()
    enqueue(settings, *[("send_templated_mail", f"u{i}@example.org", "confirm", "en",
                         {"name": f"u{i}", "link": f"https://podium.test/c/{i}"})
                        for i in range(3)])
    drain()
    assert len(inbox.messages) == 3
    sink.stop()  # the mail server goes away
    enqueue(settings, *[("send_templated_mail", f"v{i}@example.org", "reset", "fr",
                         {"name": f"v{i}", "link": f"https://podium.test/r/{i}"})
                        for i in range(4)])
    # It comes back 2 s later on the same port; the jobs' first retry is 5 s after failing.
    # (A new server object: aiosmtpd's Controller does not start again once stopped.)
    again = Controller(inbox, hostname="127.0.0.1", port=port)
    restart = threading.Timer(2.0, again.start)
    restart.start()
    started = time.monotonic()
    drain()  # burst mode waits for the deferred retries
    restart.join()
    again.stop()
    assert time.monotonic() - started >= 4, "the mail was delayed, not sent to nowhere"
    received = sorted(str(m["To"]) for m in inbox.messages[3:])
    assert received == [f"v{i}@example.org" for i in range(4)]


def test_messages_are_localized_multipart_with_headers(configure, drain, sink):
    settings = configure()
    enqueue(settings,
            ("send_templated_mail", "ar@example.org", "digest", "ar",
             {"name": "a", "count": 3, "link": "https://podium.test/home", "posts": [],
              "settings_url": "https://podium.test/settings",
              "unsubscribe_url": "https://podium.test/unsubscribe/abc"},
             "https://podium.test/unsubscribe/abc"),
            ("send_templated_mail", "fr@example.org", "confirm", "fr-CA",
             {"name": "f", "link": "https://podium.test/c/<x>"}))
    drain()
    ar = sink.wait_for("ar@example.org")
    fr = sink.wait_for("fr@example.org")
    for message in (ar, fr):
        assert message["Message-ID"].endswith("@podium.test>")
        assert message["Date"] and "podium.test" in message["From"]
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain",
                                                                       "text/html"]
    assert ar["Content-Language"] == "ar" and "ما فاتك" in ar["Subject"]
    assert 'dir="rtl"' in ar.get_body(("html",)).get_content()
    assert ar["List-Unsubscribe"] == "<https://podium.test/unsubscribe/abc>"
    assert ar["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert fr["Content-Language"] == "fr" and "Confirmez" in fr["Subject"]
    assert "List-Unsubscribe" not in fr
    html = fr.get_body(("html",)).get_content()
    assert "&lt;x&gt;" in html and "<x>" not in html
    assert "https://podium.test/c/<x>" in fr.get_body(("plain",)).get_content()
