"""Moderation: reports and the queue, suspension (hides content, revokes tokens), post
removal, the audit log; rate limits answer 429 with Retry-After."""


def test_report_reaches_the_moderator_queue(client, make_user, post):
    victim, troll, mod = make_user("victim"), make_user("troll"), make_user("mod", role="moderator")
    bad = post(troll, "something nasty")
    report = client.post("/api/v1/reports", headers=victim.headers, json={
        "account_id": troll.id, "status_ids": [bad["id"]], "comment": "abuse",
        "category": "violation"})
    assert report.status_code == 200, report.text
    queue = client.get("/api/v1/admin/reports", headers=mod.headers).json()
    assert [r["id"] for r in queue] == [report.json()["id"]]
    assert [n["type"] for n in client.get("/api/v1/notifications",
                                          headers=mod.headers).json()] == ["admin.report"]
    client.post(f"/api/v1/admin/reports/{queue[0]['id']}/resolve", headers=mod.headers)
    assert client.get("/api/v1/admin/reports", headers=mod.headers).json() == []


def test_suspension_hides_content_and_revokes_tokens(client, make_user, post):
    troll, mod, reader = make_user("troll"), make_user("mod", role="moderator"), make_user("r")
    status = post(troll, "visible for now")
    client.post(f"/api/v1/accounts/{troll.id}/follow", headers=reader.headers)
    answer = client.post(f"/api/v1/admin/accounts/{troll.id}/action", headers=mod.headers,
                         json={"type": "suspend"})
    assert answer.status_code == 200
    assert client.get(f"/api/v1/statuses/{status['id']}").status_code == 404
    assert client.get(f"/api/v1/accounts/{troll.id}").status_code == 404
    assert client.get("/api/v1/timelines/public").json() == []
    assert client.get("/api/v1/timelines/home", headers=reader.headers).json() == []
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=troll.headers).status_code == 401
    client.post(f"/api/v1/admin/accounts/{troll.id}/unsuspend", headers=mod.headers)
    assert client.get(f"/api/v1/statuses/{status['id']}").status_code == 200
    # Tokens stay revoked after unsuspension: the account signs in again.
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers=troll.headers).status_code == 401


def test_moderator_removes_a_post_and_it_is_audited(client, make_user, post):
    author, mod = make_user("author"), make_user("mod", role="moderator")
    status = post(author, "rule breaking")
    answer = client.delete(f"/api/v1/podium/admin/statuses/{status['id']}", headers=mod.headers)
    assert answer.status_code == 200
    assert client.get(f"/api/v1/statuses/{status['id']}").status_code == 404
    log = client.get("/api/v1/podium/admin/audit_log", headers=mod.headers).json()
    assert [(e["action"], e["target_id"]) for e in log] == [("remove_status", status["id"])]
    assert log[0]["actor_id"] == mod.id


def test_every_moderator_action_is_in_the_audit_log(client, make_user):
    troll, mod = make_user("troll"), make_user("mod", role="moderator")
    client.post(f"/api/v1/admin/accounts/{troll.id}/action", headers=mod.headers,
                json={"type": "suspend"})
    client.post(f"/api/v1/admin/accounts/{troll.id}/unsuspend", headers=mod.headers)
    log = client.get("/api/v1/podium/admin/audit_log", headers=mod.headers).json()
    assert [e["action"] for e in log] == ["unsuspend", "suspend"]


def test_posting_rate_limit_answers_429_with_retry_after(client, make_user, configure):
    configure(rate_post_account="3/600")
    alice = make_user("alice")
    codes = [client.post("/api/v1/statuses", headers=alice.headers,
                         json={"status": f"n{n}"}).status_code for n in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.post("/api/v1/statuses", headers=alice.headers, json={"status": "again"})
    assert limited.json() == {"error": "Too many requests"}
    assert 0 < int(limited.headers["retry-after"]) <= 600


def test_login_rate_limit_per_ip(client, make_user, configure):
    configure(rate_login_ip="2/600")
    app = client.post("/api/v1/apps", json={"client_name": "x", "scopes": "read"}).json()
    form = {"grant_type": "password", "client_id": app["client_id"],
            "client_secret": app["client_secret"], "username": "nobody", "password": "guess!!!"}
    codes = [client.post("/oauth/token", data=form).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


def test_sign_up_rate_limit_per_ip(client, configure):
    configure(rate_signup_ip="1/600")
    app = client.post("/api/v1/apps", json={"client_name": "x", "scopes": "read write"}).json()
    token = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "scope": "write"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    codes = [client.post("/api/v1/accounts", headers=headers, json={
        "username": f"u{n}", "email": f"u{n}@example.org", "password": "long enough pw",
        "agreement": True}).status_code for n in range(2)]
    assert codes == [200, 429]
