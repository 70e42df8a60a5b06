"""The home timeline's read path (docs/decisions/0210-home-read-cpu.md): statements built once
and bound per request, no transaction on read-only routes, nothing rendered is cached. So an
edit, a like, a deletion or a suspension shows in the very next home read, before any queue
job has run, and the paging shapes (bounds, trimmed feed, Redis down) keep their answers."""

import contextlib

from podium_app import rawsql
from sqlalchemy import event
from test_timelines import follow, ids_of

HOME = "/api/v1/timelines/home"


def entity(client, reader, status_id: str) -> dict:
    return next(s for s in client.get(HOME, headers=reader.headers).json()
                if s["id"] == status_id)


def test_an_edit_shows_in_the_next_home_read(client, make_user, post, drain):
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    status = post(author, "first words #before")
    drain()
    assert entity(client, reader, status["id"])["edited_at"] is None
    edited = client.put(f"/api/v1/statuses/{status['id']}", headers=author.headers,
                        json={"status": "second words #after"})
    assert edited.status_code == 200, edited.text
    shown = entity(client, reader, status["id"])
    assert "second words" in shown["content"] and shown["edited_at"] is not None
    assert [t["name"] for t in shown["tags"]] == ["after"]


def test_likes_reposts_and_counters_show_in_the_next_home_read(client, make_user, post, drain):
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    status = post(author, "like me")
    drain()
    assert client.post(f"/api/v1/statuses/{status['id']}/favourite",
                       headers=reader.headers).status_code == 200
    shown = entity(client, reader, status["id"])
    assert shown["favourited"] is True and shown["favourites_count"] == 1
    assert shown["account"]["statuses_count"] == 1
    # The author sees the count but not the reader's own flag.
    own = entity(client, author, status["id"])
    assert own["favourites_count"] == 1 and own["favourited"] is False


def test_a_deleted_post_and_its_reposts_leave_home_before_the_cleanup_job(client, make_user,
                                                                          post, drain):
    author, sharer, reader = make_user("author"), make_user("sharer"), make_user("reader")
    follow(client, reader, author)
    follow(client, reader, sharer)
    status = post(author, "soon gone")
    drain()
    assert client.post(f"/api/v1/statuses/{status['id']}/reblog",
                       headers=sharer.headers).status_code == 200
    drain()
    assert len(ids_of(client.get(HOME, headers=reader.headers))) == 2  # the post, the repost
    assert client.delete(f"/api/v1/statuses/{status['id']}",
                         headers=author.headers).status_code == 200
    # No drain: the feed entries are still in Redis, the rows are gone.
    answer = client.get(HOME, headers=reader.headers)
    assert ids_of(answer) == []
    assert "soon gone" not in answer.text


def test_suspension_hides_home_entries_at_once_and_unsuspension_restores_them(
        client, make_user, post, drain):
    troll, mod, reader = make_user("troll"), make_user("mod", role="moderator"), make_user("r")
    follow(client, reader, troll)
    status = post(troll, "visible for now")
    drain()
    assert ids_of(client.get(HOME, headers=reader.headers)) == [status["id"]]
    assert client.post(f"/api/v1/admin/accounts/{troll.id}/action", headers=mod.headers,
                       json={"type": "suspend"}).status_code == 200
    assert ids_of(client.get(HOME, headers=reader.headers)) == []
    client.post(f"/api/v1/admin/accounts/{troll.id}/unsuspend", headers=mod.headers)
    assert ids_of(client.get(HOME, headers=reader.headers)) == [status["id"]]


def test_pages_past_a_trimmed_feed_come_from_postgresql(client, make_user, post, drain,
                                                        configure):
    configure(home_feed_length=10)
    author, reader = make_user("author"), make_user("reader")
    client.get(HOME, headers=reader.headers)  # the feed exists: fan-out fills and trims it
    follow(client, reader, author)
    posted = [post(author, f"post {n}")["id"] for n in range(13)]
    drain()
    seen, max_id = [], None
    while True:
        page = client.get(HOME, headers=reader.headers,
                          params={"limit": 4, **({"max_id": max_id} if max_id else {})})
        got = ids_of(page)
        if not got:
            break
        seen += got
        max_id = got[-1]
    assert seen == posted[::-1]


@contextlib.contextmanager
def statements(app, monkeypatch=None):
    """(SQL text, inside a transaction?) for each statement the app sends while the block
    runs. Through SQLAlchemy, the second value is the DB-API connection's autocommit flag,
    inverted (BEGIN is sent lazily by SQLAlchemy's asyncpg adapter, before the first
    statement, unless it is set); straight through asyncpg (rawsql.Raw, the home timeline),
    asyncpg's own transaction state."""
    engine = app.state.db.writer.sync_engine
    seen: list[tuple[str, bool]] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, not conn.connection.dbapi_connection.autocommit))

    if monkeypatch is not None:
        fetch = rawsql.Raw._fetch

        async def recorded(self, statement, values):
            seen.append(("asyncpg: " + rawsql.compiled(statement).sql,
                         self.connection.is_in_transaction()))
            return await fetch(self, statement, values)

        monkeypatch.setattr(rawsql.Raw, "_fetch", recorded)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        if monkeypatch is not None:
            monkeypatch.undo()


def test_a_home_read_is_four_statements_without_a_transaction(app, client, make_user, post,
                                                              drain, monkeypatch):
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    post(author, "one")
    post(author, "two")
    drain()
    client.get(HOME, headers=reader.headers)  # the feed is built
    with statements(app, monkeypatch) as seen:
        assert len(ids_of(client.get(HOME, headers=reader.headers))) == 2
    sent = [s for s in seen if "instance_settings" not in s[0]]  # the 2 s settings refresh
    # token + account; the page's statuses; mentions/tags/media/likes/reposts; accounts:
    # all four straight through asyncpg (docs/decisions/0250-home-read-raw-asyncpg.md).
    assert len(sent) == 4, sent
    assert all(sql.startswith("asyncpg: ") for sql, _ in sent), sent
    assert not any(in_transaction for _, in_transaction in sent)
    # A write route still runs in a transaction.
    with statements(app) as seen:
        post(author, "three")
    assert seen and all(in_transaction for _, in_transaction in seen)


def test_ordinary_home_reads_are_answered_below_fastapi_and_the_rest_by_fastapi(
        client, make_user, post, drain, monkeypatch):
    """podium_app/homefast.py answers a GET with a good token and parameters FastAPI would
    accept; everything else falls through to the route and gets FastAPI's answer."""
    from podium_app import homefast

    author, reader = make_user("author"), make_user("reader")
    no_read = make_user("writer", scopes="write")
    follow(client, reader, author)
    status = post(author, "fast")
    drain()
    served: list[bool] = []
    answer = homefast.HomeFastPath._answer

    async def recorded(self, scope):
        response = await answer(self, scope)
        served.append(response is not None)
        return response

    monkeypatch.setattr(homefast.HomeFastPath, "_answer", recorded)

    def read(params=None, headers=None):
        served.clear()
        got = client.get(HOME, params=params or {},
                         headers=reader.headers if headers is None else headers)
        return got, served[0] if served else None

    got, fast = read({"limit": "5", "since_id": "1"})
    assert fast is True and got.status_code == 200 and ids_of(got) == [status["id"]]
    assert got.headers["content-type"] == "application/json"
    assert 'rel="next"' in got.headers["link"]
    for params, headers, code in [
        ({"limit": "0"}, None, 422),
        ({"limit": "81"}, None, 422),
        ({"limit": "ten"}, None, 422),
        ({"max_id": "1" * 41}, None, 422),
        ({"max_id": "a\x00b"}, None, 422),
        ({}, {"Authorization": "Bearer not-a-token"}, 401),
        ({}, {}, 401),
        ({}, {"Authorization": "Basic abc"}, 401),
        ({}, no_read.headers, 403),
    ]:
        got, fast = read(params, headers)
        assert (fast, got.status_code) == (False, code), (params, headers, got.text)
        assert "error" in got.json()
    # Metrics label the fast answers with the route, as for a routed request.
    text = client.get("/metrics").text
    assert 'route="/api/v1/timelines/home",status="200"' in text
