"""The web front (podium_app.web): every page, forms with CSRF, caching, sharing, feeds,
oEmbed, escaping. Real PostgreSQL and Redis (conftest.py); HTML checked as a browser gets it.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest
from test_media import media_app, png, upload  # noqa: F401 (media_app is a fixture)

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ATOM = "{http://www.w3.org/2005/Atom}"


class WebClient:
    """A cookie-keeping client. The web cookies are Secure, which httpx's jar (rightly)
    does not send over http; like a browser on localhost, this one does."""

    def __init__(self, base_url: str, **headers: str):
        self.http = httpx.Client(base_url=base_url, timeout=30, headers=headers)
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answer = self.http.request(method, url, headers=headers, **kwargs)
        for raw in answer.headers.get_list("set-cookie"):
            self.set_cookies.append(raw)
            for name, morsel in SimpleCookie(raw).items():
                if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def csrf(self, url: str) -> str:
        found = CSRF_RE.search(self.get(url).text)
        assert found, f"no CSRF field on {url}"
        return found.group(1)

    def submit(self, form_url: str, action: str, data: dict, **kwargs) -> httpx.Response:
        """GET the page holding the form, then POST `data` with the form's CSRF token."""
        token = self.csrf(form_url)
        return self.request("POST", action, data={"csrf_token": token, **data}, **kwargs)

    def login(self, username: str, password: str = "correct horse battery") -> None:
        answer = self.submit("/login", "/login", {"username": username, "password": password})
        assert answer.status_code == 303, answer.text
        assert "podium_session" in self.cookies


@pytest.fixture
def web(server: str) -> Iterator[WebClient]:
    client = WebClient(server)
    yield client
    client.http.close()


@pytest.fixture
def web2(server: str) -> Iterator[WebClient]:
    client = WebClient(server)
    yield client
    client.http.close()


class Meta(HTMLParser):
    """<meta property|name=... content=...> and <link rel=... href=...> of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.anchors: list[dict] = []
        self.html_attrs: dict[str, str] = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and "content" in a:
            self.meta[a.get("property") or a.get("name", "")] = a["content"]
        elif tag == "link":
            self.links[a.get("rel", "") + " " + a.get("type", "")] = a.get("href", "")
        elif tag == "a":
            self.anchors.append(a)
        elif tag == "html":
            self.html_attrs = a


def status_path(status: dict) -> str:
    return urlparse(status["url"]).path


# --- public pages and caching ----------------------------------------------------------

def test_anonymous_public_pages_are_cacheable_with_etag_and_no_cookie(web, make_user, post):
    alice = make_user("alice", publisher=True)
    st = post(alice, "Hello #launch day")
    for path in ("/", "/public", "/tags/launch", "/@alice", status_path(st),
                 "/@alice.atom", "/tags/launch.atom"):
        answer = web.get(path)
        assert answer.status_code == 200, path
        cache = answer.headers["cache-control"]
        assert "public" in cache and "max-age=30" in cache and "stale-while-revalidate" in cache
        assert "set-cookie" not in answer.headers, path
        etag = answer.headers["etag"]
        again = web.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
    assert web.cookies == {}


def test_landing_lists_the_publishers_latest_posts_only(web, make_user, post):
    alice = make_user("alice", publisher=True)
    bob = make_user("bob")
    post(alice, "From the desk")
    post(bob, "A follower's note")
    page = web.get("/").text
    assert "From the desk" in page
    assert "A follower&#39;s note" not in page and "A follower's note" not in page


def test_pages_carry_a_strict_content_security_policy(web):
    csp = web.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_personal_pages_are_private_and_never_stored(web, make_user):
    make_user("alice")
    web.login("alice")
    for path in ("/home", "/notifications", "/settings", "/", "/public", "/@alice"):
        answer = web.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == "private, no-store", path
        assert "etag" not in answer.headers


def test_personal_pages_send_anonymous_visitors_to_log_in(web):
    for path in ("/home", "/notifications", "/settings", "/moderation"):
        answer = web.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/login?next={path}"


def test_unknown_account_and_post_are_html_404s(web, make_user):
    make_user("alice")
    for path in ("/@nobody", "/@alice/12345", "/@alice/not-an-id"):
        answer = web.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")


def test_anonymous_404_is_public_so_the_edge_replaces_a_deleted_page(web, make_user, post):
    """A deleted post's page cached at the edge is replaced by the 404 only if the 404 may be
    stored (nginx keeps serving the old copy stale otherwise: decision 0180)."""
    alice = make_user("alice")
    status = post(alice, "soon gone")
    path = f"/@alice/{status['id']}"
    assert "public" in web.get(path).headers["cache-control"]
    assert web.request("DELETE", f"/api/v1/statuses/{status['id']}",
                       headers=alice.headers).status_code == 200
    gone = web.get(path)
    assert gone.status_code == 404
    assert gone.headers["cache-control"].startswith("public, max-age=")
    assert "etag" not in gone.headers and "set-cookie" not in gone.headers
    web.login("alice")
    assert web.get(path).headers["cache-control"] == "private, no-store"


# --- forms, sessions, CSRF -------------------------------------------------------------

def test_session_cookie_is_secure_httponly_samesite(web, make_user):
    make_user("alice")
    web.login("alice")
    raw = next(c for c in web.set_cookies if c.startswith("podium_session="))
    lowered = raw.lower()
    assert "secure" in lowered and "httponly" in lowered and "samesite=lax" in lowered


@pytest.mark.parametrize("token", [None, "forged", "other-visitor"])
def test_forms_refuse_a_missing_or_foreign_csrf_token(web, server, make_user, token):
    make_user("alice")
    web.csrf("/login")  # the visitor's CSRF cookie
    if token == "other-visitor":
        other = WebClient(server)
        token = other.csrf("/login")
    data = {"username": "alice", "password": "correct horse battery"}
    if token:
        data["csrf_token"] = token
    answer = web.request("POST", "/login", data=data)
    assert answer.status_code == 403
    assert "podium_session" not in web.cookies


# Every form route takes a CSRF token; one-click unsubscribe (RFC 8058) is exempt on purpose:
# mail clients POST it with no page and no cookie (podium_app.web.mailpages).
CSRF_EXEMPT = {"/digest/unsubscribe/{token}"}
PATH_VALUES = {"username": "bob", "report_id": "1", "action": "resolve"}


def _form_routes() -> list[str]:
    """The POST routes of every router module in podium_app.web (a new module is found too)."""
    import importlib
    import pkgutil

    import podium_app.web

    paths = set()
    for info in pkgutil.iter_modules(podium_app.web.__path__):
        router = getattr(importlib.import_module(f"podium_app.web.{info.name}"), "router", None)
        for route in getattr(router, "routes", ()):
            if "POST" in getattr(route, "methods", ()) and not route.path.startswith("/api/"):
                paths.add(route.path)
    return sorted(paths - CSRF_EXEMPT)


def test_every_form_route_refuses_a_post_without_its_csrf_token(web, make_user, client):
    routes = _form_routes()
    assert len(routes) >= 12, routes  # the enumeration itself found the web's forms
    alice = make_user("alice", role="admin")
    bob = make_user("bob")
    web.login("alice")
    for path in routes:
        answer = web.request("POST", path.format(**PATH_VALUES), data={
            "status": "forged", "display_name": "forged", "mode": "social",
            "password": "correct horse battery", "email": "x@example.org"})
        assert answer.status_code == 403, (path, answer.status_code)
    assert web.get("/settings").status_code == 200  # /logout without a token kept the session
    followers = client.get(f"/api/v1/accounts/{bob.id}/followers", headers=alice.headers)
    assert followers.json() == []
    assert client.get("/api/v1/timelines/home", headers=alice.headers).json() == []


def test_compose_refuses_a_post_without_csrf_and_stores_nothing(web, make_user, client):
    alice = make_user("alice")
    web.login("alice")
    answer = web.request("POST", "/compose", data={"status": "forged post"})
    assert answer.status_code == 403
    timeline = client.get("/api/v1/timelines/home", headers=alice.headers).json()
    assert timeline == []


def test_sign_up_confirm_log_in_post_and_log_out(web, sink, drain):
    answer = web.submit("/signup", "/signup", {
        "username": "carol", "email": "carol@example.org", "password": "a long password",
        "agreement": "on"})
    assert answer.status_code == 200 and "carol@example.org" in answer.text
    refused = web.submit("/login", "/login", {"username": "carol",
                                              "password": "a long password"})
    assert refused.status_code == 403 and "Confirm your email" in refused.text
    drain()  # mail leaves through the queue
    link = re.search(r"https://\S+/confirm\?token=\S+", sink.wait_for("carol@example.org")
                     .get_body(("plain",)).get_content()).group(0)
    confirmed = web.get(urlparse(link).path + "?" + urlparse(link).query)
    assert confirmed.status_code == 200 and "Email confirmed" in confirmed.text
    web.login("carol", "a long password")
    done = web.submit("/home", "/compose", {"status": "my first post", "next": "/home"})
    assert done.status_code == 303
    assert "my first post" in web.get("/home").text
    assert "my first post" in web.get("/@carol").text
    out = web.submit("/home", "/logout", {})
    assert out.status_code == 303 and "podium_session" not in web.cookies
    assert web.get("/home").status_code == 303


def test_sign_up_by_approval_shows_the_waitlist_position(web, server, configure, make_user):
    configure(registration_mode="approval")
    for number, name in enumerate(("dan", "eve"), start=1):
        visitor = WebClient(server)
        answer = visitor.submit("/signup", "/signup", {
            "username": name, "email": f"{name}@example.org", "password": "a long password",
            "agreement": "on"})
        assert answer.status_code == 200
        assert f"position {number}" in answer.text


def test_a_form_with_a_nul_character_is_refused_as_bad_text_not_as_expired(web, make_user):
    """A valid token with a NUL in a field: 422 naming the text, never the 'form has
    expired' page, and the settings are left as they were."""
    make_user("alice")
    web.login("alice")
    answer = web.submit("/settings", "/settings", {"display_name": "Al\x00ice"})
    assert answer.status_code == 422, answer.text
    assert "NUL" in answer.text and "expired" not in answer.text
    assert "Al\x00ice" not in web.get("/settings").text


def test_sign_up_errors_are_shown_in_the_form(web, make_user):
    make_user("alice")
    answer = web.submit("/signup", "/signup", {
        "username": "alice", "email": "a2@example.org", "password": "a long password",
        "agreement": "on"})
    assert answer.status_code == 422 and "already taken" in answer.text
    assert 'value="a2@example.org"' in answer.text


def test_closed_registrations_refuse_sign_up(web, configure):
    configure(registration_mode="closed")
    answer = web.submit("/login", "/signup", {
        "username": "zed", "email": "zed@example.org", "password": "a long password",
        "agreement": "on"})
    assert answer.status_code == 403


def test_wrong_password_is_refused(web, make_user):
    make_user("alice")
    answer = web.submit("/login", "/login", {"username": "alice", "password": "nope nope"})
    assert answer.status_code == 401 and "podium_session" not in web.cookies


def test_login_never_redirects_off_site(web, make_user):
    make_user("alice")
    token = web.csrf("/login")
    answer = web.request("POST", "/login", data={
        "csrf_token": token, "username": "alice", "password": "correct horse battery",
        "next": "//evil.example/"})
    assert answer.headers["location"] == "/home"


def test_password_reset_by_mail_ends_the_old_session(web, web2, make_user, sink, drain):
    make_user("alice")
    web2.login("alice")
    answer = web.submit("/password/reset", "/password/reset", {"email": "alice@example.org"})
    assert answer.status_code == 200
    drain()
    link = re.search(r"https://\S+/password/edit\?token=(\S+)",
                     sink.wait_for("alice@example.org").get_body(("plain",)).get_content())
    token = link.group(1)
    done = web.submit(f"/password/edit?token={token}", "/password/edit",
                      {"token": token, "password": "a brand new one"})
    assert done.status_code == 303
    web.login("alice", "a brand new one")
    assert web2.get("/home").status_code == 303  # the old session is gone


def test_the_apis_reset_mail_link_opens_the_web_form(web, client, sink, drain, make_user):
    make_user("alice")
    client.post("/api/v1/podium/password/reset", json={"email": "alice@example.org"})
    drain()
    link = urlparse(re.search(r"https://\S+reset_password_token=\S+",
                              sink.wait_for("alice@example.org").get_body(("plain",)).get_content()).group(0))
    token = parse_qs(link.query)["reset_password_token"][0]
    form = web.get(f"{link.path}?{link.query}")
    assert form.status_code == 200 and f'value="{token}"' in form.text
    done = web.request("POST", "/password/edit", data={
        "csrf_token": CSRF_RE.search(form.text).group(1), "token": token,
        "password": "another good one"})
    assert done.status_code == 303
    web.login("alice", "another good one")


def test_settings_change_profile_and_language(web, make_user):
    make_user("alice")
    web.login("alice")
    answer = web.submit("/settings", "/settings", {"display_name": "Alice A.",
                                                   "note": "Hi", "locale": "fr"})
    assert answer.status_code == 303
    page = web.get("/settings")
    assert 'lang="fr"' in page.text and "Paramètres" in page.text
    assert "Alice A." in web.get("/@alice").text


def test_follow_from_the_profile_puts_posts_on_home(web, make_user, post, drain):
    alice = make_user("alice", publisher=True)
    make_user("bob")
    web.login("bob")
    answer = web.submit("/@alice", "/@alice/follow", {})
    assert answer.status_code == 303
    post(alice, "news for followers")
    drain()
    assert "news for followers" in web.get("/home").text
    notes = WebClient(web.http.base_url)
    notes.login("alice")
    assert "followed you" in notes.get("/notifications").text


def test_desk_mode_refuses_a_followers_post(web, configure, make_user):
    configure(mode="desk")
    make_user("bob")
    web.login("bob")
    answer = web.submit("/home", "/compose", {"status": "may I?"})
    assert answer.status_code == 403 and "desk mode" in answer.text


def test_user_text_is_escaped(web, make_user, post):
    alice = make_user("alice")
    st = post(alice, '<script>alert(1)</script> <img src=x onerror=alert(2)> #ok')
    page = web.get(status_path(st)).text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page
    assert 'href="https://podium.test/tags/ok"' in page


def test_post_page_shows_the_thread(web, make_user, post):
    alice = make_user("alice")
    bob = make_user("bob")
    root = post(alice, "the question")
    reply = post(bob, "@alice the answer", in_reply_to_id=root["id"])
    post(alice, "@bob thanks", in_reply_to_id=reply["id"])
    page = web.get(status_path(reply)).text.split("<main", 1)[1]
    assert page.index("the question") < page.index("the answer") < page.index("thanks")


def test_moderation_pages_are_for_staff_only(web, web2, make_user, client):
    make_user("mod", role="moderator")
    bob = make_user("bob")
    reporter = make_user("rita")
    client.post("/api/v1/reports", headers=reporter.headers,
                json={"account_id": bob.id, "comment": "spam links"})
    web.login("bob")
    assert web.get("/moderation").status_code == 403
    web2.login("mod")
    page = web2.get("/moderation")
    assert page.status_code == 200 and "spam links" in page.text and "Audit log" in page.text
    action = re.search(r'action="(/moderation/reports/\d+/suspend)"', page.text).group(1)
    assert web.submit("/home", action, {}).status_code == 403  # a member cannot act
    assert web2.submit("/moderation", action, {}).status_code == 303
    after = web2.get("/moderation").text
    assert "spam links" not in after  # the report is closed
    assert "suspend" in after and "bob" in after  # and audited
    assert web.get("/@bob").status_code == 404


# --- sharing, oEmbed, feeds ------------------------------------------------------------

def test_post_page_has_share_links_and_open_graph(web, make_user, post):
    alice = make_user("alice")
    st = post(alice, "Share me widely")
    page = Meta(web.get(status_path(st)).text)
    url = st["url"]
    assert page.meta["og:url"] == url and page.meta["og:description"] == "Share me widely"
    assert page.meta["og:title"].startswith("alice") and page.meta["og:type"] == "article"
    assert page.meta["twitter:card"] == "summary"
    shares = {a["data-share"]: a["href"] for a in page.anchors if "data-share" in a}
    assert set(shares) == {"x", "facebook", "telegram", "whatsapp", "email"}
    for name, href in shares.items():
        query = parse_qs(urlparse(href).query)
        carried = " ".join(v for values in query.values() for v in values)
        assert url in carried, name
    assert urlparse(shares["x"]).hostname == "x.com"
    assert urlparse(shares["telegram"]).hostname == "t.me"
    assert shares["email"].startswith("mailto:")
    oembed = page.links["alternate application/json+oembed"]
    assert parse_qs(urlparse(oembed).query)["url"] == [url]


def test_a_post_with_a_picture_previews_it_in_open_graph_and_twitter_cards(
        web, client, make_user, post, media_app):  # noqa: F811
    alice = make_user("alice")
    media = upload(client, alice, png((320, 200)), "image/png", description="A blue card")
    assert media.status_code == 200, media.text
    st = post(alice, "With a picture", media_ids=[media.json()["id"]])
    page = Meta(web.get(status_path(st)).text)
    assert page.meta["og:image"] == media.json()["preview_url"]
    assert page.meta["og:image:alt"] == "A blue card"
    assert page.meta["twitter:card"] == "summary_large_image"
    assert page.meta["twitter:image"] == media.json()["preview_url"]


def test_oembed_answers_for_a_public_post_only(web, make_user, post):
    alice = make_user("alice")
    st = post(alice, "embed <me>")
    answer = web.get("/api/oembed?url=" + quote(st["url"], safe=""))
    assert answer.status_code == 200
    data = answer.json()
    assert data["version"] == "1.0" and data["type"] == "rich"
    assert data["author_url"].endswith("/@alice") and "embed &lt;me&gt;" in data["html"]
    assert "<iframe" not in data["html"] and "<script" not in data["html"]
    private = post(alice, "followers only", visibility="private")
    assert web.get("/api/oembed?url=" + quote(private["url"], safe="")).status_code == 404
    assert web.get("/api/oembed?url=" + quote("https://evil.example/@alice/1",
                                              safe="")).status_code == 404


@pytest.mark.parametrize("path", ["/@alice.atom", "/tags/news.atom"])
def test_feeds_are_valid_atom(web, make_user, post, path):
    alice = make_user("alice")
    post(alice, "first #news")
    post(alice, "second #news & more")
    post(alice, "hidden #news", visibility="private")
    answer = web.get(path)
    assert answer.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(answer.content)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{name}").text
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        for name in ("id", "title", "updated", "published", "content"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        assert entry.find(f"{ATOM}author/{ATOM}name").text == "alice"
        assert entry.find(f"{ATOM}link").get("href").startswith("https://podium.test/@alice/")
    # Newest first; the content is the post's HTML, escaped once inside the XML.
    assert entries[0].find(f"{ATOM}content").text.startswith("<p>second ")
    assert "&amp; more" in entries[0].find(f"{ATOM}content").text
    assert "hidden" not in answer.text


def test_progressive_compose_answers_json(web, make_user):
    make_user("alice")
    web.login("alice")
    token = web.csrf("/home")
    answer = web.request("POST", "/compose", data={"csrf_token": token, "status": "no reload"},
                         headers={"Accept": "application/json"})
    assert answer.status_code == 200
    assert json.loads(answer.text)["status"]["content"] == "<p>no reload</p>"
