"""Deleted media are purged from the edges through the queue (docs/decisions/0180-edge-purge.md):
one purge_edge job per edge, retried while an edge is away, never blocking the deletion or
the other edges. The edges are stand-ins here (a small HTTP server answering what the
edge's purge listener answers: the origin's 404); tests/lab/test_media_edge.py runs the
same path against real edges."""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from podium_app.settings import Settings
from pydantic import ValidationError
from test_media import jpeg, upload

from kit.appservices import free_port


class StandInEdge:
    """Records (time, path) of each purge GET and answers `status` (404: deleted at the
    origin). start() may be called late: the edge is down until then."""

    def __init__(self, status: int = 404) -> None:
        self.port = free_port()
        self.status = status
        self.purged: list[tuple[float, str]] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                edge.purged.append((time.monotonic(), self.path.lstrip("/")))
                self.send_response(edge.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def names(self) -> set[str]:
        return {path for _, path in self.purged}


@pytest.fixture
def edges():
    made: list[StandInEdge] = []

    def make(status: int = 404, up: bool = True) -> StandInEdge:
        edge = StandInEdge(status)
        if up:
            edge.start()
        made.append(edge)
        return edge

    yield make
    for edge in made:
        edge.stop()


@pytest.fixture
def media_post(client, make_user, post, configure, server, tmp_path):
    """post_with_media(*edges) -> (author, status, file names): an image post, stored in a
    temporary folder, with the app set to purge the given edges."""

    def make(*edges: StandInEdge, **settings):
        configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server,
                  edge_purge_urls=",".join(e.url for e in edges), **settings)
        author = make_user(f"p{time.monotonic_ns() % 10**8}")
        media = upload(client, author, jpeg(color=tuple(secrets.token_bytes(3))),
                       "image/jpeg").json()
        status = post(author, "picture", media_ids=[media["id"]])
        names = {media[k].removeprefix(server + "/") for k in ("url", "preview_url")}
        return author, status, names

    return make


def test_deleting_a_post_purges_its_files_at_every_edge(client, edges, media_post, drain):
    one, two = edges(), edges()
    author, status, names = media_post(one, two)
    assert len(names) == 2 and all(n.startswith("m/") for n in names)
    assert client.delete(f"/api/v1/statuses/{status['id']}",
                         headers=author.headers).status_code == 200
    drain()
    assert one.names() == names
    assert two.names() == names


def test_a_moderators_removal_deletes_the_files_and_purges_them(client, edges, media_post,
                                                               make_user, drain, tmp_path):
    edge = edges()
    _, status, names = media_post(edge)
    mod = make_user(f"m{time.monotonic_ns() % 10**8}", role="moderator")
    assert client.delete(f"/api/v1/podium/admin/statuses/{status['id']}",
                         headers=mod.headers).status_code == 200
    drain()
    assert not [n for n in names if (tmp_path / n).exists()], "the files are still stored"
    assert edge.names() == names


def test_deleting_an_account_purges_its_files(client, edges, media_post, make_user, drain):
    edge = edges()
    author, _, names = media_post(edge)
    admin = make_user(f"a{time.monotonic_ns() % 10**8}", role="admin")
    assert client.post(f"/api/v1/admin/accounts/{author.id}/action", headers=admin.headers,
                       json={"type": "suspend"}).status_code == 200
    assert client.delete(f"/api/v1/admin/accounts/{author.id}",
                         headers=admin.headers).status_code == 200
    drain()  # delete_account, then purge_media, then purge_edge
    assert edge.names() == names


def test_an_edge_that_is_down_gets_its_purge_when_it_is_back_and_blocks_nobody(
        client, edges, media_post, drain):
    up, down = edges(), edges(up=False)
    author, status, names = media_post(up, down)
    started = time.monotonic()
    assert client.delete(f"/api/v1/statuses/{status['id']}",
                         headers=author.headers).status_code == 200
    assert time.monotonic() - started < 5, "the deletion waited for the edges"
    # The edge comes back 2 s later; its job's first retry is 5 s after failing.
    back = threading.Timer(2.0, down.start)
    back.start()
    drain()  # burst mode waits for the deferred retry
    back.join()
    assert up.names() == names and down.names() == names
    assert max(t for t, _ in up.purged) < min(t for t, _ in down.purged) - 2, \
        "the edge that was up waited for the one that was down"


def test_a_refused_purge_is_retried_and_dropped_past_the_deadline(client, edges, media_post,
                                                                   drain):
    # 403: the edge does not list this host in edge_purge_clients. With no time left to
    # retry (the edge's own cache ceiling would cover the file), the job ends, it does not
    # loop.
    refusing = edges(status=403)
    author, status, names = media_post(refusing, edge_purge_retry_seconds=0)
    client.delete(f"/api/v1/statuses/{status['id']}", headers=author.headers)
    started = time.monotonic()
    drain()
    assert time.monotonic() - started < 5
    assert refusing.names() == {sorted(names)[0]}  # tried once, stopped at the first refusal


def test_identical_upload_still_in_use_is_not_purged(client, edges, make_user, post,
                                                      configure, server, tmp_path, drain):
    edge = edges()
    configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server,
              edge_purge_urls=edge.url)
    data = jpeg(color=tuple(secrets.token_bytes(3)))
    first, second = (make_user(f"{n}{time.monotonic_ns() % 10**8}") for n in "fs")
    statuses = [post(user, "same picture",
                     media_ids=[upload(client, user, data, "image/jpeg").json()["id"]])
                for user in (first, second)]
    client.delete(f"/api/v1/statuses/{statuses[0]['id']}", headers=first.headers)
    drain()
    assert edge.names() == set(), "a file another post still shows was purged"


@pytest.mark.parametrize("value", ["https://10.0.0.1:8082", "10.0.0.1:8082",
                                   "http://10.0.0.1", "http://10.0.0.1:8082/x"])
def test_purge_urls_must_be_http_address_and_port(value):
    with pytest.raises(ValidationError, match="PODIUM_EDGE_PURGE_URLS"):
        Settings(edge_purge_urls=value)


def test_purge_urls_are_split_and_trimmed():
    settings = Settings(edge_purge_urls=" http://10.0.0.1:8082/, http://10.0.0.2:8082 ,")
    assert settings.edge_purge_targets == ["http://10.0.0.1:8082", "http://10.0.0.2:8082"]

