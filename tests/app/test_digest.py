"""Email digests (services/digest.py, tasks.send_digests): the setting on the web settings
page, the cron job mailing the followed accounts' posts since the last digest through the
mail queue in the follower's language, and one-click unsubscribe. Real SMTP sink."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from test_mail_queue import enqueue
from test_web_pages import WebClient


def sql(settings, statement: str, **params):
    async def run():
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            rows = result.all() if result.returns_rows else None
        await engine.dispose()
        return rows

    return asyncio.run(run())


@pytest.fixture
def reader(server, make_user):
    make_user("reader")
    web = WebClient(server)
    web.login("reader")
    yield web
    web.http.close()


def settings_of(web: WebClient, **form) -> None:
    assert web.submit("/settings", "/settings", form).status_code == 303


def follow(web: WebClient, name: str) -> None:
    assert web.submit(f"/@{name}", f"/@{name}/follow", {}).status_code == 303


def a_day_passes(settings, username: str, days: float = 1.01) -> None:
    """The last digest was made `days` ago; the posts made after it are older than now."""
    sql(settings, "UPDATE accounts SET digest_sent_at = now() - make_interval(secs => :s) "
        "WHERE username = :u", s=days * 86400, u=username)
    sql(settings, "UPDATE statuses SET created_at = now() - interval '1 hour'")


def test_settings_page_offers_the_digest_and_saves_it(reader, base_settings):
    page = reader.get("/settings").text
    assert '<select id="digest" name="digest">' in page
    assert '<option value="off" selected>' in page
    settings_of(reader, digest="weekly")
    assert '<option value="weekly" selected>' in reader.get("/settings").text
    settings_of(reader, digest="hourly")  # not a choice: ignored
    assert sql(base_settings, "SELECT digest FROM accounts WHERE username = 'reader'") == [
        ("weekly",)]


def test_daily_digest_in_french_lists_the_posts_since_the_last_one(
        reader, make_user, post, base_settings, drain, sink):
    pub = make_user("pub", publisher=True)
    other = make_user("other", publisher=True)
    follow(reader, "pub")
    settings_of(reader, digest="daily", locale="fr")
    post(pub, "before the digest was set")  # older than the period start: not listed
    first = post(pub, "Nouvelle annonce <importante>")
    post(pub, "seconde annonce")
    post(other, "not followed")
    post(pub, "only followers", visibility="private")
    a_day_passes(base_settings, "reader")
    sql(base_settings, "UPDATE statuses SET created_at = now() - interval '3 days' "
        "WHERE text = 'before the digest was set'")
    enqueue(base_settings, ("send_digests",))
    drain()
    mail = sink.wait_for("reader@example.org")
    assert mail["Subject"] == "Ce que vous avez manqué sur Podium"
    assert mail["Content-Language"] == "fr"
    body = mail.get_body(("plain",)).get_content()
    assert "3 nouvelles publications de vos abonnements" in body
    assert "Nouvelle annonce <importante>" in body and "only followers" in body
    assert "not followed" not in body and "before the digest" not in body
    assert f"https://podium.test/@pub/{first['id']}" in body
    html = mail.get_body(("html",)).get_content()
    assert '<html lang="fr" dir="ltr">' in html and "&lt;importante&gt;" in html
    unsubscribe = re.fullmatch(r"<(https://podium\.test/digest/unsubscribe/\S+)>",
                               mail["List-Unsubscribe"]).group(1)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in body

    # Made now: a second run in the same period mails nothing.
    sink.messages.clear()
    enqueue(base_settings, ("send_digests",))
    drain()
    assert sink.messages == []


def test_arabic_digest_is_right_to_left(reader, make_user, post, base_settings, drain,
                                        sink):
    pub = make_user("pub", publisher=True)
    follow(reader, "pub")
    settings_of(reader, digest="weekly", locale="ar")
    post(pub, "مرحبا")
    a_day_passes(base_settings, "reader", days=2)
    enqueue(base_settings, ("send_digests",))
    drain()
    assert sink.messages == [], "a weekly digest waits for its week"
    a_day_passes(base_settings, "reader", days=7.01)
    enqueue(base_settings, ("send_digests",))
    drain()
    mail = sink.wait_for("reader@example.org")
    assert mail["Subject"] == "ما فاتك على Podium"
    html = mail.get_body(("html",)).get_content()
    assert '<html lang="ar" dir="rtl">' in html
    assert "منشور جديد واحد ممن تتابعهم" in html


def test_nothing_new_means_no_mail(reader, make_user, base_settings, drain, sink):
    make_user("pub", publisher=True)
    follow(reader, "pub")
    settings_of(reader, digest="daily")
    a_day_passes(base_settings, "reader")
    enqueue(base_settings, ("send_digests",))
    drain()
    assert sink.messages == []


def test_one_click_unsubscribe_turns_the_digest_off(reader, make_user, post, base_settings,
                                                  drain, sink, client):
    pub = make_user("pub", publisher=True)
    follow(reader, "pub")
    settings_of(reader, digest="daily")
    post(pub, "news")
    a_day_passes(base_settings, "reader")
    enqueue(base_settings, ("send_digests",))
    drain()
    url = sink.wait_for("reader@example.org")["List-Unsubscribe"].strip("<>")
    path = url.removeprefix("https://podium.test")
    assert client.get(path).status_code == 200  # a link scanner changes nothing
    assert sql(base_settings, "SELECT digest FROM accounts WHERE username = 'reader'") == [
        ("daily",)]
    # RFC 8058: the mail client POSTs without a session or CSRF token.
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "is off" in answer.text
    assert sql(base_settings, "SELECT digest FROM accounts WHERE username = 'reader'") == [
        ("off",)]
    forged = client.post(path[:-3] + "abc")
    assert forged.status_code == 404
