"""An image post through the lab's edge: uploaded over HTTPS (the lab CA) through the edge
and the load balancer, processed by the app, stored on the media origin (WebDAV on the media
host), served at media.<domain> by the edge and cached there; deleting the post deletes the
files at the origin and, within seconds, the copy the edge cached (the purge).

Needs the stack named by PODIUM_STACK up with edge, proxy, app, media and acme hosts.
"""

from __future__ import annotations

import io
import json
import secrets
import time

import pytest
from PIL import Image
from test_platform import _app_cli, _call, _json, publisher, site  # noqa: F401  (fixtures)

from kit import edgehttp, ssh

# Seconds from a post's deletion until every edge answers 404 for its files: the worker
# polls the queue every 0.5 s and runs two short jobs (purge_media, then purge_edge).
PURGE_BOUND = 10


@pytest.fixture(scope="module")
def origin(stack, site):  # noqa: F811
    """The media origin's base URL (private network: read from the app host, which may)."""
    hosts = [h for h in stack.hosts if "media" in h.roles]
    if not hosts:
        pytest.skip("the stack has no media host")
    return f"http://{hosts[0].address}:8081"


def _origin_status(stack, paths, site, url: str) -> int:  # noqa: F811
    result = ssh.run(paths, stack.admin.user, site["app"],
                     f"curl -s -o /dev/null -w '%{{http_code}}' {url}", timeout=240)
    return int(result.stdout.strip() or 0)


def _jpeg() -> bytes:
    out = io.BytesIO()
    # A random colour per run: a new content address, never in any cache yet.
    Image.new("RGB", (1200, 800), tuple(secrets.token_bytes(3))).save(out, "JPEG")
    return out.getvalue()


def _upload(site, token: str, data: bytes) -> dict:  # noqa: F811
    boundary = secrets.token_hex(12)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n"
            f"lab picture\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    answer = edgehttp.request(site["edge"], site["domain"], "/api/v2/media", site["tls"],
                              method="POST", body=body, timeout=60,
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status == 200, (answer.status, answer.body[:300])
    return json.loads(answer.body)


def test_image_post_is_stored_at_the_origin_cached_at_the_edge_and_deleted(
        stack, paths, site, publisher, origin):  # noqa: F811
    media = _upload(site, publisher["token"], _jpeg())
    media_domain = f"media.{site['domain']}"
    assert media["url"].startswith(f"https://{media_domain}/m/")
    assert media["blurhash"] and media["meta"]["original"]["width"] == 1200
    path = media["url"].removeprefix(f"https://{media_domain}")
    preview = media["preview_url"].removeprefix(f"https://{media_domain}")
    assert _origin_status(stack, paths, site, origin + path) == 200
    post = _json(_call(site, "POST", "/api/v1/statuses", token=publisher["token"],
                       body={"status": f"picture {secrets.token_hex(3)}",
                             "media_ids": [media["id"]]}))
    first = edgehttp.request(site["edge"], media_domain, path, site["tls"])
    assert first.status == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.body[:3] == b"\xff\xd8\xff"
    second = edgehttp.request(site["edge"], media_domain, path, site["tls"])
    assert second.status == 200 and second.body == first.body
    assert second.headers["x-cache-status"] == "HIT", second.headers
    assert "immutable" in second.headers["cache-control"]

    assert _call(site, "DELETE", f"/api/v1/statuses/{post['id']}",
                 token=publisher["token"]).status == 200
    deleted = time.monotonic()
    for name in (path, preview):
        assert _origin_status(stack, paths, site, origin + name) == 404, name
    assert _call(site, "GET", f"/api/v1/statuses/{post['id']}").status == 404
    # The copy the edge cached (a HIT above) is purged by the worker (purge_media, then one
    # purge_edge job per edge: docs/decisions/0180-edge-purge.md): the same URL answers 404
    # within PURGE_BOUND seconds, not after edge_media_cache_valid (1 day).
    while True:
        answer = edgehttp.request(site["edge"], media_domain, path, site["tls"])
        if answer.status == 404:
            break
        assert answer.status == 200 and answer.body == first.body, answer.status
        assert time.monotonic() - deleted < PURGE_BOUND, \
            f"the edge still serves the deleted file {PURGE_BOUND} s after the deletion"
        time.sleep(0.2)
    print(f"edge answered 404 {time.monotonic() - deleted:.2f} s after the deletion")
    assert edgehttp.request(site["edge"], media_domain, path + "?again",
                            site["tls"]).status == 404
    assert edgehttp.request(site["edge"], media_domain, preview, site["tls"]).status == 404


# The app's max-age for anonymous pages (30 s, decision 0072), then one stale answer while the
# edge fetches the 404 that replaces the page (decision 0180), and the poll interval.
PAGE_BOUND = 30 + 5


def test_deleted_post_page_leaves_the_edge_within_its_max_age(site, publisher):  # noqa: F811
    post = _json(_call(site, "POST", "/api/v1/statuses", token=publisher["token"],
                       body={"status": f"Soon deleted {secrets.token_hex(4)}"}))
    path = f"/@{publisher['name']}/{post['id']}"
    assert _call(site, "GET", path).status == 200
    cached = _call(site, "GET", path)
    assert (cached.status, cached.headers["x-cache-status"]) == (200, "HIT")
    assert _call(site, "DELETE", f"/api/v1/statuses/{post['id']}",
                 token=publisher["token"]).status == 200
    deleted = time.monotonic()
    seen = []
    while True:
        answer = _call(site, "GET", path)
        seen.append((round(time.monotonic() - deleted, 1), answer.status,
                     answer.headers.get("x-cache-status")))
        if answer.status == 404:
            break
        assert time.monotonic() - deleted < PAGE_BOUND, \
            f"the deleted post's page is still served after {PAGE_BOUND} s: {seen}"
        time.sleep(1)
    print(f"post page answered 404 {seen[-1][0]} s after the deletion: {seen[-3:]}")
    # The 404 is what the edge holds now: it is not served the old page again.
    again = _call(site, "GET", path)
    assert (again.status, again.headers["x-cache-status"]) == (404, "HIT")
