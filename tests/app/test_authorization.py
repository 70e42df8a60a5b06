"""One account cannot edit, delete or read another's private data; missing or foreign
tokens are refused with 401/403/404, never a 500."""

import pytest


@pytest.fixture
def pair(make_user):
    return make_user("owner1"), make_user("intruder")


def test_cannot_edit_or_delete_another_accounts_post(client, pair, post):
    owner, intruder = pair
    status = post(owner, "mine")
    url = f"/api/v1/statuses/{status['id']}"
    assert client.put(url, headers=intruder.headers, json={"status": "yours"}).status_code == 403
    assert client.delete(url, headers=intruder.headers).status_code == 403
    assert client.get(f"{url}/source", headers=intruder.headers).status_code == 404
    assert client.get(url).json()["content"] == "<p>mine</p>"


@pytest.mark.parametrize("visibility", ["private", "direct"])
def test_private_and_direct_posts_are_hidden_from_others(client, pair, post, visibility):
    owner, intruder = pair
    status = post(owner, "secret", visibility=visibility)
    url = f"/api/v1/statuses/{status['id']}"
    assert client.get(url, headers=intruder.headers).status_code == 404
    assert client.get(url).status_code == 404
    assert client.get(f"{url}/context").status_code == 404
    listed = client.get(f"/api/v1/accounts/{owner.id}/statuses", headers=intruder.headers)
    assert listed.json() == []
    assert client.post(f"{url}/favourite", headers=intruder.headers).status_code == 404


def test_followers_see_private_posts(client, pair, post):
    owner, follower = pair
    client.post(f"/api/v1/accounts/{owner.id}/follow", headers=follower.headers)
    status = post(owner, "for followers", visibility="private")
    assert client.get(f"/api/v1/statuses/{status['id']}",
                      headers=follower.headers).status_code == 200
    # A private post cannot be reposted, even by a follower.
    assert client.post(f"/api/v1/statuses/{status['id']}/reblog",
                       headers=follower.headers).status_code == 403


def test_mentioned_account_sees_a_direct_post(client, pair, post):
    owner, friend = pair
    status = post(owner, "psst @intruder", visibility="direct")
    assert client.get(f"/api/v1/statuses/{status['id']}",
                      headers=friend.headers).status_code == 200


def test_notifications_are_private(client, pair, post, make_user):
    owner, intruder = pair
    client.post(f"/api/v1/accounts/{owner.id}/follow", headers=intruder.headers)
    notes = client.get("/api/v1/notifications", headers=owner.headers).json()
    assert len(notes) == 1
    assert client.get(f"/api/v1/notifications/{notes[0]['id']}",
                      headers=intruder.headers).status_code == 404
    client.post(f"/api/v1/notifications/{notes[0]['id']}/dismiss", headers=intruder.headers)
    assert len(client.get("/api/v1/notifications", headers=owner.headers).json()) == 1


def test_home_timeline_needs_a_token(client):
    answer = client.get("/api/v1/timelines/home")
    assert answer.status_code == 401
    assert answer.json() == {"error": "The access token is invalid"}
    forged = client.get("/api/v1/timelines/home", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401


def test_read_only_token_cannot_write(client, make_user):
    reader = make_user("ro", scopes="read")
    answer = client.post("/api/v1/statuses", headers=reader.headers, json={"status": "x"})
    assert answer.status_code == 403


def test_members_cannot_moderate(client, pair, post):
    owner, intruder = pair
    status = post(owner, "fine")
    assert client.get("/api/v1/admin/reports", headers=intruder.headers).status_code == 403
    assert client.delete(f"/api/v1/podium/admin/statuses/{status['id']}",
                         headers=intruder.headers).status_code == 403
    assert client.post(f"/api/v1/admin/accounts/{owner.id}/action", headers=intruder.headers,
                       json={"type": "suspend"}).status_code == 403


def test_moderator_cannot_suspend_an_admin(client, make_user):
    moderator = make_user("mod", role="moderator")
    admin = make_user("boss", role="admin")
    answer = client.post(f"/api/v1/admin/accounts/{admin.id}/action",
                         headers=moderator.headers, json={"type": "suspend"})
    assert answer.status_code == 403


@pytest.mark.parametrize("bad_id", ["0", "abc", "-1", "9" * 60, str(2 ** 128)])
def test_unknown_or_malformed_ids_are_404(client, make_user, bad_id):
    user = make_user("someone")
    for path in (f"/api/v1/statuses/{bad_id}", f"/api/v1/accounts/{bad_id}",
                 f"/api/v1/statuses/{bad_id}/context"):
        answer = client.get(path, headers=user.headers)
        assert answer.status_code in (404, 422), path
        assert "error" in answer.json()
