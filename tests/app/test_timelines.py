"""Timelines: hybrid home (fan-out through the queue below the threshold, merged on read
above it, rebuilt from PostgreSQL when Redis loses it), public, tag, account; pagination."""

import asyncio

import pytest
from redis.asyncio import Redis


def ids_of(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [s["id"] for s in answer.json()]


@pytest.fixture
def flush_redis(base_settings):
    def run() -> None:
        async def go() -> None:
            redis = Redis.from_url(base_settings.redis_url)
            await redis.flushdb()
            await redis.aclose()

        asyncio.run(go())

    return run


def follow(client, who, whom) -> None:
    assert client.post(f"/api/v1/accounts/{whom.id}/follow",
                       headers=who.headers).status_code == 200


def test_home_gets_posts_of_followed_accounts_through_the_queue(client, make_user, post, drain):
    author, reader, stranger = make_user("author"), make_user("reader"), make_user("stranger")
    client.get("/api/v1/timelines/home", headers=reader.headers)  # the feed exists in Redis
    follow(client, reader, author)
    status = post(author, "for my followers")
    post(stranger, "not followed")
    drain()
    assert ids_of(client.get("/api/v1/timelines/home", headers=reader.headers)) == [status["id"]]


def test_big_accounts_are_merged_on_read_without_fan_out(client, make_user, post, drain,
                                                         configure, base_settings):
    configure(fanout_threshold=1)
    star, fan = make_user("star"), make_user("fan")
    client.get("/api/v1/timelines/home", headers=fan.headers)
    follow(client, fan, star)  # star now has 1 follower = threshold
    status = post(star, "to the many")

    async def feed_size() -> int:
        redis = Redis.from_url(base_settings.redis_url)
        size = await redis.zcard(f"podium:feed:{__import__('uuid').UUID(int=int(fan.id))}")
        await redis.aclose()
        return size

    drain()
    assert asyncio.run(feed_size()) == 0  # nothing was fanned out
    assert ids_of(client.get("/api/v1/timelines/home", headers=fan.headers)) == [status["id"]]


def test_home_is_rebuilt_from_postgresql_after_redis_loses_it(client, make_user, post, drain,
                                                              flush_redis):
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    posted = [post(author, f"post {n}")["id"] for n in range(3)]
    drain()
    flush_redis()  # Redis lost every feed (restart without persistence)
    assert ids_of(client.get("/api/v1/timelines/home", headers=reader.headers)) == posted[::-1]


def test_home_pagination_with_link_header(client, make_user, post, drain):
    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    posted = [post(author, f"post {n}")["id"] for n in range(5)]
    drain()
    first = client.get("/api/v1/timelines/home", headers=reader.headers, params={"limit": 2})
    assert ids_of(first) == [posted[4], posted[3]]
    link = first.headers["link"]
    assert f"max_id={posted[3]}" in link and f"min_id={posted[4]}" in link
    second = client.get("/api/v1/timelines/home", headers=reader.headers,
                        params={"limit": 2, "max_id": posted[3]})
    assert ids_of(second) == [posted[2], posted[1]]
    newer = client.get("/api/v1/timelines/home", headers=reader.headers,
                       params={"limit": 2, "min_id": posted[1]})
    assert ids_of(newer) == [posted[3], posted[2]]
    since = client.get("/api/v1/timelines/home", headers=reader.headers,
                       params={"limit": 2, "since_id": posted[1]})
    assert ids_of(since) == [posted[4], posted[3]]


def test_deleted_post_leaves_home_timelines(client, make_user, post, drain):
    author, reader = make_user("author"), make_user("reader")
    client.get("/api/v1/timelines/home", headers=reader.headers)
    follow(client, reader, author)
    status = post(author, "oops")
    drain()
    client.delete(f"/api/v1/statuses/{status['id']}", headers=author.headers)
    assert ids_of(client.get("/api/v1/timelines/home", headers=reader.headers)) == []


def test_public_timeline_shows_only_public_posts(client, make_user, post):
    alice = make_user("alice")
    public = post(alice, "hello world")
    post(alice, "quiet", visibility="unlisted")
    post(alice, "friends", visibility="private")
    assert ids_of(client.get("/api/v1/timelines/public")) == [public["id"]]


def test_tag_timeline(client, make_user, post):
    alice = make_user("alice")
    tagged = post(alice, "about #Elections")
    post(alice, "about nothing")
    assert ids_of(client.get("/api/v1/timelines/tag/elections")) == [tagged["id"]]


def test_account_statuses_can_exclude_replies(client, make_user, post):
    alice = make_user("alice")
    top = post(alice, "top")
    post(alice, "reply", in_reply_to_id=top["id"])
    answer = client.get(f"/api/v1/accounts/{alice.id}/statuses",
                        params={"exclude_replies": "true"})
    assert ids_of(answer) == [top["id"]]


def test_follow_unfollow_and_relationships(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    follow(client, alice, bob)
    rel = client.get("/api/v1/accounts/relationships", headers=alice.headers,
                     params={"id[]": bob.id}).json()
    assert rel[0]["following"] is True and rel[0]["followed_by"] is False
    assert client.get(f"/api/v1/accounts/{bob.id}").json()["followers_count"] == 1
    assert [a["username"] for a in
            client.get(f"/api/v1/accounts/{bob.id}/followers").json()] == ["alice"]
    client.post(f"/api/v1/accounts/{bob.id}/unfollow", headers=alice.headers)
    assert client.get(f"/api/v1/accounts/{bob.id}").json()["followers_count"] == 0
    self_follow = client.post(f"/api/v1/accounts/{alice.id}/follow", headers=alice.headers)
    assert self_follow.status_code == 422


def test_posting_and_home_work_while_redis_is_down(client, app, make_user, post,
                                                   base_settings):
    from podium_app.redis_client import make_redis

    author, reader = make_user("author"), make_user("reader")
    follow(client, reader, author)
    working = app.state.redis
    app.state.redis = make_redis(base_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        status = client.post("/api/v1/statuses", headers={**author.headers,
                                                          "Idempotency-Key": "k"},
                             json={"status": "Redis is down"})
        assert status.status_code == 200, status.text
        home = client.get("/api/v1/timelines/home", headers=reader.headers)
    finally:
        app.state.redis = working
    assert ids_of(home) == [status.json()["id"]]
