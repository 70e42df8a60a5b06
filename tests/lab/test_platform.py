"""The platform end to end through an edge, the way its users meet it (desk mode):

the operator creates the publisher on an app host; the publisher posts through the API; a
follower signs up through the edge, confirms by the mail the platform's own mail server
delivered, follows the publisher and reads the next post in their home timeline; anonymous
post pages come from the edge cache, personal pages never do.

Requests go from the controller to the lab's edge and mail host by address only.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import secrets
import time
import urllib.parse

import pytest
from labapp import APP_CLI
from labmail import mail_host, wait_in_mailbox

from kit import edgehttp, ssh

pytestmark = pytest.mark.usefixtures("signups_allowed")



@pytest.fixture(scope="module")
def site(stack, paths):
    edges = [h for h in stack.hosts if "edge" in h.roles]
    apps = [h for h in stack.hosts if "app" in h.roles]
    mail = mail_host(stack, paths)
    if not (edges and apps and mail) or not any("acme" in h.roles for h in stack.hosts):
        pytest.skip("the stack lacks an edge, app, mail or acme host")
    tls = edgehttp.context((paths.state / "acme" / "root.pem").read_text())
    return {"edge": str(edges[0].address), "app": str(apps[0].address), "mail": mail,
            "tls": tls, "domain": stack.domain}


def _call(site, method, path, token=None, body=None, headers=None):
    head = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        head["Content-Type"] = "application/json"
    return edgehttp.request(site["edge"], site["domain"], path, site["tls"], method=method,
                            headers=head, body=data)


def _json(answer, status=200):
    assert answer.status == status, (answer.status, answer.body[:300])
    return json.loads(answer.body)


def _app_cli(stack, paths, site, args: str) -> str:
    # Generous: logins to an app guest stall under a loaded lab (docs/lab.md, Known problem).
    result = ssh.run(paths, stack.admin.user, site["app"], f"{APP_CLI} {args}", timeout=240)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def publisher(stack, paths, site):
    """The operator's first step on a new platform: the publisher's account and API token."""
    name = f"pub{secrets.token_hex(3)}"
    _app_cli(stack, paths, site, f"create-user {name} {name}@{site['domain']} "
                                 "--role owner --publisher")
    out = _app_cli(stack, paths, site, f"tokens create {name}")
    token = re.search(r"token: (\S+)", out).group(1)
    return {"name": name, "token": token}


@pytest.fixture(scope="module")
def follower(site):
    """Sign up through the edge as a Mastodon client does, confirm by mail."""
    app = _json(_call(site, "POST", "/api/v1/apps", body={
        "client_name": "lab test", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read write follow"}))
    app_token = _json(_call(site, "POST", "/oauth/token", body={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "scope": "read write follow"}))["access_token"]
    name = f"fan{secrets.token_hex(3)}"
    # The lab's operator mailbox (ops@) is a real one on the platform's mail host; a
    # +detail address per run, since an address signs up once.
    signup = _json(_call(site, "POST", "/api/v1/accounts", token=app_token, body={
        "username": name, "email": f"ops+{name}@{site['domain']}",
        "password": secrets.token_urlsafe(16), "agreement": True, "locale": "en"}))
    raw = wait_in_mailbox(site["mail"], "ops", name, timeout=120)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https://\S+confirmation_token=[\w.-]+", text)
    assert link, text[:2000]
    url = urllib.parse.urlsplit(link.group(0))
    assert url.hostname == site["domain"]
    _json(_call(site, "GET", f"{url.path}?{url.query}"))
    return {"name": name, "token": signup["access_token"]}


def test_before_confirming_the_follower_was_refused(site):
    """A second sign-up that is not confirmed cannot use its token."""
    app = _json(_call(site, "POST", "/api/v1/apps", body={
        "client_name": "lab test", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read write"}))
    app_token = _json(_call(site, "POST", "/oauth/token", body={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "scope": "read write"}))["access_token"]
    signup = _json(_call(site, "POST", "/api/v1/accounts", token=app_token, body={
        "username": f"unc{secrets.token_hex(3)}",
        "email": f"abuse+{secrets.token_hex(3)}@{site['domain']}",
        "password": secrets.token_urlsafe(16), "agreement": True, "locale": "en"}))
    answer = _call(site, "GET", "/api/v1/timelines/home", token=signup["access_token"])
    assert answer.status == 403


def test_follower_reads_the_publishers_next_post_at_home(site, publisher, follower):
    target = _json(_call(site, "GET", f"/api/v1/accounts/lookup?acct={publisher['name']}"))
    _json(_call(site, "POST", f"/api/v1/accounts/{target['id']}/follow",
                token=follower["token"]))
    text = f"Hello from the lab {secrets.token_hex(4)}"
    post = _json(_call(site, "POST", "/api/v1/statuses", token=publisher["token"],
                       body={"status": text}))
    deadline = time.monotonic() + 15
    while True:
        home = _json(_call(site, "GET", "/api/v1/timelines/home", token=follower["token"]))
        if any(s["id"] == post["id"] for s in home):
            break
        assert time.monotonic() < deadline, "the post never reached the follower's home"
        time.sleep(0.5)
    # Desk mode: the follower reads and shares, but does not post.
    refused = _call(site, "POST", "/api/v1/statuses", token=follower["token"],
                    body={"status": "me too"})
    assert refused.status in (403, 422), refused.status


def test_anonymous_post_page_is_served_from_the_edge_cache(site, publisher):
    post = _json(_call(site, "POST", "/api/v1/statuses", token=publisher["token"],
                       body={"status": f"Cached {secrets.token_hex(4)}"}))
    path = f"/@{publisher['name']}/{post['id']}"
    first = _call(site, "GET", path)
    assert first.status == 200 and b"Cached" in first.body
    assert "public" in first.headers.get("cache-control", "")
    second = _call(site, "GET", path)
    assert second.status == 200
    assert second.headers["x-cache-status"] == "HIT", second.headers


def test_personal_page_is_never_cached(site, follower):
    for _ in range(2):
        answer = _call(site, "GET", "/api/v1/timelines/home", token=follower["token"])
        assert answer.status == 200
        assert answer.headers["x-cache-status"] != "HIT"
        assert answer.headers["cache-control"] == "private, no-store"
