"""The home timeline's read path (docs/decisions/0210-home-read-cpu.md): statements built once
and bound per request, no transaction on read-only routes, rendered entities cached only
under the versions PostgreSQL sets (0270-rendered-status-cache.md). So an edit, a like, a
deletion, a suspension or a media change shows in the very next home read, before any queue
job has run, and the paging shapes (bounds, trimmed feed, Redis down) keep their answers."""

import asyncio
import contextlib
import uuid

import pytest
from podium_app import instance_settings, metrics, rawsql, security
from podium_app.app import create_app
from podium_app.settings import Settings
from podium_app.tokencache import TokenCache
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import event
from test_accounts import PASSWORD, bearer
from test_digest import sql
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


@contextlib.contextmanager
def checkouts(app):
    """A list that gets one entry per connection checked out of the home read's pool while
    the block runs: each checkout costs one ping round trip (podium_app/db.py, ping)."""
    pool = app.state.db.read_only_engine(False).sync_engine.pool
    seen: list[int] = []

    def on_checkout(*_):
        seen.append(1)

    event.listen(pool, "checkout", on_checkout)
    try:
        yield seen
    finally:
        event.remove(pool, "checkout", on_checkout)


def home_statements(app, client, reader, monkeypatch, cold: bool = False, **params):
    """The statements (SQL text) and pool checkouts of one home read, and its answer; with
    cold=True, the token cache forgets the reader's token first. The instance settings'
    own refresh (every 2 s, its own statement and checkout) is held off for the read: on a
    loaded host it fell inside the measured read."""
    if cold:
        app.state.token_cache.clear()
    with statements(app, monkeypatch) as seen, checkouts(app) as pings:
        monkeypatch.setattr(instance_settings, "CACHE_SECONDS", 3600.0)
        answer = client.get(HOME, headers=reader.headers, params=params)
    assert answer.status_code == 200
    assert all(sql.startswith("asyncpg: ") for sql, _ in seen), seen
    assert not any(in_transaction for _, in_transaction in seen)
    return [sql for sql, _ in seen], len(pings), answer


def test_a_home_read_is_one_statement_and_one_ping_with_the_token_cached(
        app, client, make_user, post, drain, monkeypatch):
    """docs/decisions/0297-home-read-token-cache.md, on 0286's count: with the reader's
    token in the token cache, the page's statuses with their details (mentions, tags,
    media, the reader's likes and reposts) and authors, and the token's check, in one
    statement; with the cache cold, the token with its account first (today's two). A
    repost whose original is not on the page adds one statement; a mentioned account not
    otherwise on the page adds one. These counts are the budget: a change that adds a
    statement to the common read fails here."""
    author, reader, sharer = make_user("author"), make_user("reader"), make_user("sharer")
    stranger = make_user("stranger")
    follow(client, reader, author)
    post(author, "one")
    post(author, "two")
    drain()
    client.get(HOME, headers=reader.headers)  # the feed is built, the token cached
    sent, pings, answer = home_statements(app, client, reader, monkeypatch, cold=True)
    assert len(ids_of(answer)) == 2
    assert len(sent) == 2 and pings == 1, (pings, sent)
    assert "oauth_tokens" in sent[0] and "statuses" in sent[1] and "accounts" in sent[1]
    assert "oauth_tokens" not in sent[1]
    warm, pings, again = home_statements(app, client, reader, monkeypatch)
    assert len(warm) == 1 and pings == 1, (pings, warm)
    assert "oauth_tokens" in warm[0] and "statuses" in warm[0] and "accounts" in warm[0]
    assert again.content == answer.content and again.headers["link"] == answer.headers["link"]
    # An empty page (a client polling for newer posts) is one statement too.
    sent, pings, empty = home_statements(app, client, reader, monkeypatch,
                                         since_id=ids_of(answer)[0])
    assert empty.json() == [] and len(sent) == 1 and pings == 1, (pings, sent)
    # A repost of a post that is not on the page: its original is read with its details.
    unseen = post(stranger, "not followed")
    follow(client, reader, sharer)
    drain()
    assert client.post(f"/api/v1/statuses/{unseen['id']}/reblog",
                       headers=sharer.headers).status_code == 200
    drain()
    sent, pings, answer = home_statements(app, client, reader, monkeypatch)
    assert len(ids_of(answer)) == 3 and answer.json()[0]["reblog"]["id"] == unseen["id"]
    assert len(sent) == 2 and pings == 1, (pings, sent)
    sent, pings, _ = home_statements(app, client, reader, monkeypatch, cold=True)
    assert len(sent) == 3 and pings == 1, (pings, sent)
    # A mention of an account that neither wrote nor was reposted on the page.
    post(author, "hello @stranger")
    drain()
    sent, pings, answer = home_statements(app, client, reader, monkeypatch, limit=1)
    assert answer.json()[0]["mentions"][0]["username"] == "stranger"
    assert len(sent) == 2 and pings == 1, (pings, sent)
    sent, pings, _ = home_statements(app, client, reader, monkeypatch, cold=True, limit=1)
    assert len(sent) == 3 and pings == 1, (pings, sent)
    # A write route still runs in a transaction.
    with statements(app) as seen:
        post(author, "three")
    assert seen and all(in_transaction for _, in_transaction in seen)


def test_home_entities_equal_the_single_status_route(client, make_user, post, drain, configure,
                                                      server, tmp_path):
    """The home read's entities (statuses, details and authors in one statement) against
    GET /api/v1/statuses/:id (the ORM renderer, separate statements) for the same reader:
    reposts with the original on and off the page, mentions, tags, media, the reader's own
    likes and reposts."""
    from test_media import jpeg, upload

    configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server)
    author, sharer, reader = make_user("author"), make_user("sharer"), make_user("reader")
    stranger = make_user("stranger")
    follow(client, reader, author)
    follow(client, reader, sharer)
    media = upload(client, author, jpeg(), "image/jpeg", description="pic").json()
    pictured = post(author, "a picture #art", media_ids=[media["id"]])
    mentioning = post(author, "hi @stranger and @sharer #tag")
    elsewhere = post(stranger, "by someone the reader does not follow #far")
    for status in (pictured, elsewhere):
        assert client.post(f"/api/v1/statuses/{status['id']}/reblog",
                           headers=sharer.headers).status_code == 200
    client.post(f"/api/v1/statuses/{mentioning['id']}/favourite", headers=reader.headers)
    client.post(f"/api/v1/statuses/{elsewhere['id']}/favourite", headers=reader.headers)
    client.post(f"/api/v1/statuses/{pictured['id']}/reblog", headers=reader.headers)
    drain()
    for params in ({}, {"limit": 2}, {"min_id": "0", "limit": 3}):
        page = client.get(HOME, headers=reader.headers, params=params).json()
        assert page
        for shown in page:
            single = client.get(f"/api/v1/statuses/{shown['id']}", headers=reader.headers)
            assert single.status_code == 200
            assert shown == single.json()
    every = client.get(HOME, headers=reader.headers).json()
    flags = {s["id"]: (s["favourited"], s["reblogged"]) for s in every}
    assert flags[mentioning["id"]] == (True, False)
    inner = {s["reblog"]["id"]: s["reblog"] for s in every if s["reblog"]}
    assert inner[elsewhere["id"]]["favourited"] is True
    assert inner[pictured["id"]]["reblogged"] is True
    assert inner[pictured["id"]]["media_attachments"][0]["description"] == "pic"


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


# --- The rendered-status cache (docs/decisions/0270-rendered-status-cache.md) -------------
# Each test below warms the cache with a read, checks that the next unchanged read is
# answered from it, then changes what the entity shows and reads once more: the change must
# be in that very next read, with no queue job run in between.


@contextlib.contextmanager
def cache_counts(app):
    """(hits, misses) of the app's rendered-status cache during the block."""
    cache = app.state.status_cache
    start = (cache.hits, cache.misses)
    counts: list[int] = []
    yield counts
    counts[:] = [cache.hits - start[0], cache.misses - start[1]]


def warm(app, client, reader, status_id: str) -> dict:
    """Read the entity twice; the second read must be a cache hit for the whole page."""
    entity(client, reader, status_id)
    with cache_counts(app) as counts:
        shown = entity(client, reader, status_id)
    assert counts[0] >= 1 and counts[1] == 0, counts
    return shown


def test_warm_cache_like_counts_and_viewer_flags_show_in_the_next_read(
        app, client, make_user, post, drain):
    author, reader, other = make_user("author"), make_user("reader"), make_user("other")
    follow(client, reader, author)
    follow(client, other, author)
    status = post(author, "count me")
    drain()
    assert warm(app, client, reader, status["id"])["favourites_count"] == 0
    warm(app, client, other, status["id"])
    assert client.post(f"/api/v1/statuses/{status['id']}/favourite",
                       headers=other.headers).status_code == 200
    mine = entity(client, reader, status["id"])
    theirs = entity(client, other, status["id"])
    # One cached entity serves both readers; the flag is each reader's own.
    assert (mine["favourites_count"], mine["favourited"]) == (1, False)
    assert (theirs["favourites_count"], theirs["favourited"]) == (1, True)
    # The author's embedded Account: a new post changes statuses_count on the old entity.
    post(author, "and another")
    assert entity(client, reader, status["id"])["account"]["statuses_count"] == 2


def test_warm_cache_edit_and_repost_of_an_edited_post(app, client, make_user, post, drain):
    author, sharer, reader = make_user("author"), make_user("sharer"), make_user("reader")
    follow(client, reader, sharer)
    status = post(author, "before #old")
    drain()
    repost = client.post(f"/api/v1/statuses/{status['id']}/reblog", headers=sharer.headers)
    assert repost.status_code == 200
    drain()
    assert warm(app, client, reader, repost.json()["id"])["reblog"]["content"].count("before")
    assert client.put(f"/api/v1/statuses/{status['id']}", headers=author.headers,
                      json={"status": "after #new"}).status_code == 200
    inner = entity(client, reader, repost.json()["id"])["reblog"]
    assert "after" in inner["content"] and inner["edited_at"] is not None
    assert [t["name"] for t in inner["tags"]] == ["new"]
    # The reader's own like of the original shows inside the repost, from the cache too.
    client.post(f"/api/v1/statuses/{status['id']}/favourite", headers=reader.headers)
    inner = warm(app, client, reader, repost.json()["id"])["reblog"]
    assert inner["favourited"] is True and inner["favourites_count"] == 1


def test_warm_cache_deletion_and_suspension_are_never_served(app, client, make_user, post,
                                                             drain):
    author, troll, reader = make_user("author"), make_user("troll"), make_user("reader")
    mod = make_user("mod", role="moderator")
    follow(client, reader, author)
    follow(client, reader, troll)
    doomed = post(author, "soon deleted")
    hidden = post(troll, "soon suspended")
    drain()
    warm(app, client, reader, doomed["id"])
    assert client.delete(f"/api/v1/statuses/{doomed['id']}",
                         headers=author.headers).status_code == 200
    answer = client.get(HOME, headers=reader.headers)
    assert ids_of(answer) == [hidden["id"]] and "soon deleted" not in answer.text
    warm(app, client, reader, hidden["id"])
    assert client.post(f"/api/v1/admin/accounts/{troll.id}/action", headers=mod.headers,
                       json={"type": "suspend"}).status_code == 200
    answer = client.get(HOME, headers=reader.headers)
    assert ids_of(answer) == [] and "soon suspended" not in answer.text


def test_warm_cache_media_description_change(app, client, make_user, post, drain, configure,
                                             server, tmp_path):
    from test_media import jpeg, upload

    configure(media_backend="local", media_dir=str(tmp_path), media_base_url=server)
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    media = upload(client, author, jpeg(), "image/jpeg", description="first").json()
    status = post(author, "a picture", media_ids=[media["id"]])
    drain()
    shown = warm(app, client, reader, status["id"])
    assert [m["description"] for m in shown["media_attachments"]] == ["first"]
    assert client.put(f"/api/v1/media/{media['id']}", headers=author.headers,
                      json={"description": "second"}).status_code == 200
    shown = entity(client, reader, status["id"])
    assert [m["description"] for m in shown["media_attachments"]] == ["second"]


def test_cached_answers_are_byte_identical_to_rendering(app, client, make_user, post, drain):
    """The same pages with the cache warm and with no cache at all: the same bytes."""
    author, sharer, reader = make_user("author"), make_user("sharer"), make_user("reader")
    follow(client, reader, author)
    follow(client, reader, sharer)
    first = post(author, "héllo @sharer #tag <b>")
    post(author, "second", spoiler_text="cw", visibility="unlisted")
    client.post(f"/api/v1/statuses/{first['id']}/reblog", headers=sharer.headers)
    client.post(f"/api/v1/statuses/{first['id']}/favourite", headers=reader.headers)
    drain()
    pages = [{}, {"limit": 2}, {"limit": 1, "max_id": first["id"]}, {"min_id": "0"}]
    client.get(HOME, headers=reader.headers)
    cached = [client.get(HOME, headers=reader.headers, params=p) for p in pages]
    cache = app.state.status_cache
    app.state.status_cache = None
    try:
        rendered = [client.get(HOME, headers=reader.headers, params=p) for p in pages]
    finally:
        app.state.status_cache = cache
    for with_cache, without in zip(cached, rendered, strict=True):
        assert with_cache.status_code == without.status_code == 200
        assert with_cache.content == without.content
        assert with_cache.headers.get("link") == without.headers.get("link")
    # The hits and misses are counted for the operators.
    text = client.get("/metrics").text
    assert 'podium_status_cache_lookups_total{result="hit"}' in text
    assert 'podium_status_cache_lookups_total{result="miss"}' in text


def test_versions_are_bumped_by_the_database_itself(base_settings, make_user, post):
    """The cache's safety rests on these triggers (migration 0005), not on app code: an
    UPDATE written by hand changes the versions too."""
    import asyncio

    from podium_app.db import Database
    from sqlalchemy import text

    author = make_user("author")
    post(author, "versioned")
    names = {"u": "author"}
    status = "(SELECT s.id FROM statuses s JOIN accounts a ON a.id = s.account_id " \
             "WHERE a.username = :u)"

    async def run(*statements):
        db = Database.from_settings(base_settings)
        try:
            async with db.writer.begin() as conn:
                for sql in statements:
                    await conn.execute(text(sql.replace("STATUS", status)), names)
                return tuple((await conn.execute(text(
                    "SELECT s.version, a.version FROM statuses s JOIN accounts a "
                    "ON a.id = s.account_id WHERE a.username = :u"), names)).one())
        finally:
            await db.dispose()

    seen = [asyncio.run(run())]
    after = asyncio.run(run("UPDATE statuses SET favourites_count = 7 WHERE id = STATUS"))
    assert after[0] not in {v[0] for v in seen} and after[1] == seen[-1][1]
    seen.append(after)
    after = asyncio.run(run("UPDATE accounts SET display_name = 'x' WHERE username = :u"))
    assert after[0] == seen[-1][0] and after[1] not in {v[1] for v in seen}
    seen.append(after)
    after = asyncio.run(run("INSERT INTO mentions (status_id, account_id) "
                            "SELECT STATUS, id FROM accounts WHERE username = :u"))
    assert after[0] not in {v[0] for v in seen}
    seen.append(after)
    after = asyncio.run(run("DELETE FROM mentions WHERE status_id = STATUS"))
    assert after[0] not in {v[0] for v in seen}
    # An UPDATE that changes nothing still gives a new version (never the same one twice,
    # whatever was rolled back or lost in a failover: the versions are random).
    seen.append(after)
    after = asyncio.run(run("UPDATE statuses SET id = id WHERE id = STATUS"))
    assert after[0] not in {v[0] for v in seen}


def _redis_calls(redis_url: str) -> dict[str, int]:
    """Calls of each command Redis has run since it started (INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return {name.removeprefix("cmdstat_"): stats["calls"]
                for name, stats in client.info("commandstats").items()}
    finally:
        client.close()


def test_a_home_read_asks_redis_for_its_feed_in_one_script_call(base_settings, client,
                                                                 make_user, post, drain):
    """The feed part of a read (built marker, page of ids, feed size) is one EVALSHA of a
    script Redis caches (services/feeds.py, FEED_PAGE_LUA), not a pipeline of three
    commands; after SCRIPT FLUSH (or a Redis restart) one EVAL loads it again, and the
    answers stay the same."""
    import redis

    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    posted = [post(author, f"post {n}")["id"] for n in range(3)]
    drain()
    assert ids_of(client.get(HOME, headers=reader.headers)) == posted[::-1]  # feed built
    before = _redis_calls(base_settings.redis_url)
    assert ids_of(client.get(HOME, headers=reader.headers, params={"limit": 2})) \
        == posted[:0:-1]
    after = _redis_calls(base_settings.redis_url)
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 1
    assert after.get("eval", 0) == before.get("eval", 0)
    admin = redis.Redis.from_url(base_settings.redis_url)
    try:
        admin.script_flush()
    finally:
        admin.close()
    before = after
    assert ids_of(client.get(HOME, headers=reader.headers,
                             params={"min_id": posted[0]})) == posted[:0:-1]
    after = _redis_calls(base_settings.redis_url)
    assert after.get("eval", 0) - before.get("eval", 0) == 1


# --- The token cache (docs/decisions/0297-home-read-token-cache.md) ------------------------
# A token the cache knows is checked inside the page statement. Each refusal below must be
# seen on the very next read with the cache warm, and be the answer the ordinary path gives.


def token_counts() -> dict[str, float]:
    return {name: counter._value.get() for name, counter in (
        ("hit", metrics.TOKEN_CACHE_HITS), ("miss", metrics.TOKEN_CACHE_MISSES),
        ("refused", metrics.TOKEN_CACHE_REFUSED))}


@contextlib.contextmanager
def token_lookups():
    """How the token cache answered the reads of the block: {hit, miss, refused}."""
    start = token_counts()
    found: dict[str, float] = {}
    yield found
    found.update({name: value - start[name] for name, value in token_counts().items()})


def reading(client, make_user, post, drain) -> tuple:
    """A reader (make_user's User) following an author, and the author's post "for readers
    only", in the reader's feed."""
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    status = post(author, "for readers only")
    drain()
    return reader, status


def warm_token(client, headers, status_id: str) -> None:
    """Two reads showing `status_id`: the first fills the token cache, the second is a hit."""
    assert status_id in ids_of(client.get(HOME, headers=headers))
    with token_lookups() as seen:
        assert status_id in ids_of(client.get(HOME, headers=headers))
    assert seen == {"hit": 1, "miss": 0, "refused": 0}, seen


def same_as_uncached(app, client, headers, refused) -> None:
    """`refused` is the answer the ordinary path (no token cache) gives now."""
    app.state.token_cache.clear()
    cold = client.get(HOME, headers=headers)
    assert (cold.status_code, cold.json()) == (refused.status_code, refused.json())


def test_the_token_cache_keeps_the_tokens_hash_never_the_token(app, client, make_user):
    reader = make_user("reader")
    assert client.get(HOME, headers=reader.headers).status_code == 200
    cache = app.state.token_cache
    digest = security.token_hash(reader.token)
    assert cache.get(digest) == uuid.UUID(int=int(reader.id))
    assert all(reader.token not in key for key in cache._items)


def test_the_token_cache_is_a_bounded_lru():
    cache = TokenCache(2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put("a", first)
    cache.put("b", second)
    assert cache.get("a") == first  # "a" is now the most recent
    cache.put("c", third)
    assert len(cache) == 2 and "b" not in cache and cache.get("a") == first
    cache.checked("a", False)  # a failed check drops the entry
    assert "a" not in cache and cache.get("c") == third
    with pytest.raises(ValueError, match="at least 1"):
        TokenCache(0)


def test_the_token_cache_size_is_a_validated_setting(base_settings):
    for bad in (-1, 1_000_001, "many"):
        with pytest.raises(ValidationError, match="token_cache_entries"):
            Settings(_env_file=None, token_cache_entries=bad)
    assert create_app(base_settings.model_copy(
        update={"token_cache_entries": 0})).state.token_cache is None


def test_a_revoked_token_is_refused_on_the_next_read_with_the_cache_warm(
        app, client, make_user, post, drain, oauth_app):
    _, status = reading(client, make_user, post, drain)
    token = client.post("/oauth/token", data={
        "grant_type": "password", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "username": "reader",
        "password": PASSWORD, "scope": "read"})
    headers = bearer(token)
    warm_token(client, headers, status["id"])
    assert client.post("/oauth/revoke", data={
        "client_id": oauth_app["client_id"], "client_secret": oauth_app["client_secret"],
        "token": token.json()["access_token"]}).status_code == 200
    with token_lookups() as seen:
        refused = client.get(HOME, headers=headers)
    assert refused.status_code == 401 and "for readers only" not in refused.text
    assert seen["refused"] == 1 and seen["hit"] == 0, seen
    assert security.token_hash(token.json()["access_token"]) not in app.state.token_cache
    same_as_uncached(app, client, headers, refused)


def test_a_suspended_reader_is_refused_on_the_next_read_with_the_cache_warm(
        app, client, make_user, post, drain):
    reader, status = reading(client, make_user, post, drain)
    mod = make_user("mod", role="moderator")
    warm_token(client, reader.headers, status["id"])
    assert client.post(f"/api/v1/admin/accounts/{reader.id}/action", headers=mod.headers,
                       json={"type": "suspend"}).status_code == 200
    with token_lookups() as seen:
        refused = client.get(HOME, headers=reader.headers)
    assert refused.status_code in (401, 403) and "for readers only" not in refused.text
    assert seen["refused"] == 1 and seen["hit"] == 0, seen
    same_as_uncached(app, client, reader.headers, refused)


@pytest.mark.parametrize(("change", "code"), [
    ("DELETE FROM oauth_tokens WHERE token_hash = :token_hash", 401),
    ("UPDATE accounts SET suspended_at = now() WHERE id = :account_id", 403),
    ("UPDATE accounts SET confirmed_at = NULL WHERE id = :account_id", 403),
    ("UPDATE accounts SET approved = false WHERE id = :account_id", 403),
    ("UPDATE oauth_tokens SET scopes = 'write follow' WHERE token_hash = :token_hash", 403),
    ("UPDATE oauth_tokens SET scopes = 'read:accounts' WHERE token_hash = :token_hash", 403),
    ("UPDATE oauth_tokens SET scopes = 'read:statuses' WHERE token_hash = :token_hash", 200),
    ("UPDATE oauth_tokens SET scopes = 'write  read' WHERE token_hash = :token_hash", 200),
])
def test_every_condition_of_the_token_check_is_in_the_page_statement(
        app, base_settings, client, make_user, post, drain, change, code):
    """Each row change that the ordinary path refuses is refused by the page statement of a
    warm read (dropping the check, or one of its conditions, serves the page here), with
    the ordinary path's answer; a change it accepts stays a hit."""
    reader, status = reading(client, make_user, post, drain)
    warm_token(client, reader.headers, status["id"])
    sql(base_settings, change, token_hash=security.token_hash(reader.token),
        account_id=uuid.UUID(int=int(reader.id)))
    with token_lookups() as seen:
        answer = client.get(HOME, headers=reader.headers)
    assert answer.status_code == code, answer.text
    if code == 200:
        assert ids_of(answer) == [status["id"]] and seen["hit"] == 1, seen
        return
    assert "for readers only" not in answer.text
    assert seen["refused"] == 1 and seen["hit"] == 0, seen
    same_as_uncached(app, client, reader.headers, answer)


def test_a_token_given_to_another_account_reads_that_accounts_home(
        app, base_settings, client, make_user, post, drain):
    """The cached account id is checked too: a token row that now names another account
    (not something the app does) is answered for that account, as without the cache."""
    reader, status = reading(client, make_user, post, drain)
    other = make_user("other")
    warm_token(client, reader.headers, status["id"])
    sql(base_settings, "UPDATE oauth_tokens SET account_id = :other WHERE token_hash = :h",
        other=uuid.UUID(int=int(other.id)), h=security.token_hash(reader.token))
    with token_lookups() as seen:
        answer = client.get(HOME, headers=reader.headers)
    assert answer.status_code == 200 and ids_of(answer) == []
    assert seen["refused"] == 1, seen
    assert app.state.token_cache.get(
        security.token_hash(reader.token)) == uuid.UUID(int=int(other.id))


def test_a_cached_token_whose_feed_is_gone_rebuilds_it_after_the_token_check(
        app, base_settings, client, make_user, post, drain):
    reader, status = reading(client, make_user, post, drain)
    warm_token(client, reader.headers, status["id"])

    async def flush() -> None:
        redis = Redis.from_url(base_settings.redis_url)
        await redis.flushdb()
        await redis.aclose()

    asyncio.run(flush())
    with token_lookups() as seen:
        answer = client.get(HOME, headers=reader.headers)
    assert ids_of(answer) == [status["id"]]
    assert seen == {"hit": 0, "miss": 1, "refused": 0}, seen
    warm_token(client, reader.headers, status["id"])  # the feed is back, the token cached
