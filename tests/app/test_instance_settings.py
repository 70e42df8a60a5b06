"""Run-time instance settings (issue 3 modes, issue 4 admin page): stored in the database,
read by every request, changed by admins on /admin/settings (CSRF, audit log) or with
`podium-app settings`; the PODIUM_* settings are the defaults."""

import time

from test_cli import cli
from test_web_pages import WebClient


def _reply(client, user, status, text="a reply"):
    return client.post("/api/v1/statuses", headers=user.headers,
                       json={"status": text, "in_reply_to_id": status["id"]})


def test_admin_switches_to_desk_and_the_next_reply_is_refused(server, client, make_user, post):
    make_user("root", role="admin")
    publisher, member = make_user("pub", publisher=True), make_user("mem")
    status = post(publisher, "hello followers")
    assert _reply(client, member, status).status_code == 200
    admin = WebClient(server)
    admin.login("root")
    form = admin.get("/admin/settings")
    assert form.status_code == 200 and 'name="mode"' in form.text
    saved = admin.submit("/admin/settings", "/admin/settings", {"mode": "desk"})
    assert saved.status_code == 303
    refused = _reply(client, member, status, "another reply")
    assert refused.status_code == 403 and "desk mode" in refused.json()["error"]
    info = client.get("/api/v1/instance").json()
    assert info["configuration"]["podium"]["mode"] == "desk"
    assert _reply(client, publisher, status, "the publisher may").status_code == 200
    audit = client.get("/api/v1/podium/admin/audit_log",
                       headers=make_user("mod", role="moderator").headers).json()
    entry = next(e for e in audit if e["action"] == "instance.settings")
    assert entry["detail"]["changes"] == {"mode": [None, "desk"]}
    assert entry["detail"]["via"] == "web"


def test_settings_page_refuses_members_and_forms_without_csrf(server, client, make_user):
    make_user("root", role="admin")
    make_user("mem")
    member = WebClient(server)
    member.login("mem")
    assert member.get("/admin/settings").status_code == 403
    assert member.submit("/settings", "/admin/settings", {"mode": "desk"}).status_code == 403
    admin = WebClient(server)
    admin.login("root")
    forged = admin.request("POST", "/admin/settings", data={"mode": "desk"})
    assert forged.status_code == 403
    assert client.get("/api/v1/instance").json()["configuration"]["podium"]["mode"] == "social"


def test_bad_values_are_refused_by_name_and_nothing_is_stored(server, client, make_user):
    make_user("root", role="admin")
    admin = WebClient(server)
    admin.login("root")
    answer = admin.submit("/admin/settings", "/admin/settings",
                          {"max_post_chars": "12", "rate_post_account": "lots"})
    assert answer.status_code == 422 and "rate_post_account" in answer.text
    assert client.get("/api/v1/instance").json()["configuration"]["statuses"][
        "max_characters"] == 500


def test_post_length_and_rate_limit_follow_the_stored_settings(server, client, make_user,
                                                               post):
    make_user("root", role="admin")
    alice = make_user("alice")
    admin = WebClient(server)
    admin.login("root")
    assert admin.submit("/admin/settings", "/admin/settings",
                        {"max_post_chars": "10", "rate_post_account": "2/3600"}
                        ).status_code == 303
    too_long = client.post("/api/v1/statuses", headers=alice.headers,
                           json={"status": "eleven char"})
    assert too_long.status_code == 422 and "10 characters" in too_long.json()["error"]
    post(alice, "short")
    limited = client.post("/api/v1/statuses", headers=alice.headers, json={"status": "again"})
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_command_sets_shows_and_resets_and_the_app_follows(base_settings, client, make_user):
    alice = make_user("alice")
    done = cli(base_settings, "settings", "set", "registration_mode=closed", "max_post_chars=20")
    assert done.returncode == 0, done.stderr
    assert "registration_mode: (default) -> closed" in done.stdout
    time.sleep(2.5)  # other processes re-read the table within CACHE_SECONDS
    info = client.get("/api/v1/instance").json()
    assert info["configuration"]["podium"]["registration_mode"] == "closed"
    assert client.post("/api/v1/statuses", headers=alice.headers,
                       json={"status": "x" * 21}).status_code == 422
    shown = cli(base_settings, "settings", "show").stdout
    assert "max_post_chars=20\n" in shown and "mode=social  (default)" in shown
    bad = cli(base_settings, "settings", "set", "mode=loud")
    assert bad.returncode == 1 and "mode" in bad.stderr
    assert cli(base_settings, "settings", "reset", "registration_mode",
               "max_post_chars").returncode == 0
    time.sleep(2.5)
    info = client.get("/api/v1/instance").json()
    assert info["configuration"]["podium"]["registration_mode"] == "open"
