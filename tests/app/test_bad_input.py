"""Bad input gets a clear 4xx in Mastodon's shape ({"error": ...}), never a 500."""

import pytest


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"a string"', "application/json"),
    (b"\xff\xfe\x00", "application/json"),
    (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
])
def test_malformed_bodies_are_4xx(client, alice, body, content_type):
    answer = client.post("/api/v1/statuses", content=body,
                         headers={**alice.headers, "Content-Type": content_type})
    assert 400 <= answer.status_code < 500
    assert isinstance(answer.json()["error"], str)


@pytest.mark.parametrize("payload", [
    {"status": 5},
    {"status": ["a"]},
    {"status": "ok", "visibility": "everyone"},
    {"status": "ok", "sensitive": "maybe"},
    {"status": "x" * 200_000},
    {"status": "ok", "in_reply_to_id": "not-an-id"},
    {"status": "ok", "media_ids": ["1", "2", "3", "4", "5"]},
])
def test_wrong_types_and_sizes_are_4xx(client, alice, payload):
    answer = client.post("/api/v1/statuses", json=payload, headers=alice.headers)
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["error"]


def test_validation_errors_name_the_field(client, alice):
    answer = client.post("/api/v1/statuses", json={"status": "ok", "visibility": "all"},
                         headers=alice.headers)
    assert answer.status_code == 422
    assert "visibility" in answer.json()["error"]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "many"}, {"max_id": "x" * 100}])
def test_bad_pagination_is_422(client, params):
    answer = client.get("/api/v1/timelines/public", params=params)
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("Validation failed")


def test_garbage_ids_in_pagination_bound_nothing(client):
    assert client.get("/api/v1/timelines/public", params={"max_id": "abc"}).status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer " + "x" * 5000])
def test_odd_authorization_headers_are_401(client, header):
    answer = client.get("/api/v1/accounts/verify_credentials", headers={"Authorization": header})
    assert answer.status_code in (401, 403)


def test_wrong_method_is_405_json(client):
    answer = client.delete("/api/v1/instance")
    assert answer.status_code == 405
    assert answer.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("where", ["body", "query", "path"])
def test_nul_characters_are_422(client, alice, where):
    if where == "body":
        answer = client.patch("/api/v1/accounts/update_credentials", headers=alice.headers,
                              json={"note": "a\x00b"})
    elif where == "query":
        answer = client.get("/api/v1/accounts/lookup", params={"acct": "a\x00b"})
    else:
        answer = client.get("/api/v1/timelines/tag/a%00b")
    assert answer.status_code == 422
