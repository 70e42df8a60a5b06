"""Posts: text rules, links/mentions/hashtags, replies and threads, edits with history,
reposts, likes, real deletion, ids, desk and social modes."""

import asyncio

from podium_app import ids
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def count_rows(settings, sql: str, **params) -> int:
    async def run() -> int:
        engine = create_async_engine(settings.database_url)
        async with engine.connect() as conn:
            value = await conn.scalar(text(sql), params)
        await engine.dispose()
        return int(value)

    return asyncio.run(run())


def test_post_renders_links_mentions_and_hashtags(client, make_user, post):
    alice, bob = make_user("alice"), make_user("bob")
    status = post(alice, "Hi @bob, see https://example.org/a?b=1 #Launch <script>")
    assert status["mentions"][0]["username"] == "bob"
    assert status["tags"] == [{"name": "launch", "url": "https://podium.test/tags/launch"}]
    assert '<a href="https://example.org/a?b=1"' in status["content"]
    assert "&lt;script&gt;" in status["content"] and "<script>" not in status["content"]
    mention = client.get("/api/v1/notifications", headers=bob.headers).json()
    assert [n["type"] for n in mention] == ["mention"]


def test_text_longer_than_the_limit_is_422(client, make_user, configure):
    configure(max_post_chars=10)
    alice = make_user("alice")
    answer = client.post("/api/v1/statuses", headers=alice.headers, json={"status": "x" * 11})
    assert answer.status_code == 422
    assert "10 characters" in answer.json()["error"]
    blank = client.post("/api/v1/statuses", headers=alice.headers, json={"status": "  "})
    assert blank.status_code == 422


def test_ids_are_time_sortable_decimal_strings_with_random_bits(make_user, post):
    alice = make_user("alice")
    first, second = post(alice, "one"), post(alice, "two")
    a, b = int(first["id"]), int(second["id"])
    assert a < b and a.bit_length() > 64
    # Neighbours differ in their 80 random bits: the next id cannot be guessed from one.
    assert b - a > 2 ** 40
    assert ids.created_ms(ids.parse(first["id"])) <= ids.created_ms(ids.parse(second["id"]))


def test_reply_thread_context(client, make_user, post):
    alice, bob = make_user("alice"), make_user("bob")
    root = post(alice, "root")
    reply = post(bob, "reply", in_reply_to_id=root["id"])
    nested = post(alice, "nested", in_reply_to_id=reply["id"])
    context = client.get(f"/api/v1/statuses/{reply['id']}/context").json()
    assert [s["id"] for s in context["ancestors"]] == [root["id"]]
    assert [s["id"] for s in context["descendants"]] == [nested["id"]]
    assert client.get(f"/api/v1/statuses/{root['id']}").json()["replies_count"] == 1


def test_edit_keeps_history(client, make_user, post):
    alice = make_user("alice")
    status = post(alice, "first version #old")
    edited = client.put(f"/api/v1/statuses/{status['id']}", headers=alice.headers,
                        json={"status": "second version #new"})
    assert edited.status_code == 200
    assert edited.json()["edited_at"] is not None
    assert [t["name"] for t in edited.json()["tags"]] == ["new"]
    history = client.get(f"/api/v1/statuses/{status['id']}/history").json()
    assert ["first version" in h["content"] for h in history] == [True, False]
    source = client.get(f"/api/v1/statuses/{status['id']}/source", headers=alice.headers)
    assert source.json()["text"] == "second version #new"


def test_reblog_and_favourite_counts_and_undo(client, make_user, post):
    alice, bob = make_user("alice"), make_user("bob")
    status = post(alice, "share me")
    url = f"/api/v1/statuses/{status['id']}"
    assert client.post(f"{url}/favourite", headers=bob.headers).json()["favourited"] is True
    client.post(f"{url}/favourite", headers=bob.headers)  # twice counts once
    reblog = client.post(f"{url}/reblog", headers=bob.headers).json()
    assert reblog["reblog"]["id"] == status["id"]
    seen = client.get(url, headers=bob.headers).json()
    assert (seen["favourites_count"], seen["reblogs_count"]) == (1, 1)
    assert seen["favourited"] and seen["reblogged"]
    assert [a["username"] for a in client.get(f"{url}/favourited_by").json()] == ["bob"]
    assert [a["username"] for a in client.get(f"{url}/reblogged_by").json()] == ["bob"]
    client.post(f"{url}/unfavourite", headers=bob.headers)
    client.post(f"{url}/unreblog", headers=bob.headers)
    seen = client.get(url, headers=bob.headers).json()
    assert (seen["favourites_count"], seen["reblogs_count"]) == (0, 0)


def test_delete_removes_the_rows_for_real(client, make_user, post, base_settings):
    alice, bob = make_user("alice"), make_user("bob")
    status = post(alice, "soon gone #gone @bob")
    url = f"/api/v1/statuses/{status['id']}"
    client.post(f"{url}/favourite", headers=bob.headers)
    client.post(f"{url}/reblog", headers=bob.headers)
    client.put(url, headers=alice.headers, json={"status": "edited #gone @bob"})
    deleted = client.delete(url, headers=alice.headers)
    assert deleted.status_code == 200
    assert deleted.json()["text"] == "edited #gone @bob"
    assert client.get(url).status_code == 404
    for table in ("statuses", "favourites", "status_edits", "mentions", "status_tags",
                  "notifications"):
        if table == "notifications":
            sql = "SELECT count(*) FROM notifications WHERE status_id IS NOT NULL"
        else:
            sql = f"SELECT count(*) FROM {table}"
        assert count_rows(base_settings, sql) == 0, table
    profile = client.get(f"/api/v1/accounts/{bob.id}").json()
    assert profile["statuses_count"] == 0  # bob's reblog went with the post


def test_desk_mode_lets_only_publishers_post(client, make_user, post, configure):
    configure(mode="desk")
    desk = make_user("desk", publisher=True)
    reader = make_user("reader")
    status = post(desk, "From the desk")
    refused = client.post("/api/v1/statuses", headers=reader.headers, json={"status": "me too"})
    assert refused.status_code == 403
    assert "desk mode" in refused.json()["error"]
    url = f"/api/v1/statuses/{status['id']}"
    for action in ("favourite", "reblog"):
        answer = client.post(f"{url}/{action}", headers=reader.headers)
        assert answer.status_code == 403, action
    reply = client.post("/api/v1/statuses", headers=reader.headers,
                        json={"status": "reply", "in_reply_to_id": status["id"]})
    assert reply.status_code == 403
    # Reading and following still work.
    assert client.get(url, headers=reader.headers).status_code == 200
    assert client.post(f"/api/v1/accounts/{desk.id}/follow",
                       headers=reader.headers).json()["following"] is True


def test_social_mode_lets_everyone_interact(client, make_user, post, configure):
    configure(mode="social")
    alice, bob = make_user("alice"), make_user("bob")
    status = post(alice, "social")
    assert client.post(f"/api/v1/statuses/{status['id']}/favourite",
                       headers=bob.headers).status_code == 200
    post(bob, "reply", in_reply_to_id=status["id"])


def test_idempotency_key_makes_one_post(client, make_user):
    alice = make_user("alice")
    headers = {**alice.headers, "Idempotency-Key": "abc"}
    first = client.post("/api/v1/statuses", headers=headers, json={"status": "once"}).json()
    second = client.post("/api/v1/statuses", headers=headers, json={"status": "once"}).json()
    assert first["id"] == second["id"]
