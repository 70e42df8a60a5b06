"""Account deletion is real (issue 3): the account's rows, posts, media files and cached
copies go, through the queue; from the web settings (password), the admin API (after a
suspension) and `podium-app delete-account`."""

import asyncio
import uuid

import test_media
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from test_cli import cli
from test_media import jpeg, upload
from test_web_pages import WebClient

media_app = test_media.media_app  # the fixture: local storage in a temporary folder


def _count(settings, sql: str, **params) -> int:
    async def run() -> int:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text(sql), params)).scalar_one()
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _feed(settings, account_id: str) -> list[bytes]:
    async def run() -> list[bytes]:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
        try:
            return await redis.zrange(f"podium:feed:{account_id}", 0, -1)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _uuid(api_id: str) -> str:
    return str(uuid.UUID(int=int(api_id)))


def _scene(client, make_user, post, media_app):
    """alice posts (one with a picture), follows bob, likes and reposts bob's post, replies
    to it; carol follows alice and has read her home (so her Redis feed holds alice's posts)."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    for follower, target in ((alice, bob), (carol, alice)):
        assert client.post(f"/api/v1/accounts/{target.id}/follow",
                           headers=follower.headers).status_code == 200
    picture = upload(client, alice, jpeg(color=(4, 5, 6)), "image/jpeg").json()
    mine = post(alice, "with a picture", media_ids=[picture["id"]])
    theirs = post(bob, "bob's post")
    client.post(f"/api/v1/statuses/{theirs['id']}/favourite", headers=alice.headers)
    client.post(f"/api/v1/statuses/{theirs['id']}/reblog", headers=alice.headers)
    post(alice, "a reply", in_reply_to_id=theirs["id"])
    home = client.get("/api/v1/timelines/home", headers=carol.headers).json()
    assert mine["id"] in [s["id"] for s in home]
    return alice, bob, carol, mine, theirs, picture


def _assert_gone(base_settings, client, alice, bob, carol, mine, theirs, picture, media_app,
                 tmp_path):
    aid = _uuid(alice.id)
    for table, column in (("accounts", "id"), ("statuses", "account_id"),
                          ("follows", "account_id"), ("follows", "target_account_id"),
                          ("favourites", "account_id"), ("media_attachments", "account_id"),
                          ("oauth_tokens", "account_id"), ("notifications", "from_account_id")):
        assert _count(base_settings, f"SELECT count(*) FROM {table} WHERE {column} = :a",
                      a=aid) == 0, table
    assert client.get(f"/api/v1/statuses/{mine['id']}").status_code == 404
    assert client.get(picture["url"].removeprefix(media_app.media_base_url)).status_code == 404
    assert not [p for p in tmp_path.rglob("*.*") if p.is_file()]
    assert _feed(base_settings, _uuid(carol.id)) == []
    assert _count(base_settings, "SELECT count(*) FROM accounts WHERE username = 'alice'") == 0
    # Other people's counters no longer count alice.
    bob_now = client.get(f"/api/v1/accounts/{bob.id}").json()
    assert bob_now["followers_count"] == 0
    assert client.get(f"/api/v1/accounts/{carol.id}").json()["following_count"] == 0
    post_now = client.get(f"/api/v1/statuses/{theirs['id']}").json()
    assert (post_now["favourites_count"], post_now["reblogs_count"],
            post_now["replies_count"]) == (0, 0, 0)


def test_web_deletion_needs_the_password_then_deletes_everything(
        server, client, make_user, post, media_app, drain, base_settings, tmp_path):
    scene = _scene(client, make_user, post, media_app)
    alice = scene[0]
    web = WebClient(server)
    web.login("alice")
    wrong = web.submit("/settings", "/settings/delete", {"password": "not it"})
    assert wrong.status_code == 403 and "password" in wrong.text
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=alice.headers).status_code == 200
    done = web.submit("/settings", "/settings/delete", {"password": "correct horse battery"})
    assert done.status_code == 200 and "being deleted" in done.text
    assert "podium_session" not in web.cookies
    # Hidden at once, before the worker ran: no login, no token, no post.
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=alice.headers).status_code == 401
    assert client.get(f"/api/v1/statuses/{scene[3]['id']}").status_code == 404
    drain()
    _assert_gone(base_settings, client, *scene, media_app, tmp_path)


def test_web_deletion_refuses_a_form_without_csrf(server, client, make_user):
    alice = make_user("alice")
    web = WebClient(server)
    web.login("alice")
    forged = web.request("POST", "/settings/delete", data={"password": "correct horse battery"})
    assert forged.status_code == 403
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=alice.headers).status_code == 200


def test_admin_deletes_a_suspended_account_through_the_queue(
        client, make_user, post, media_app, drain, base_settings, tmp_path):
    scene = _scene(client, make_user, post, media_app)
    alice = scene[0]
    admin, moderator = make_user("root", role="admin"), make_user("mod", role="moderator")
    early = client.delete(f"/api/v1/admin/accounts/{alice.id}", headers=admin.headers)
    assert early.status_code == 403 and "Suspend" in early.json()["error"]
    assert client.post(f"/api/v1/admin/accounts/{alice.id}/action", headers=admin.headers,
                       json={"type": "suspend"}).status_code == 200
    assert client.delete(f"/api/v1/admin/accounts/{alice.id}",
                         headers=moderator.headers).status_code == 403
    assert client.delete(f"/api/v1/admin/accounts/{alice.id}",
                         headers=admin.headers).status_code == 200
    drain()
    _assert_gone(base_settings, client, *scene, media_app, tmp_path)
    audit = client.get("/api/v1/podium/admin/audit_log", headers=admin.headers).json()
    assert any(e["action"] == "delete_account" and e["detail"]["username"] == "alice"
               for e in audit)


def test_command_deletes_an_account(base_settings, client, make_user, post, drain):
    alice = make_user("alice")
    post(alice, "soon gone")
    refused = cli(base_settings, "delete-account", "alice", stdin="n\n")
    assert refused.returncode == 1
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=alice.headers).status_code == 200
    done = cli(base_settings, "delete-account", "alice", "--yes")
    assert done.returncode == 0, done.stderr
    drain()
    assert _count(base_settings, "SELECT count(*) FROM statuses") == 0
    assert _count(base_settings, "SELECT count(*) FROM accounts") == 0
