"""Sign-up under each registration mode, email confirmation and password reset by mail
(through the queue to SMTP), OAuth grants, token revocation."""

import base64
import hashlib
from urllib.parse import parse_qs, urlparse

import pytest

PASSWORD = "correct horse battery"


@pytest.fixture
def app_token(client, oauth_app):
    answer = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "scope": "read write"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def sign_up(client, app_token, name, **extra):
    return client.post("/api/v1/accounts", headers=app_token, json={
        "username": name, "email": f"{name}@example.org", "password": PASSWORD,
        "agreement": True, **extra})


def bearer(answer) -> dict:
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def link_token(message, key: str) -> str:
    return message.get_body(("plain",)).get_content().split(f"{key}=")[1].split()[0]


def test_open_sign_up_needs_the_mailed_confirmation(client, app_token, drain, sink):
    answer = sign_up(client, app_token, "newcomer")
    assert answer.status_code == 200, answer.text
    me = bearer(answer)
    refused = client.get("/api/v1/accounts/verify_credentials", headers=me)
    assert refused.status_code == 403
    assert "confirmed" in refused.json()["error"]
    drain()
    message = sink.wait_for("newcomer@example.org")
    assert message["From"] == "Podium <noreply@podium.test>"
    assert message["Message-ID"].endswith("@podium.test>")
    token = link_token(message, "confirmation_token")
    assert client.get("/auth/confirmation", params={"confirmation_token": token}).json()[
        "confirmed"] is True
    assert client.get("/api/v1/accounts/verify_credentials", headers=me).json()[
        "username"] == "newcomer"
    # A confirmation link works once.
    assert client.get("/auth/confirmation",
                      params={"confirmation_token": token}).status_code == 404


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_mailed_confirmation_link_opened_in_a_browser_lands_on_the_web_page(
        client, app_token, drain, sink):
    me = bearer(sign_up(client, app_token, "clicker"))
    drain()
    token = link_token(sink.wait_for("clicker@example.org"), "confirmation_token")
    answer = client.get("/auth/confirmation", params={"confirmation_token": token},
                        headers={"Accept": BROWSER_ACCEPT}, follow_redirects=True)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.url.path == "/confirm"
    assert "Email confirmed" in answer.text
    assert client.get("/api/v1/accounts/verify_credentials", headers=me).json()[
        "username"] == "clicker"
    # The page consumed the token: the link is spent for browsers and API clients alike.
    again = client.get("/auth/confirmation", params={"confirmation_token": token},
                       headers={"Accept": BROWSER_ACCEPT}, follow_redirects=True)
    assert again.status_code == 404 and "not valid" in again.text
    assert client.get("/auth/confirmation", params={"confirmation_token": token},
                      headers={"Accept": "application/json"}).status_code == 404


def test_password_is_stored_as_argon2id(client, app_token, base_settings):
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    sign_up(client, app_token, "hashed")

    async def stored() -> str:
        engine = create_async_engine(base_settings.database_url)
        async with engine.connect() as conn:
            value = await conn.scalar(text(
                "SELECT password_hash FROM accounts WHERE username = 'hashed'"))
        await engine.dispose()
        return value

    assert asyncio.run(stored()).startswith("$argon2id$")


def test_duplicate_username_and_bad_email_are_422(client, app_token):
    assert sign_up(client, app_token, "twice").status_code == 200
    again = client.post("/api/v1/accounts", headers=app_token, json={
        "username": "TWICE", "email": "other@example.org", "password": PASSWORD,
        "agreement": True})
    assert again.status_code == 422
    assert "taken" in again.json()["error"]
    bad = client.post("/api/v1/accounts", headers=app_token, json={
        "username": "mail", "email": "not-an-address", "password": PASSWORD, "agreement": True})
    assert bad.status_code == 422


def test_closed_registration_is_refused(client, app_token, configure):
    configure(registration_mode="closed")
    answer = sign_up(client, app_token, "late")
    assert answer.status_code == 403
    assert "closed" in answer.json()["error"]


def test_invite_mode_needs_a_valid_code(client, app_token, configure, base_settings):
    import asyncio

    from podium_app.db import Database
    from podium_app.models import Invite

    configure(registration_mode="invite")
    assert sign_up(client, app_token, "uninvited").status_code == 403

    async def make_invite() -> None:
        db = Database.from_settings(base_settings)
        async with db.sessions() as session, session.begin():
            session.add(Invite(code="welcome-1", max_uses=1))
        await db.dispose()

    asyncio.run(make_invite())
    assert sign_up(client, app_token, "invited", invite_code="welcome-1").status_code == 200
    assert sign_up(client, app_token, "second", invite_code="welcome-1").status_code == 403


def test_approval_mode_puts_people_on_a_waitlist_with_their_position(
        client, app_token, configure, make_user, drain, sink):
    configure(registration_mode="approval")
    tokens = []
    for name in ("first", "second", "third"):
        answer = sign_up(client, app_token, name)
        assert answer.status_code == 200
        tokens.append(bearer(answer))
    drain()
    for name in ("first", "second", "third"):
        link = link_token(sink.wait_for(f"{name}@example.org"), "confirmation_token")
        client.get("/auth/confirmation", params={"confirmation_token": link})
    positions = [client.get("/api/v1/podium/waitlist", headers=h).json()["position"]
                 for h in tokens]
    assert positions == [1, 2, 3]
    pending = client.get("/api/v1/accounts/verify_credentials", headers=tokens[0])
    assert pending.status_code == 403 and "approval" in pending.json()["error"]

    moderator = make_user("mod", role="moderator")
    admitted = client.post("/api/v1/podium/admin/waitlist/admit", headers=moderator.headers,
                           json={"count": 2})
    assert admitted.json() == {"admitted": ["first", "second"]}
    assert client.get("/api/v1/accounts/verify_credentials", headers=tokens[0]).status_code == 200
    assert client.get("/api/v1/podium/waitlist", headers=tokens[2]).json()["position"] == 1


def test_waitlist_is_admitted_at_the_configured_rate(client, app_token, configure, app,
                                                      base_settings):
    import asyncio

    from podium_app.db import Database
    from podium_app.redis_client import make_redis
    from podium_app.tasks import admit_waitlist

    configure(registration_mode="approval", waitlist_admit_per_hour=120)
    for name in ("w1", "w2", "w3"):
        sign_up(client, app_token, name)

    async def one_minute() -> int:
        ctx = {"settings": app.state.settings, "db": Database.from_settings(base_settings),
               "redis": make_redis(base_settings)}
        try:
            return await admit_waitlist(ctx)
        finally:
            await ctx["db"].dispose()
            await ctx["redis"].aclose()

    assert asyncio.run(one_minute()) == 2  # 120/hour = 2 per minute


def test_password_reset_by_mail(client, make_user, drain, sink, oauth_app):
    make_user("forgetful")
    assert client.post("/api/v1/podium/password/reset",
                       json={"email": "forgetful@example.org"}).status_code == 202
    # Unknown addresses get the same answer and no mail.
    assert client.post("/api/v1/podium/password/reset",
                       json={"email": "nobody@example.org"}).status_code == 202
    drain()
    token = link_token(sink.wait_for("forgetful@example.org"), "reset_password_token")
    assert client.post("/api/v1/podium/password",
                       json={"token": token, "password": "a new long password"}).status_code == 200
    login = client.post("/oauth/token", data={
        "grant_type": "password", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "username": "forgetful@example.org",
        "password": "a new long password", "scope": "read"})
    assert login.status_code == 200
    assert len(sink.messages) == 1


def test_password_grant_refuses_a_wrong_password(client, make_user, oauth_app):
    make_user("carol")
    answer = client.post("/oauth/token", data={
        "grant_type": "password", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "username": "carol",
        "password": "wrong password!"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_token_scope_cannot_exceed_the_apps(client, oauth_app):
    answer = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "scope": "read admin:write"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"


def test_authorization_code_flow_with_pkce(client, make_user, oauth_app):
    make_user("dora")
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()
    query = {"client_id": oauth_app["client_id"], "redirect_uri": "https://client.example/cb",
             "response_type": "code", "scope": "read write", "state": "xyz",
             "code_challenge": challenge, "code_challenge_method": "S256"}
    form = client.get("/oauth/authorize", params=query)
    assert form.status_code == 200 and "<form" in form.text
    answer = client.post("/oauth/authorize", data={**query, "username": "dora",
                                                   "password": PASSWORD})
    assert answer.status_code == 302
    location = urlparse(answer.headers["location"])
    params = parse_qs(location.query)
    assert location.netloc == "client.example" and params["state"] == ["xyz"]
    exchange = {"grant_type": "authorization_code", "client_id": oauth_app["client_id"],
                "client_secret": oauth_app["client_secret"], "code": params["code"][0],
                "redirect_uri": "https://client.example/cb"}
    wrong = client.post("/oauth/token", data={**exchange, "code_verifier": "w" * 64})
    assert wrong.status_code == 400
    # The failed attempt burnt the code: a code is single-use.
    again = client.post("/oauth/token", data={**exchange, "code_verifier": verifier})
    assert again.status_code == 400


def test_authorization_code_exchange_gives_a_working_token(client, make_user, oauth_app):
    make_user("erin")
    query = {"client_id": oauth_app["client_id"], "redirect_uri": "https://client.example/cb",
             "response_type": "code", "scope": "read"}
    answer = client.post("/oauth/authorize", data={**query, "username": "erin",
                                                   "password": PASSWORD})
    code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
    token = client.post("/oauth/token", data={
        "grant_type": "authorization_code", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "code": code,
        "redirect_uri": "https://client.example/cb"})
    assert token.status_code == 200
    me = client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))
    assert me.json()["username"] == "erin"
    # read only: posting is outside the token's scopes.
    refused = client.post("/api/v1/statuses", headers=bearer(token), json={"status": "hi"})
    assert refused.status_code == 403


def test_authorize_refuses_an_unregistered_redirect_uri(client, oauth_app):
    answer = client.get("/oauth/authorize", params={
        "client_id": oauth_app["client_id"], "redirect_uri": "https://evil.example/cb",
        "response_type": "code"})
    assert answer.status_code == 400


def test_revoked_token_no_longer_works(client, make_user, oauth_app):
    make_user("frank")
    token = client.post("/oauth/token", data={
        "grant_type": "password", "client_id": oauth_app["client_id"],
        "client_secret": oauth_app["client_secret"], "username": "frank",
        "password": PASSWORD, "scope": "read"})
    headers = bearer(token)
    assert client.get("/api/v1/accounts/verify_credentials", headers=headers).status_code == 200
    assert client.post("/oauth/revoke", data={
        "client_id": oauth_app["client_id"], "client_secret": oauth_app["client_secret"],
        "token": token.json()["access_token"]}).status_code == 200
    assert client.get("/api/v1/accounts/verify_credentials", headers=headers).status_code == 401


def test_update_credentials_changes_the_profile(client, make_user):
    gina = make_user("gina")
    answer = client.patch("/api/v1/accounts/update_credentials", headers=gina.headers,
                          data={"display_name": "Gina G", "note": "<b>hi</b>"})
    assert answer.status_code == 200
    profile = client.get(f"/api/v1/accounts/{gina.id}").json()
    assert profile["display_name"] == "Gina G"
    assert profile["note"] == "<p>&lt;b&gt;hi&lt;/b&gt;</p>"
