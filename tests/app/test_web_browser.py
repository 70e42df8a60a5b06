"""The web front in a real browser: Debian's chromium, headless, driven by Playwright.

The journey of issue 4: sign up, confirm from the mail sink, log in and post (without a
reload), a second user follows and sees the post at home, share links and Open Graph tags,
Arabic right-to-left; plus keyboard access to the compose form and no sideways scrolling
on a phone. Screenshots of each page: .podium/test-reports/web-screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest

from kit.browser import ARGS, CHROMIUM

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (the app tier installs it: ./podium test "
                "--fast)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright

SHOTS = Path(__file__).resolve().parents[2] / ".podium" / "test-reports" / "web-screenshots"


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return SHOTS


@pytest.fixture
def browser(clean, shots) -> Iterator[Browser]:
    """A fresh chromium per test, started after the tables are wiped: Playwright's sync API
    keeps an event loop running in this thread, so the harness's asyncio helpers run in
    another thread meanwhile (in_thread)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


def in_thread(function: Callable, *args, **kwargs):
    """Run a harness helper that calls asyncio.run() (make_user, drain) off this thread."""
    result: list = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function(*args, **kwargs))
        except BaseException as err:  # re-raised in the test's thread
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    return result[0]


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, server: str, username: str, password: str) -> None:
    page.goto(f"{server}/login")
    page.locator("#username").fill(username)  # by id: the labels follow the language
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"{server}/home")


def test_journey_sign_up_confirm_post_follow_share(browser, server, sink, drain, make_user):
    writer = browser.new_context(locale="en-GB")
    page = writer.new_page()
    page.goto(f"{server}/signup")
    shot(page, "01-signup")
    page.get_by_label("Username").fill("writer")
    page.get_by_label("Email").fill("writer@example.org")
    page.get_by_label("Password").fill("a long password")
    page.get_by_label("I accept the rules of this server.").check()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Almost there")).to_be_visible()
    shot(page, "02-signed-up")

    in_thread(drain)
    mail = sink.wait_for("writer@example.org").get_body(("plain",)).get_content()
    link = urlparse(re.search(r"https://\S+/confirm\?token=\S+", mail).group(0))
    page.goto(f"{server}{link.path}?{link.query}")
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()
    shot(page, "03-confirmed")

    log_in(page, server, "writer", "a long password")
    cookie = next(c for c in writer.cookies() if c["name"] == "podium_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    page.get_by_label("What do you want to say?").fill("Hello from the browser #launch")
    page.get_by_role("button", name="Publish").click()
    # Posted without a reload: the feed is replaced in place, the URL stays /home.
    expect(page.locator("[data-feed] article").first).to_contain_text("Hello from the browser")
    assert page.url == f"{server}/home"
    shot(page, "04-home-after-post")

    in_thread(make_user, "reader")
    reader = browser.new_context(locale="en-GB")
    other = reader.new_page()
    log_in(other, server, "reader", "correct horse battery")
    other.goto(f"{server}/@writer")
    other.get_by_role("button", name="Follow").click()
    expect(other.get_by_role("button", name="Unfollow")).to_be_visible()
    other.goto(f"{server}/home")
    expect(other.locator("[data-feed]")).to_contain_text("Hello from the browser")
    shot(other, "05-reader-home")

    other.locator("[data-feed] article a.when").first.click()
    other.wait_for_url(re.compile(r".*/@writer/\d+$"))
    post_path = urlparse(other.url).path
    canonical = f"https://podium.test{post_path}"
    assert other.locator('meta[property="og:url"]').get_attribute("content") == canonical
    assert other.locator('meta[property="og:description"]').get_attribute(
        "content") == "Hello from the browser #launch"
    assert other.locator('meta[name="twitter:card"]').get_attribute("content") == "summary"
    shares = other.locator("a[data-share]")
    assert shares.count() == 5
    for index in range(5):
        assert quote(canonical, safe="") in shares.nth(index).get_attribute("href")
    shot(other, "06-post-page")
    writer.close()
    reader.close()


def test_arabic_pages_are_right_to_left(browser, server, make_user, post):
    alice = in_thread(make_user, "alice", publisher=True)
    post(alice, "مرحبا بالجميع")
    context = browser.new_context(locale="ar", extra_http_headers={"Accept-Language": "ar"})
    page = context.new_page()
    page.goto(f"{server}/")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.locator("html").get_attribute("lang") == "ar"
    # Mirrored: the brand link sits at the right edge of the navigation.
    nav = page.locator(".top nav").bounding_box()
    brand = page.locator(".brand").bounding_box()
    assert brand["x"] + brand["width"] > nav["x"] + nav["width"] - 5
    shot(page, "07-arabic-landing")
    context.close()


def test_copy_link_puts_the_canonical_address_on_the_clipboard(browser, server, make_user,
                                                                post):
    alice = in_thread(make_user, "alice")
    status = post(alice, "Copy me")
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(f"{server}{urlparse(status['url']).path}")
    button = page.locator("button[data-copy]")
    expect(button).to_be_visible()  # shown by the script only where a clipboard exists
    button.click()
    assert page.evaluate("navigator.clipboard.readText()") == status["url"]
    context.close()


def test_keyboard_reaches_the_compose_form(browser, server, make_user):
    in_thread(make_user, "kbd")
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server, "kbd", "correct horse battery")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "status":
            break
    else:
        pytest.fail("20 Tab presses did not reach the compose text area")
    page.keyboard.type("typed with the keyboard")
    page.keyboard.press("Tab")  # visibility
    reached = []
    for _ in range(10):  # each file and its alt text, then Publish
        page.keyboard.press("Tab")
        reached.append(page.evaluate(
            "document.activeElement.id || document.activeElement.textContent.trim()"))
        if reached[-1] == "Publish":
            break
    assert reached == [f"{kind}_{i}" for i in range(4) for kind in ("media", "description")
                       ] + ["Publish"]
    page.keyboard.press("Enter")
    expect(page.locator("[data-feed] article").first).to_contain_text("typed with the keyboard")
    context.close()


def test_phone_viewport_has_no_sideways_scroll(browser, server, make_user, post):
    alice = in_thread(make_user, "alice", publisher=True)
    st = post(alice, "a long word: " + "x" * 120 + " https://example.org/" + "y" * 80)
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    wide = []
    for path in ("/", "/signup", "/login", "/public", urlparse(st["url"]).path):
        page.goto(f"{server}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            wide.append((path, overflow))
    shot(page, "08-phone-post")
    assert wide == [], f"pages scroll sideways (path, pixels): {wide}"
    context.close()


def test_pages_pass_axe_accessibility_checks(browser, server, make_user, post):
    """axe-core 4.x (bundled by axe-playwright-python) on the main pages, English and
    Arabic: WCAG 2.x A/AA rules including colour contrast, labels, landmarks, lang."""
    from axe_playwright_python.sync_playwright import Axe

    alice = in_thread(make_user, "alice", publisher=True)
    st = post(alice, "Accessible #news https://example.org/")
    axe = Axe()
    found = {}
    for locale in ("en", "ar"):
        context = browser.new_context(extra_http_headers={"Accept-Language": locale})
        page = context.new_page()
        paths = ["/", "/public", "/tags/news", "/@alice", urlparse(st["url"]).path,
                 "/signup", "/login", "/password/reset"]
        for path in paths:
            page.goto(f"{server}{path}")
            violations = axe.run(page).response["violations"]
            if violations:
                found[(locale, path)] = [(v["id"], v["impact"]) for v in violations]
        log_in(page, server, "alice", "correct horse battery")
        for path in ("/home", "/notifications", "/settings"):
            page.goto(f"{server}{path}")
            violations = axe.run(page).response["violations"]
            if violations:
                found[(locale, path)] = [(v["id"], v["impact"]) for v in violations]
        context.close()
    assert found == {}


def test_infinite_scroll_loads_older_posts_in_place(browser, server, make_user, post):
    alice = in_thread(make_user, "alice", publisher=True)
    for n in range(25):
        post(alice, f"numbered post {n}")
    context = browser.new_context(viewport={"width": 800, "height": 600})
    page = context.new_page()
    page.goto(f"{server}/public")
    assert page.locator("[data-feed] article").count() == 20
    page.locator("a[data-more]").scroll_into_view_if_needed()
    expect(page.locator("[data-feed] article")).to_have_count(25)
    expect(page.locator("[data-feed]")).to_contain_text("numbered post 0")
    assert page.url == f"{server}/public"
    context.close()


def test_a_post_with_an_image_shows_it_with_its_alt_text(browser, server, make_user,
                                                        configure, tmp_path):
    from test_media import jpeg

    configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server)
    in_thread(make_user, "photographer", publisher=True)
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    log_in(page, server, "photographer", "correct horse battery")
    page.get_by_label("What do you want to say?").fill("A picture from the browser")
    page.locator("#media_0").set_input_files(
        files=[{"name": "red.jpg", "mimeType": "image/jpeg", "buffer": jpeg((800, 600))}])
    page.get_by_label("Description for people who cannot see it (alt text)").first.fill(
        "A red square on white")
    page.get_by_role("button", name="Publish").click()
    image = page.locator('[data-feed] article img[alt="A red square on white"]').first
    expect(image).to_be_visible()
    assert page.url == f"{server}/home"  # posted without a reload, files included
    # The picture itself arrived (the app serves the local backend's files here).
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    shot(page, "08-post-with-image")

    page.get_by_label("What do you want to say?").fill("A broken picture")
    page.locator("#media_0").set_input_files(
        files=[{"name": "bad.jpg", "mimeType": "image/jpeg", "buffer": jpeg()[:300]}])
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".compose .status-msg")).to_have_text(
        "the file is truncated or corrupt")
    expect(page.locator("[data-feed]")).not_to_contain_text("A broken picture")
    shot(page, "09-refused-upload")

    # The public profile shows the same picture with its alt text to anyone.
    anonymous = browser.new_context().new_page()
    anonymous.goto(f"{server}/@photographer")
    expect(anonymous.locator('img[alt="A red square on white"]')).to_have_count(1)
    context.close()
