"""End to end through one edge, in front of HAProxy and the real app (roles/app): media and
anonymous pages come from the cache on the second request, personal requests never do (even
where the app itself marks the page public), stale copies cover every app host down, one app
host down changes nothing for clients and it rejoins after a restart, rate limits answer 429.

Anonymous pages are the app's tag pages, `/tags/<random>`: public, `max-age=30` (see
docs/decisions/0072-web-caching-feeds-oembed.md), and a URL no cache has seen yet.
App hosts are taken down by stopping their web unit; HAProxy's own view (its runtime API on
the proxy host) says when its /readyz check has marked them down or up. Every stopped unit is
started again in a ``finally``, and the edge answering again is awaited before the next test.
Requests: from the controller to the edge's and the proxy's lab addresses only, bounded.
"""

from __future__ import annotations

import hashlib
import http.client
import secrets
import subprocess
import time
from collections.abc import Callable

import pytest
from labwait import wait_until

from kit import edgehttp, labapi, loadgen, ssh
from kit.stack import role_ports

APP_WEB_UNIT = "podium-app-web"
# Generous: a health check is 2 s x 2 (roles/proxy), but on a loaded 2-core lab a check, a
# unit stop or an app start can take tens of seconds.
SETTLE = 180


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
def lb(stack):
    """The proxy host's address and its frontend port (what the edge proxies to)."""
    proxies = _hosts(stack, "proxy")
    if not proxies or not _hosts(stack, "app"):
        pytest.skip("the stack has no proxy host or no app host behind the edge")
    return str(proxies[0].address), next(p["port"] for p in role_ports()["proxy"]
                                          if p["proto"] == "tcp")


@pytest.fixture(scope="module")
def two_apps(stack, lb):
    apps = _hosts(stack, "app")
    if len(apps) < 2:
        pytest.skip("stopping one app host needs two behind the proxy")
    return apps


def _page(stack, edge, tls, path, headers=None):
    return edgehttp.request(edge, stack.domain, path, tls, headers=headers, timeout=30)


def _tag() -> str:
    """An anonymous, cacheable page no cache holds yet."""
    return f"/tags/edge{secrets.token_hex(6)}"


def _until(check: Callable[[], object], what: str, timeout: float = SETTLE,
           every: float = 1.0):
    """Poll ``check`` until it returns something truthy (returned); fail naming ``what``."""
    return wait_until(what, check, timeout, every)


def _servers(stack, paths, lb) -> dict[str, dict[str, str]]:
    """HAProxy's `show stat` for the app backend's servers: name -> columns (status is UP,
    DOWN, "UP 1/2" while failing checks, "DOWN 1/2" while passing them; stot is the count
    of sessions the server has taken)."""
    out = labapi.haproxy(stack, paths, lb[0], "show stat")
    lines = [li for li in out.splitlines() if li.strip()]
    columns = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(columns, li.split(","), strict=False)) for li in lines[1:]]
    return {r["svname"]: r for r in rows
            if r["pxname"] == labapi.HAPROXY_BACKEND and r["svname"] not in ("FRONTEND",
                                                                              "BACKEND")}


def _status(stack, paths, lb, host) -> str:
    return _servers(stack, paths, lb)[host.name]["status"]


def _unit(stack, paths, host, action: str) -> None:
    # Twice if needed: systemd in the lab guests sometimes fails to spawn a start once.
    command = f"sudo systemctl {action} {APP_WEB_UNIT}"
    result = ssh.run(paths, stack.admin.user, str(host.address),
                     f"{command} || (sleep 2; {command})", timeout=SETTLE)
    assert result.returncode == 0, f"{command} on {host.name}: {result.stderr}"


def _restore(stack, paths, edge, tls, lb, hosts) -> None:
    """Start the web unit on ``hosts`` and wait until HAProxy has them all UP again and the
    edge answers an uncached page (nginx may hold the proxy as failed for a few seconds)."""
    for host in hosts:
        _unit(stack, paths, host, "start")
    for host in hosts:
        _until(lambda h=host: _status(stack, paths, lb, h) == "UP",
               f"HAProxy marks {host.name} UP after its restart")
    _until(lambda: _page(stack, edge, tls, _tag()).status == 200,
           "the edge answers an uncached page again")


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
    result = subprocess.run(["ssh", *ssh.base_args(paths), f"{stack.admin.user}@{app}", command],
                            input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return path


def test_media_file_second_request_is_a_cache_hit(stack, paths, edge, tls):
    if not _hosts(stack, "media") or not _hosts(stack, "app"):
        pytest.skip("the stack has no media origin or no app host to write to it")
    body = secrets.token_bytes(50_000)
    path = _origin_put(stack, paths, body)
    first = edgehttp.request(edge, f"media.{stack.domain}", path, tls)
    second = edgehttp.request(edge, f"media.{stack.domain}", path, tls)
    assert (first.status, first.headers["x-cache-status"]) == (200, "MISS")
    assert (second.status, second.headers["x-cache-status"]) == (200, "HIT")
    assert second.body == body
    assert "immutable" in second.headers["cache-control"]


def test_anonymous_page_second_request_is_a_cache_hit(stack, edge, tls, lb):
    path = _tag()
    first = _page(stack, edge, tls, path)
    second = _page(stack, edge, tls, path)
    assert (first.status, first.headers["x-cache-status"]) == (200, "MISS")
    assert (second.status, second.headers["x-cache-status"]) == (200, "HIT")
    assert second.body == first.body
    assert second.headers["cache-control"].startswith("public")


def _from_app(stack, lb, path, headers) -> http.client.HTTPResponse:
    """The app's own answer, through HAProxy (bypassing the edge)."""
    conn = http.client.HTTPConnection(*lb, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": stack.domain, **headers})
        answer = conn.getresponse()
        answer.read()
        return answer
    finally:
        conn.close()


@pytest.mark.parametrize(("credentials", "app_says_public"), [
    ({"Authorization": "Bearer not-a-real-token"}, True),
    ({"Cookie": "theme=dark; session=not-a-real-session"}, True),
    ({"Cookie": "podium_session=not-a-real-session"}, False),
], ids=["bearer", "other-session-cookie", "app-session-cookie"])
def test_personal_request_is_never_cached(stack, edge, tls, lb, credentials, app_says_public):
    """Even where the app marks the answer public (its pages ignore a bearer token and any
    cookie but its own): the edge's credentials rule is a second lock on the door."""
    path = _tag()
    app_cache_control = _from_app(stack, lb, path, credentials).getheader("Cache-Control", "")
    assert app_cache_control.startswith("public") is app_says_public, app_cache_control
    for _ in range(2):
        answer = _page(stack, edge, tls, path, credentials)
        assert answer.status == 200
        assert answer.headers["x-cache-status"] == "BYPASS"
        assert answer.headers["cache-control"] == "private, no-store"
    # Nothing was stored: the first anonymous request for the same page is a miss.
    assert _page(stack, edge, tls, path).headers["x-cache-status"] == "MISS"


def test_cookie_that_is_not_a_session_keeps_the_page_cacheable(stack, edge, tls, lb):
    path = _tag()
    assert _page(stack, edge, tls, path, {"Cookie": "theme=dark"}).headers[
        "x-cache-status"] == "MISS"
    assert _page(stack, edge, tls, path, {"Cookie": "theme=dark"}).headers[
        "x-cache-status"] == "HIT"


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_pages_are_compressed(stack, edge, tls, lb, encoding):
    plain = _page(stack, edge, tls, "/api/v1/instance")
    answer = _page(stack, edge, tls, "/api/v1/instance", {"Accept-Encoding": encoding})
    assert answer.status == 200
    assert answer.headers.get("content-encoding") == encoding
    assert len(answer.body) < len(plain.body)


def test_app_answers_through_edge_and_proxy(stack, edge, tls, lb):
    answer = _page(stack, edge, tls, "/api/v1/instance")
    assert answer.status == 200
    assert b'"uri"' in answer.body or b'"domain"' in answer.body
    # The app sends no public Cache-Control here: the edge must not store it.
    assert _page(stack, edge, tls, "/api/v1/instance").headers["x-cache-status"] != "HIT"


def test_stopping_one_app_host_keeps_requests_succeeding(stack, paths, edge, tls, lb,
                                                         two_apps):
    """A client loop of uncached pages through the edge while one app host stops: HAProxy's
    /readyz check marks it down, no client sees an error, only the survivor takes requests;
    after a restart it is UP again and takes requests again."""
    victim, survivor = two_apps[0], two_apps[1]
    load = loadgen.Load(edge, 443, stack.domain, loadgen.counted(f"{_tag()}-{{n}}"),
                        clients=1, pause=0.2, tls=tls, timeout=30)  # under the 20 r/s limit
    try:
        with load:
            _until(lambda: load.result.ok >= 5, "the client loop gets its first answers")
            _unit(stack, paths, victim, "stop")
            _until(lambda: _status(stack, paths, lb, victim) == "DOWN",
                   f"HAProxy marks {victim.name} DOWN")
            before = _servers(stack, paths, lb)
            answered = load.result.ok
            _until(lambda: load.result.ok >= answered + 20,
                   "20 more answers with the victim out of the pool")
            after = _servers(stack, paths, lb)
        assert load.result.failed == 0, load.result.summary()
        assert after[victim.name]["stot"] == before[victim.name]["stot"]
        assert int(after[survivor.name]["stot"]) >= int(before[survivor.name]["stot"]) + 20

        _unit(stack, paths, victim, "start")
        _until(lambda: _status(stack, paths, lb, victim) == "UP",
               f"HAProxy marks {victim.name} UP after its restart")
        rejoined = _servers(stack, paths, lb)[victim.name]["stot"]
        _until(lambda: (_page(stack, edge, tls, _tag()).status == 200
                        and _servers(stack, paths, lb)[victim.name]["stot"] != rejoined),
               f"{victim.name} takes requests again", every=0.5)
    finally:
        _restore(stack, paths, edge, tls, lb, [victim])


def test_stale_copy_is_served_while_every_app_host_is_down(stack, paths, edge, tls, lb):
    """A cached page past its max-age is still answered, from the cache, while HAProxy has
    no app host left and an uncached page fails."""
    apps = _hosts(stack, "app")
    path = _tag()
    first = _page(stack, edge, tls, path)
    stored = time.monotonic()
    assert (first.status, first.headers["x-cache-status"]) == (200, "MISS")
    max_age = int(first.headers["cache-control"].split("max-age=")[1].split(",")[0])
    try:
        for host in apps:
            _unit(stack, paths, host, "stop")
        for host in apps:
            _until(lambda h=host: _status(stack, paths, lb, h) == "DOWN",
                   f"HAProxy marks {host.name} DOWN")
        assert _page(stack, edge, tls, _tag()).status >= 500
        time.sleep(max(0.0, stored + max_age + 2 - time.monotonic()))  # the copy expires
        answer = _page(stack, edge, tls, path)
        assert answer.status == 200
        assert answer.headers["x-cache-status"] in ("STALE", "UPDATING")
        assert answer.body == first.body
    finally:
        _restore(stack, paths, edge, tls, lb, apps)


def test_rate_limit_answers_429_beyond_the_burst(stack, edge, tls, lb):
    path = "/healthz"
    statuses = [_page(stack, edge, tls, path).status for _ in range(100)]
    time.sleep(3)  # let the bucket drain (20 r/s) before other tests
    assert 429 in statuses
    assert statuses[0] == 200
