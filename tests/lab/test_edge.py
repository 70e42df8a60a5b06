"""End to end through one edge: media and anonymous pages come from the cache on the second
request, personal requests never do, stale copies cover a dead backend, one app host down
changes nothing for clients, rate limits answer 429.

Backends: where the app port is free the app hosts run the kit's stand-in (kit/standin.py:
pages marked Cache-Control public) and the stand-in tests run; where the real app
(roles/app) holds it, those skip and the real-app tests at the end run instead. The real
app marks nothing public yet, so "anonymous page is a HIT" is proven with the stand-in only.
Requests: from the controller to the edge's lab address only, bounded in number.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest

from kit import edgehttp, ssh, standin
from kit.stack import role_ports


def _hosts(stack, role):
    return [h for h in stack.hosts if role in h.roles]


@pytest.fixture(scope="module")
def edge(stack):
    edges = _hosts(stack, "edge")
    if not edges:
        pytest.skip("the stack has no edge host")
    return str(edges[0].address)


@pytest.fixture(scope="module")
def tls(stack, paths, edge):
    """Trust only the lab CA's root (exported by the acme role); without an acme host, the
    edge's own self-signed certificate."""
    root = paths.state / "acme" / "root.pem"
    if any("acme" in h.roles for h in stack.hosts):
        return edgehttp.context(root.read_text())
    result = ssh.run(paths, stack.admin.user, edge, "sudo cat /etc/ssl/podium-edge/fullchain.pem")
    assert result.returncode == 0, result.stderr
    return edgehttp.context(result.stdout)


@pytest.fixture(scope="module")
def standins(stack, paths):
    """Start the stand-in on every app host whose app port is free; stop them afterwards."""
    started = [str(h.address) for h in _hosts(stack, "app")
               if standin.start(stack, paths, str(h.address))]
    time.sleep(5)  # two passing health checks put the servers in the pool
    yield started
    for address in started:
        standin.stop(stack, paths, address)


@pytest.fixture(scope="module")
def with_standin(standins, stack):
    if len(standins) != len(_hosts(stack, "app")) or not standins:
        pytest.skip("the real app holds the app port: stand-in answers cannot be assumed")
    return standins


@pytest.fixture(scope="module")
def real_app(standins, stack):
    """App hosts where the real app (roles/app) holds the port: the stand-in was not started."""
    apps = _hosts(stack, "app")
    if standins or not apps:
        pytest.skip("the app hosts run the stand-in, not the real app")
    return apps


def _page(stack, edge, tls, path, headers=None):
    return edgehttp.request(edge, stack.domain, path, tls, headers=headers)


def _paced(stack, edge, tls, path_of, count):
    """``count`` requests at about 10 per second: under the edge's per-client rate limit
    (20 r/s), so only the backends can make one fail."""
    answers = []
    for _ in range(count):
        answers.append(_page(stack, edge, tls, path_of()))
        time.sleep(0.1)
    return answers


def _origin_put(stack, paths, body: bytes) -> str:
    """PUT a content-addressed file on the origin from an app host; returns its path."""
    digest = hashlib.sha256(body).hexdigest()
    path = f"/m/{digest[:2]}/{digest[2:4]}/{digest}.bin"
    media = str(_hosts(stack, "media")[0].address)
    port = role_ports()["media"][0]["port"]
    app = str(_hosts(stack, "app")[0].address)
    command = ("python3 -c 'import sys,urllib.request; r=urllib.request.Request(sys.argv[1], "
               "data=sys.stdin.buffer.read(), method=\"PUT\"); "
               "print(urllib.request.urlopen(r, timeout=10).status)' "
               f"http://{media}:{port}{path}")
    import subprocess

    result = subprocess.run(["ssh", *ssh.base_args(paths), f"{stack.admin.user}@{app}", command],
                            input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return path


def test_media_file_second_request_is_a_cache_hit(stack, paths, edge, tls):
    body = secrets.token_bytes(50_000)
    path = _origin_put(stack, paths, body)
    first = edgehttp.request(edge, f"media.{stack.domain}", path, tls)
    second = edgehttp.request(edge, f"media.{stack.domain}", path, tls)
    assert (first.status, first.headers["x-cache-status"]) == (200, "MISS")
    assert (second.status, second.headers["x-cache-status"]) == (200, "HIT")
    assert second.body == body
    assert "immutable" in second.headers["cache-control"]


def test_anonymous_page_second_request_is_a_cache_hit(stack, edge, tls, with_standin):
    path = f"/public/{secrets.token_hex(8)}"
    first = _page(stack, edge, tls, path)
    second = _page(stack, edge, tls, path)
    assert (first.status, first.headers["x-cache-status"]) == (200, "MISS")
    assert (second.status, second.headers["x-cache-status"]) == (200, "HIT")


@pytest.mark.parametrize("credentials", [
    {"Authorization": "Bearer not-a-real-token"},
    {"Cookie": "theme=dark; session=not-a-real-session"},
])
def test_personal_request_is_never_cached(stack, edge, tls, with_standin, credentials):
    """Even when the backend marks the answer public (the stand-in always does)."""
    path = f"/public/{secrets.token_hex(8)}"
    for _ in range(2):
        answer = _page(stack, edge, tls, path, credentials)
        assert answer.status == 200
        assert answer.headers["x-cache-status"] == "BYPASS"
        assert answer.headers["cache-control"] == "private, no-store"
    # Nothing was stored: the first anonymous request for the same page is a miss.
    assert _page(stack, edge, tls, path).headers["x-cache-status"] == "MISS"


def test_cookie_that_is_not_a_session_keeps_the_page_cacheable(stack, edge, tls, with_standin):
    path = f"/public/{secrets.token_hex(8)}"
    _page(stack, edge, tls, path, {"Cookie": "theme=dark"})
    assert _page(stack, edge, tls, path, {"Cookie": "theme=dark"}).headers[
        "x-cache-status"] == "HIT"


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_pages_are_compressed(stack, edge, tls, standins, encoding):
    """/api/v1/instance: JSON from the real app, or a 2 KiB page from the stand-in."""
    plain = _page(stack, edge, tls, "/api/v1/instance")
    answer = _page(stack, edge, tls, "/api/v1/instance", {"Accept-Encoding": encoding})
    assert answer.status == 200
    assert answer.headers.get("content-encoding") == encoding
    assert len(answer.body) < len(plain.body)


def test_stopping_one_app_host_keeps_requests_succeeding(stack, paths, edge, tls,
                                                         with_standin):
    victim, survivor = with_standin[0], with_standin[1]
    standin.stop(stack, paths, victim)
    try:
        answers = _paced(stack, edge, tls, lambda: f"/public/{secrets.token_hex(8)}", 30)
        assert [a.status for a in answers] == [200] * 30
        time.sleep(5)  # the health check (2 s x 2) has taken the stopped host out
        after = _paced(stack, edge, tls, lambda: f"/public/{secrets.token_hex(8)}", 10)
        survivor_name = next(h.name for h in stack.hosts if str(h.address) == survivor)
        assert {a.headers["x-standin-host"] for a in after} == {survivor_name}
    finally:
        standin.start(stack, paths, victim)
        time.sleep(5)


def test_stale_copy_is_served_while_every_backend_is_down(stack, paths, edge, tls,
                                                          with_standin):
    path = f"/public/{secrets.token_hex(8)}?ttl=1"
    assert _page(stack, edge, tls, path).headers["x-cache-status"] == "MISS"
    for address in with_standin:
        standin.stop(stack, paths, address)
    try:
        time.sleep(2)  # the copy is now expired
        answer = _page(stack, edge, tls, path)
        assert answer.status == 200
        assert answer.headers["x-cache-status"] in ("STALE", "UPDATING")
    finally:
        for address in with_standin:
            standin.start(stack, paths, address)
        time.sleep(5)


def test_rate_limit_answers_429_beyond_the_burst(stack, edge, tls, standins):
    path = "/healthz"
    statuses = [_page(stack, edge, tls, path).status for _ in range(100)]
    time.sleep(3)  # let the bucket drain (20 r/s) before other tests
    assert 429 in statuses
    assert statuses[0] == 200


# --- Against the real app (roles/app), when it is deployed --------------------------------
APP_WEB_UNIT = "podium-app-web"


def test_real_app_answers_through_edge_and_proxy(stack, edge, tls, real_app):
    answer = _page(stack, edge, tls, "/api/v1/instance")
    assert answer.status == 200
    assert b'"uri"' in answer.body or b'"domain"' in answer.body
    # The app sends no public Cache-Control here: the edge must not store it.
    assert _page(stack, edge, tls, "/api/v1/instance").headers["x-cache-status"] != "HIT"


def test_real_app_personal_request_bypasses_the_cache(stack, edge, tls, real_app):
    answer = _page(stack, edge, tls, "/api/v1/instance", {"Authorization": "Bearer nope"})
    assert answer.headers["x-cache-status"] == "BYPASS"
    assert answer.headers["cache-control"] == "private, no-store"


def test_stopping_the_app_on_one_host_keeps_requests_succeeding(stack, paths, edge, tls,
                                                                real_app):
    victim = str(real_app[0].address)
    stopped = ssh.run(paths, stack.admin.user, victim, f"sudo systemctl stop {APP_WEB_UNIT}")
    assert stopped.returncode == 0, stopped.stderr
    try:
        statuses = [a.status for a in _paced(stack, edge, tls, lambda: "/api/v1/instance", 30)]
        assert statuses == [200] * 30
        time.sleep(5)  # the health check has taken it out; still no errors
        statuses = [a.status for a in _paced(stack, edge, tls, lambda: "/api/v1/instance", 10)]
        assert statuses == [200] * 10
    finally:
        # Twice if needed: systemd in the lab guests sometimes fails to spawn a start once.
        ssh.run(paths, stack.admin.user, victim, f"sudo systemctl start {APP_WEB_UNIT} || "
                f"(sleep 1; sudo systemctl start {APP_WEB_UNIT})")
        time.sleep(5)
