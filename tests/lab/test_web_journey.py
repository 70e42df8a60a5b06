"""The web journey of issue 4 in a real browser, through the lab's edge over HTTPS.

Headless Chromium (Debian's, driven by Playwright: kit/browser.py) trusts the lab's ACME root
in its own certificate store and resolves the platform's names to the first edge only, so
every page, form and picture goes the way a visitor's does: edge (TLS, cache) -> load
balancer -> app, media from the origin through the edge. The journey: the publisher (made by
the operator's CLI on an app host) logs in and posts a picture with its alt text; a visitor
lands on the home page, signs up, confirms by the mail the platform's own mail server
delivered (read over IMAPS, tests/lab/labmail.py), logs in, follows the publisher and reads
the post at home and on its page. Screenshots: .podium/test-reports/lab-web-screenshots/.

Run against a stack: PODIUM_STACK=lab-web .venv/bin/pytest tests/lab/test_web_journey.py
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from labapp import APP_CLI
from labmail import mail_host, wait_in_mailbox

from kit import ssh
from kit.browser import ARGS, CHROMIUM, resolving, trusting_home

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = pytest.mark.usefixtures("signups_allowed")

SHOTS = Path(__file__).resolve().parents[2] / ".podium" / "test-reports" / "lab-web-screenshots"


@pytest.fixture(scope="module")
def site(stack, paths):
    edges = [h for h in stack.hosts if "edge" in h.roles]
    apps = [h for h in stack.hosts if "app" in h.roles]
    mail = mail_host(stack, paths)
    root = paths.state / "acme" / "root.pem"
    if not (edges and apps and mail and root.is_file()):
        pytest.skip("the stack lacks an edge, app, mail or acme host (the lab CA's root)")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return {"edge": str(edges[0].address), "app": str(apps[0].address), "mail": mail,
            "root": root, "domain": stack.domain, "base": f"https://{stack.domain}"}


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory) -> Browser:
    home = trusting_home(tmp_path_factory.mktemp("chromium-home"), site["root"])
    names = [site["domain"], f"media.{site['domain']}"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*ARGS, resolving(names, site["edge"])],
            env={**os.environ, "HOME": str(home)})
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def publisher(stack, paths, site) -> dict:
    """The operator's first step: the publisher's account, made on an app host."""
    name = f"pub{secrets.token_hex(3)}"
    result = ssh.run(paths, stack.admin.user, site["app"],
                     f"{APP_CLI} create-user {name} {name}@{site['domain']} "
                     "--role owner --publisher")
    assert result.returncode == 0, result.stderr
    password = re.search(r"password: (\S+)", result.stdout).group(1)
    return {"name": name, "password": password}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, site: dict, username: str, password: str) -> None:
    page.goto(f"{site['base']}/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"{site['base']}/home")


def picture() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 90, 200)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_the_landing_page_comes_over_https_with_the_lab_certificate(browser, site):
    page = browser.new_context(locale="en-GB").new_page()
    answer = page.goto(f"{site['base']}/")
    assert answer.status == 200
    # The browser verified the chain to the lab's root itself: no error was ignored.
    details = answer.security_details()
    assert details["protocol"] in ("TLS 1.3", "TLS 1.2")
    # Issued by the lab's ACME CA (pebble's certificates carry the name in SAN only).
    assert details["issuer"].startswith("Pebble Intermediate CA"), details
    assert answer.headers["cache-control"].startswith("public")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    shot(page, "01-landing")
    page.context.close()


def test_journey_post_sign_up_confirm_log_in_follow_read(browser, site, publisher):
    text = f"From the desk {secrets.token_hex(3)}"
    alt = f"A blue rectangle {secrets.token_hex(2)}"

    # The publisher posts a picture with its alt text (JavaScript path: no reload).
    desk = browser.new_context(locale="en-GB")
    page = desk.new_page()
    log_in(page, site, publisher["name"], publisher["password"])
    page.get_by_label("What do you want to say?").fill(text)
    page.locator("#media_0").set_input_files(
        files=[{"name": "blue.jpg", "mimeType": "image/jpeg", "buffer": picture()}])
    page.locator("#description_0").fill(alt)
    page.get_by_role("button", name="Publish").click()
    image = page.locator(f'[data-feed] article img[alt="{alt}"]').first
    expect(image).to_be_visible(timeout=30_000)
    src = image.get_attribute("src")
    assert urlsplit(src).hostname == f"media.{site['domain']}", src
    # The picture came from the media origin through the edge, over verified TLS.
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle(), timeout=30_000)
    shot(page, "02-publisher-posted")
    desk.close()

    # A visitor signs up with the lab operator's real mailbox (+detail per run).
    visitor = browser.new_context(locale="en-GB")
    page = visitor.new_page()
    page.goto(f"{site['base']}/")
    name = f"fan{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    page.goto(f"{site['base']}/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"ops+{name}@{site['domain']}")
    page.get_by_label("Password").fill(password)
    page.get_by_label("I accept the rules of this server.").check()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Almost there")).to_be_visible()
    shot(page, "03-signed-up")

    raw = wait_in_mailbox(site["mail"], "ops", name, timeout=180)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain",)).get_content()
    link = re.search(rf"https://{re.escape(site['domain'])}/confirm\?token=[\w.-]+", body)
    assert link, body[:2000]
    assert 'dir="ltr"' in message.get_body(("html",)).get_content()
    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()
    shot(page, "04-confirmed")

    log_in(page, site, name, password)
    page.goto(f"{site['base']}/@{publisher['name']}")
    page.get_by_role("button", name="Follow").click()
    expect(page.get_by_role("button", name="Unfollow")).to_be_visible()
    page.goto(f"{site['base']}/home")
    expect(page.locator("[data-feed]")).to_contain_text(text, timeout=30_000)
    expect(page.locator(f'[data-feed] img[alt="{alt}"]')).to_have_count(1)
    assert page.context.cookies()[0]["secure"]
    shot(page, "05-follower-home")

    page.locator("[data-feed] article a.when").first.click()
    page.wait_for_url(re.compile(rf".*/@{publisher['name']}/\w+$"))
    expect(page.locator("article.main")).to_contain_text(text)
    canonical = page.locator('meta[property="og:url"]').get_attribute("content")
    assert canonical == f"{site['base']}{urlsplit(page.url).path}"
    assert text in page.locator('meta[property="og:description"]').get_attribute("content")
    preview = page.locator('meta[property="og:image"]').get_attribute("content")
    assert urlsplit(preview).hostname == f"media.{site['domain']}", preview
    shares = page.locator("a[data-share]")
    expect(shares).to_have_count(5)
    for index in range(5):
        assert quote(canonical, safe="") in shares.nth(index).get_attribute("href")
    shot(page, "06-post-page")
    visitor.close()


def test_an_arabic_reader_gets_the_right_to_left_page_after_an_english_one(
        browser, site, publisher):
    """The edge keys its page cache on the reader's language: an English reader's cached
    profile page is never handed to an Arabic reader (and the other way round)."""
    pages = {}
    for locale in ("en", "ar", "en"):
        context = browser.new_context(locale=locale,
                                      extra_http_headers={"Accept-Language": locale})
        page = context.new_page()
        assert page.goto(f"{site['base']}/@{publisher['name']}").status == 200
        pages[locale] = (page.locator("html").get_attribute("lang"),
                         page.locator("html").get_attribute("dir"))
        if locale == "ar":
            assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
            shot(page, "08-arabic-profile")
        context.close()
    assert pages["ar"] == ("ar", "rtl")
    assert pages["en"][0] == "en" and pages["en"][1] != "rtl"


def test_anonymous_readers_get_the_new_post_from_the_edge(browser, site, publisher):
    """Public pages are cached at the edge for 30 s (stale-while-revalidate): the post the
    journey made shows on the publisher's profile within a minute, and the next reader gets
    the page from the edge's cache. Each reader is a fresh browser context: within max-age a
    browser answers a second visit from its own cache, which says nothing about the edge."""

    def read() -> tuple[object, str]:
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        answer = page.goto(f"{site['base']}/@{publisher['name']}")
        html = page.content()
        shot(page, "07-anonymous-profile")
        context.close()
        return answer, html

    deadline = time.monotonic() + 90
    while True:
        answer, html = read()
        assert answer.status == 200
        if "From the desk" in html:
            break
        assert time.monotonic() < deadline, "the profile never showed the new post"
        time.sleep(5)
    again, _ = read()
    assert again.headers.get("x-cache-status") in ("HIT", "STALE", "UPDATING"), again.headers
    assert again.headers["cache-control"].startswith("public")
