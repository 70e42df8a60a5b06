"""A real Mastodon client library (Mastodon.py) against a running Podium: the scenario of the
issue, through the same HTTP API that Mastodon apps use."""

from mastodon import Mastodon


def test_mastodon_py_scenario(server, make_user, drain, sink):
    client_id, client_secret = Mastodon.create_app(
        "podium-test", api_base_url=server, scopes=["read", "write", "follow"])
    anon = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=server,
                    version_check_mode="none")
    publisher_token = anon.create_account("publisher", "correct horse battery",
                                          "publisher@example.org", agreement=True,
                                          scopes=["read", "write", "follow"])
    drain()
    confirm = sink.wait_for("publisher@example.org").get_body(("plain",)).get_content()
    token = confirm.split("confirmation_token=")[1].split()[0]
    anon.session.get(f"{server}/auth/confirmation", params={"confirmation_token": token})

    publisher = Mastodon(access_token=publisher_token, api_base_url=server,
                         version_check_mode="none")
    assert publisher.account_verify_credentials()["username"] == "publisher"

    make_user("reader")
    reader = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=server,
                      version_check_mode="none")
    reader.log_in("reader@example.org", "correct horse battery",
                  scopes=["read", "write", "follow"])
    me = publisher.account_verify_credentials()
    relationship = reader.account_follow(me["id"])
    assert relationship["following"] is True

    status = publisher.status_post("Hello from #podium, @reader!")
    assert "podium" in [t["name"] for t in status["tags"]]
    drain()
    home = reader.timeline_home()
    assert [s["id"] for s in home] == [status["id"]]

    assert reader.status_favourite(status["id"])["favourited"] is True
    reblog = reader.status_reblog(status["id"])
    assert reblog["reblog"]["id"] == status["id"]
    assert publisher.status(status["id"])["favourites_count"] == 1
    kinds = sorted(n["type"] for n in publisher.notifications())
    assert kinds == ["favourite", "follow", "reblog"]
    assert [n["type"] for n in reader.notifications()] == ["mention"]

    publisher.status_delete(status["id"])
    drain()
    assert reader.timeline_home() == []
    assert publisher.account_statuses(me["id"]) == []
