"""Mail from the app in the recipient's language (podium_app.web.mailrender): confirmation
and password reset from the web forms and the API, text + HTML, Arabic right-to-left, links
to the web pages that handle them. Real SMTP sink, through the queue."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from test_web_pages import WebClient


@pytest.fixture
def visitor(server: str):
    def make(language: str) -> WebClient:
        return WebClient(server, **{"Accept-Language": language})

    return make


def sign_up(web: WebClient, name: str):
    answer = web.submit("/signup", "/signup", {
        "username": name, "email": f"{name}@example.org", "password": "a long password",
        "agreement": "on"})
    assert answer.status_code == 200, answer.text


def parts(message) -> tuple[str, str]:
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    return tuple(message.get_body((kind,)).get_content().replace("\r\n", "\n")
                 for kind in ("plain", "html"))


def test_french_confirmation_mail_links_to_the_confirm_page(visitor, drain, sink):
    web = visitor("fr-FR,fr;q=0.9")
    sign_up(web, "zoe")
    drain()
    mail = sink.wait_for("zoe@example.org")
    assert mail["Subject"] == "Confirmez votre adresse pour Podium"
    assert mail["Content-Language"] == "fr"
    text, html = parts(mail)
    assert text.startswith("Bonjour zoe,\n\nBienvenue sur Podium ! Confirmez votre adresse")
    assert "Si vous ne vous êtes pas inscrit, ignorez ce message." in text
    link = re.search(r"https://podium\.test/confirm\?token=\S+", text).group(0)
    assert f'<a href="{link}">Confirmer mon adresse e-mail</a>' in html
    assert '<html lang="fr" dir="ltr">' in html
    confirmed = web.get(urlparse(link).path + "?" + urlparse(link).query)
    assert confirmed.status_code == 200 and 'lang="fr"' in confirmed.text


def test_arabic_reset_mail_is_right_to_left_and_links_to_the_reset_form(visitor, drain,
                                                                        sink):
    web = visitor("ar")
    sign_up(web, "layla")
    drain()
    sink.messages.clear()
    assert web.submit("/password/reset", "/password/reset",
                      {"email": "layla@example.org"}).status_code == 200
    drain()
    mail = sink.wait_for("layla@example.org")
    assert mail["Subject"] == "إعادة تعيين كلمة المرور لدى Podium"
    assert mail["Content-Language"] == "ar"
    text, html = parts(mail)
    assert text.startswith("مرحبًا layla،")
    assert "الرابط صالح لمدة ساعتين" in text
    assert '<html lang="ar" dir="rtl">' in html and 'dir="rtl"' in html.split("<body")[1]
    link = re.search(r"https://podium\.test/password/edit\?token=\S+", text).group(0)
    assert f'<a href="{link}">اختر كلمة مرور جديدة</a>' in html
    # The link opens the web form, in Arabic, with the token in it.
    form = web.get(urlparse(link).path + "?" + urlparse(link).query)
    token = link.split("token=")[1]
    assert form.status_code == 200 and f'value="{token}"' in form.text
    assert 'dir="rtl"' in form.text


def test_user_text_in_mail_is_escaped_in_html_only(visitor, drain, sink):
    web = visitor("en")
    sign_up(web, "amp_and")
    drain()
    text, html = parts(sink.wait_for("amp_and@example.org"))
    assert "Hello amp_and," in text and "<p>Hello amp_and,</p>" in html
    assert "<script" not in html


def test_api_confirmation_mail_follows_the_accounts_language(client, drain, sink):
    app = client.post("/api/v1/apps", json={
        "client_name": "t", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read write"}).json()
    token = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "scope": "read write"}).json()["access_token"]
    answer = client.post("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"},
                         json={"username": "api_ar", "email": "api_ar@example.org",
                               "password": "a long password", "agreement": True,
                               "locale": "ar"})
    assert answer.status_code == 200, answer.text
    drain()
    mail = sink.wait_for("api_ar@example.org")
    text, html = parts(mail)
    assert mail["Subject"] == "أكّد بريدك الإلكتروني لدى Podium"
    assert "confirmation_token=" in text and '<html lang="ar" dir="rtl">' in html
