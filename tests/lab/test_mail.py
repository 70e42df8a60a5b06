"""The platform's mail end to end: submission with TLS and SASL, DKIM verified against the
lab DNS, no open relay, no AUTH without TLS, no foreign senders (checked with swaks from
another lab host, over the private network), the queue surviving a Postfix restart and the
whole mail host stopped, hard bounces reaching the bounce mailbox, the smarthost path. The
controller (a host on the lab network too) reads mailboxes over IMAPS and runs the checks
swaks cannot make (AUTH sent unoffered, size limits, brute force).

Needs the stack named by PODIUM_STACK up with a mail host (and dns/acme hosts).
"""

from __future__ import annotations

import base64
import email
import email.utils
import json
import os
import re
import shlex
import smtplib
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import uuid
from email.message import EmailMessage

import pytest
import yaml
from labmail import Imap, SwaksRun, ensure_packages, mail_host, wait_in_mailbox
from labmail import swaks as labmail_swaks
from test_platform import _app_cli, _call, _json, publisher, site  # noqa: F401  (fixtures)

from kit import dns_records, edgehttp, lab, ssh
from kit.ansible import run_playbook
from kit.console import Progress
from kit.machines import Machine
from kit.paths import REPO

pytestmark = pytest.mark.usefixtures("signups_allowed")

# The signing selector is set in the mail role's wiring (not in the inventory).
SELECTOR = yaml.safe_load(
    (REPO / "playbooks/group_vars/all/mail.yml").read_text())["mail_dkim_selector"]


@pytest.fixture(scope="module")
def mail(stack, paths):
    found = mail_host(stack, paths)
    if found is None:
        pytest.skip("the stack has no mail host")
    return found


def _on_mail_host(stack, paths, mail, command: str, stdin: str | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", *ssh.base_args(paths, True), f"{stack.admin.user}@{mail['address']}", command],
        input=stdin, capture_output=True, text=True, timeout=timeout)


class _Smtp(smtplib.SMTP):
    """Connects by address, verifies the certificate for the MX name (no DNS on the controller)."""

    def __init__(self, mail: dict, port: int, timeout: float = 30) -> None:
        super().__init__(mail["address"], port, local_hostname="controller.lab.invalid",
                         timeout=timeout)
        self._host = mail["name"]


def _message(mail: dict, to: str, sender: str = "app") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{sender}@{mail['domain']}"
    message["To"] = to
    message["Subject"] = f"podium lab test {uuid.uuid4()}"
    message["Message-ID"] = email.utils.make_msgid(domain=mail["domain"])
    message["Date"] = email.utils.formatdate()
    message.set_content("Confirm your address: https://podium.test/confirm/abc\n")
    return message


def _submit(mail: dict, message: EmailMessage, envelope_from: str | None = None) -> None:
    with _Smtp(mail, 587) as smtp:
        smtp.starttls(context=mail["context"])
        smtp.login(f"app@{mail['domain']}", mail["password"]("app"))
        smtp.send_message(message, from_addr=envelope_from or f"bounce@{mail['domain']}")


def test_dkim_signature_verifies_against_the_key_in_the_lab_dns(stack, paths, mail):
    """opendkim-testmsg on the mail host fetches the key from the lab DNS and checks the
    signature of the message as delivered."""
    message = _message(mail, f"postmaster@{mail['domain']}")
    _submit(mail, message)
    raw = wait_in_mailbox(mail, "postmaster", message["Subject"])
    _assert_dkim_verifies(stack, paths, mail, raw)


def _assert_dkim_verifies(stack, paths, mail, raw: bytes) -> None:
    """The message as delivered carries a DKIM signature of the domain by the active selector,
    and opendkim-testmsg on the mail host (key fetched from the lab DNS) verifies it."""
    assert b"DKIM-Signature:" in raw and f"d={mail['domain']};".encode() in raw
    assert f"s={SELECTOR};".encode() in raw
    # Drop the headers added after signing (delivery), as a receiver sees the message.
    received = email.message_from_bytes(raw)
    del received["Return-Path"], received["Delivered-To"]
    result = _on_mail_host(stack, paths, mail, "/usr/sbin/opendkim-testmsg",
                           stdin=received.as_bytes().decode())
    assert result.returncode == 0, result.stdout + result.stderr


def test_spf_record_authorises_the_mail_hosts_address(stack, paths, mail):
    """SPF for the envelope sender's domain (v=spf1 mx -all) allows the mail host's address:
    the MX name resolves, through the lab DNS, to the address the host sends from."""
    spf = _on_mail_host(stack, paths, mail, f"dig +short {mail['domain']} TXT")
    assert '"v=spf1 mx -all"' in spf.stdout.split("\n")
    mx = _on_mail_host(stack, paths, mail, f"dig +short {mail['domain']} MX").stdout.split()
    address = _on_mail_host(stack, paths, mail, f"dig +short {mx[-1]} A").stdout.split()
    assert address == [mail["address"]]


def _dig(stack, paths, mail, name: str, kind: str) -> list[str]:
    """The answer of the lab DNS (the mail host's resolver) for ``name`` ``kind``."""
    result = _on_mail_host(stack, paths, mail, f"dig +short {name} {kind}")
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def edges(stack):
    found = [str(h.address) for h in stack.hosts if "edge" in h.roles]
    if not found:
        pytest.skip("the stack has no edge host to serve the MTA-STS policy")
    return found


def test_every_edge_serves_the_mta_sts_policy_the_dns_announces(stack, paths, mail, edges):
    """A sending MTA's view (RFC 8461): the _mta-sts TXT id, then the policy over HTTPS from
    mta-sts.<domain> with a certificate valid for that name (lab CA), text/plain, no
    redirect; the policy names the MX the zone publishes, and the id is the one of this text."""
    tls = edgehttp.context((paths.state / "acme" / "root.pem").read_text())
    (announced,) = _dig(stack, paths, mail, f"_mta-sts.{mail['domain']}", "TXT")
    (mx,) = _dig(stack, paths, mail, mail["domain"], "MX")
    for edge in edges:
        answer = edgehttp.request(edge, f"mta-sts.{mail['domain']}",
                                  "/.well-known/mta-sts.txt", tls)
        assert answer.status == 200, (edge, answer.status)
        assert answer.headers["content-type"].split(";")[0] == "text/plain"
        text = answer.body.decode()
        policy = dict(line.split(": ", 1) for line in text.split("\r\n") if line)
        assert policy["version"] == "STSv1" and policy["mode"] in ("enforce", "testing")
        assert policy["mx"] == mx.split()[-1].rstrip(".") == mail["name"]
        assert int(policy["max_age"]) >= 86400
        assert announced == f'"v=STSv1; id={dns_records.mta_sts_id(text)}"'
        assert edgehttp.request(edge, f"mta-sts.{mail['domain']}", "/", tls).status == 404


# --- relay checks with swaks from another lab host, over the private network -------------

@pytest.fixture(scope="module")
def client(stack, paths, mail) -> dict:
    """Another lab host (an app host, the one that submits for real; else any non-mail host)
    with swaks, installed for the test through the lab's apt proxy (labmail.ensure_packages;
    libnet-ssleay-perl is swaks's STARTTLS, only a Recommends). swaks reaches the mail host by
    its name through the lab DNS and verifies its certificate with the CA the app uses."""
    others = [h for h in stack.hosts if "mail" not in h.roles]
    if not others:
        pytest.skip("the stack has no lab host besides the mail host to run swaks on")
    host = next((h for h in others if "app" in h.roles), others[0])
    address = str(host.address)
    ensure_packages(stack, paths, address, "command -v swaks >/dev/null && "
                    "perl -MNet::SSLeay -e1 2>/dev/null", ["swaks", "libnet-ssleay-perl"])
    tls = ["--tls", "--tls-verify"]
    if any("acme" in h.roles for h in stack.hosts):  # the lab CA, as the app role installs it
        tls += ["--tls-ca-path", "/etc/podium/smtp-ca.pem"]
    return {"address": address, "name": host.name, "tls": tls}


def _swaks(stack, paths, mail, client, port: int, sender: str, to: str,
           login: str | None = None, tls: bool = True) -> SwaksRun:
    args = ["--server", mail["name"], "--port", str(port), "--from", sender, "--to", to,
            "--header", f"Subject: podium lab swaks {uuid.uuid4()}",
            *(client["tls"] if tls else [])]
    if login is None:
        return labmail_swaks(stack, paths, client["address"], args)
    account = login.split("@")[0]
    return labmail_swaks(stack, paths, client["address"],
                         [*args, "--auth", "PLAIN", "--auth-user", login],
                         password=mail["password"](account))


def _header(run: SwaksRun, name: str) -> str:
    """A header swaks sent, as it appears in its transcript."""
    return next(line.split(f"{name}: ", 1)[1] for line in run.transcript.splitlines()
                if f"> {name}: " in line)


def test_the_app_account_submits_over_starttls_from_another_host(stack, paths, mail, client):
    """swaks on the app host: STARTTLS (certificate verified for the host's name, with the
    CA the app uses; without it swaks stops, exit 29), AUTH PLAIN as app@, envelope
    sender bounce@ (the app's): 235, 250 queued, exit 0; the message is read back over IMAPS."""
    run = _swaks(stack, paths, mail, client, 587, f"bounce@{mail['domain']}",
                 f"postmaster@{mail['domain']}", login=f"app@{mail['domain']}")
    assert run.exit_code == 0, run.transcript
    assert "passed CA verification, passed host verification" in run.transcript
    assert [code for code, _ in run.replies("AUTH")] == [235], run.transcript
    assert [code for code, _ in run.replies(".")] == [250], run.transcript
    subject = _header(run, "Subject")
    assert subject.encode() in wait_in_mailbox(mail, "postmaster", subject)


def test_unauthenticated_mail_to_a_foreign_domain_is_refused(stack, paths, mail, client):
    """From the app host on port 25, even over STARTTLS: the foreign recipient gets 554
    Relay access denied, so no recipient is accepted (swaks exit 24) and nothing is sent."""
    run = _swaks(stack, paths, mail, client, 25, f"someone@{mail['domain']}",
                 "victim@example.org")
    assert run.exit_code == 24, run.transcript
    ((code, text),) = run.replies("RCPT")
    assert code == 554 and "Relay access denied" in text, run.transcript
    assert run.replies("DATA") == [], run.transcript


def test_submission_offers_no_auth_before_starttls(stack, paths, mail, client):
    """swaks asked to log in without STARTTLS: the plain-text EHLO on 587 offers no AUTH (so
    no password can travel in clear), swaks gives up with exit 28 and sends no MAIL."""
    run = _swaks(stack, paths, mail, client, 587, f"bounce@{mail['domain']}",
                 f"postmaster@{mail['domain']}", login=f"app@{mail['domain']}", tls=False)
    assert run.exit_code == 28, run.transcript
    ehlo = [text for _, text in run.replies("EHLO")]
    assert "STARTTLS" in ehlo and not any(t.startswith("AUTH") for t in ehlo), run.transcript
    assert run.replies("AUTH") == [] and run.replies("MAIL") == [], run.transcript


def test_submission_refuses_another_accounts_sender(stack, paths, mail, client):
    """Logged in as app@ (235), sending as postmaster@: 553 not owned by user, exit 24."""
    run = _swaks(stack, paths, mail, client, 587, f"postmaster@{mail['domain']}",
                 f"abuse@{mail['domain']}", login=f"app@{mail['domain']}")
    assert run.exit_code == 24, run.transcript
    assert [code for code, _ in run.replies("AUTH")] == [235], run.transcript
    ((code, text),) = run.replies("RCPT")
    assert code == 553 and "not owned by user" in text, run.transcript


def test_port_25_refuses_a_message_over_the_size_limit_with_552(stack, paths, mail):
    """SIZE in EHLO is the configured limit, and a message over it that does not declare its
    size is still refused after DATA with 552 (the limit is enforced, not only announced)."""
    limit = int(_on_mail_host(stack, paths, mail,
                              "/usr/sbin/postconf -h message_size_limit").stdout)
    assert limit > 0
    with _Smtp(mail, 25) as smtp:
        smtp.starttls(context=mail["context"])
        smtp.ehlo()
        assert int(smtp.esmtp_features["size"]) == limit
        code, reply = smtp.mail(f"reporter@{mail['domain']}", options=[f"SIZE={limit + 1}"])
        assert code == 552, reply
        smtp.rset()
        assert smtp.mail(f"reporter@{mail['domain']}")[0] == 250
        assert smtp.rcpt(f"postmaster@{mail['domain']}")[0] == 250
        line = b"x" * 998 + b"\r\n"
        body = b"Subject: oversize\r\n\r\n" + line * (limit // len(line) + 2)
        code, reply = smtp.data(body)
    assert code == 552 and reply.startswith(b"5.3.4"), reply  # 5.3.4: message too big


def test_submission_answers_auth_sent_anyway_before_starttls_with_530(mail):
    """A client that ignores the EHLO (swaks will not send AUTH unoffered) and logs in in
    clear anyway is refused by Postfix itself: 530, STARTTLS first."""
    with _Smtp(mail, 587) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        code, reply = smtp.docmd("AUTH", "PLAIN AGFwcABwYXNzd29yZA==")
    assert code == 530 and b"STARTTLS" in reply


def test_port_25_never_offers_auth(mail):
    with _Smtp(mail, 25) as smtp:
        smtp.starttls(context=mail["context"])
        smtp.ehlo()
        assert not smtp.has_extn("auth")


def _unban(stack, paths, mail) -> None:
    _on_mail_host(stack, paths, mail, "sudo fail2ban-client unban --all")


def test_submission_refuses_a_wrong_password(stack, paths, mail):
    try:
        with _Smtp(mail, 587) as smtp:
            smtp.starttls(context=mail["context"])
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login(f"app@{mail['domain']}", "not-the-password")
    finally:
        _unban(stack, paths, mail)  # the failure counts towards a ban of the controller


def test_sasl_brute_force_gets_the_client_banned(stack, paths, mail):
    """fail2ban's postfix-sasl jail bans the address after mail_fail2ban_maxretry failures
    (default 5; earlier failures of this run may count too): its connections are refused."""
    banned = False
    try:
        for _ in range(12):
            try:
                with _Smtp(mail, 587, timeout=10) as smtp:
                    smtp.starttls(context=mail["context"])
                    with pytest.raises(smtplib.SMTPAuthenticationError):
                        smtp.login(f"app@{mail['domain']}", "guess")
            except ConnectionRefusedError:
                banned = True
                break
            except (smtplib.SMTPServerDisconnected, TimeoutError):
                # The ban landed while this session was open (seen in CI): the nftables reject
                # only reaches an established TCP session as a soft error, so the reply never
                # comes. Not a verdict either way: the next connection tells.
                continue
            time.sleep(1)
        assert banned, "the client was never banned"
    finally:
        _unban(stack, paths, mail)


def test_mail_queued_while_delivery_is_down_survives_a_postfix_restart(stack, paths, mail):
    """Dovecot (delivery and SASL) stopped: inbound mail on port 25 waits in Postfix's queue;
    Postfix stops and starts again; delivery returns; the message arrives. (Mail the app sends
    while the mail host is down waits in the app's own queue: the app's side.)"""
    run = lambda command: _on_mail_host(stack, paths, mail, command)  # noqa: E731
    message = _message(mail, f"abuse@{mail['domain']}", sender="reporter")
    assert run("sudo systemctl stop dovecot").returncode == 0
    try:
        with _Smtp(mail, 25) as smtp:
            smtp.starttls(context=mail["context"])
            smtp.send_message(message, from_addr="reporter@example.org")
        time.sleep(2)
        queue = run("sudo postqueue -j").stdout
        assert f"abuse@{mail['domain']}" in queue, "the message should wait in the queue"
        assert run("sudo systemctl restart postfix").returncode == 0
        assert f"abuse@{mail['domain']}" in run("sudo postqueue -j").stdout
    finally:
        assert run("sudo systemctl start dovecot").returncode == 0
    run("sudo postqueue -f")
    raw = wait_in_mailbox(mail, "abuse", message["Subject"], timeout=90)
    assert message["Message-ID"].encode() in raw


def test_hard_bounce_reaches_the_bounce_mailbox_with_the_failed_address(mail):
    """The app sends with envelope sender bounce@: a message to an address that does not exist
    comes back as a DSN naming the failed recipient (the interface the app reads)."""
    missing = f"nobody-{uuid.uuid4().hex[:8]}@{mail['domain']}"
    _submit(mail, _message(mail, missing))
    # Without the app's VERP token the app's bounce reader moves it to Unprocessed.
    raw = wait_in_mailbox(mail, "bounce", missing, folders=("INBOX", "Unprocessed"))
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report"
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert f"Final-Recipient: rfc822; {missing}" in text
    assert "Action: failed" in text and "Status: 5." in text


class _SinkHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Postfix's client: EHLO, STARTTLS (when the server's
    ``offer_tls`` is set, with its self-signed certificate; AUTH is then offered only after
    it, as a provider does), AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        sink = self.server
        tls = False
        self.wfile.write(b"220 sink.lab.invalid ESMTP\r\n")
        envelope: dict = {"rcpt": []}
        while line := self.rfile.readline():
            verb = line.split()[0].upper() if line.split() else b""
            if verb in (b"EHLO", b"HELO"):
                offer_tls = sink.offer_tls and not tls
                self.wfile.write(b"250-sink.lab.invalid\r\n"
                                 + (b"250-STARTTLS\r\n" if offer_tls else b"")
                                 + (b"" if offer_tls else b"250-AUTH PLAIN\r\n")
                                 + b"250 8BITMIME\r\n")
            elif verb == b"STARTTLS" and sink.offer_tls and not tls:
                self.wfile.write(b"220 2.0.0 ready for TLS\r\n")
                self.connection = sink.tls.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb", buffering=0)
                tls = True
            elif verb == b"AUTH":
                parts = line.split()
                sink.logins.append({"tls": tls,
                                    "login": base64.b64decode(parts[2]).split(b"\0")[1:]})
                self.wfile.write(b"235 2.7.0 ok\r\n")
            elif verb == b"MAIL":
                envelope = {"from": line, "rcpt": [], "tls": tls}
                self.wfile.write(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                envelope["rcpt"].append(line)
                self.wfile.write(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b"".join(iter(lambda: self.rfile.readline(), b".\r\n"))
                sink.messages.append({**envelope, "data": data})
                self.wfile.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture()
def smarthost(stack, paths, tmp_path):
    """An SMTP sink on the controller's bridge address offering STARTTLS with a self-signed
    certificate, and the mail host converged to relay through it with a login and the
    production default mail_relayhost_tls: encrypt; converged back to direct delivery
    afterwards."""
    key, cert = tmp_path / "sink.key", tmp_path / "sink.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=sink.lab.invalid",
         "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    server = socketserver.ThreadingTCPServer((stack.gateway, 2525), _SinkHandler)
    server.daemon_threads = True
    server.messages, server.logins, server.offer_tls = [], [], True
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.load_cert_chain(cert, key)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mail_hosts = ",".join(h.name for h in stack.hosts if "mail" in h.roles)
    relay = {"mail_relayhost": f"[{stack.gateway}]:2525", "mail_relayhost_username": "podium",
             "mail_relayhost_password": "sink-password"}

    def converge(extra: dict) -> None:
        result = subprocess.run(
            [str(REPO / ".venv/bin/ansible-playbook"), "playbooks/site.yml", "-i",
             str(paths.inventory), "--limit", mail_hosts, "-e", json.dumps(extra)],
            cwd=REPO, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:]

    try:
        converge(relay)
        yield server
    finally:
        converge({})
        server.shutdown()
        server.server_close()


def _relayed(smarthost, message: EmailMessage, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in smarthost.messages if message["Message-ID"].encode() in m["data"]]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "nothing reached the smarthost"
        time.sleep(1)


def test_smarthost_path_requires_tls_and_relays_signed_mail_with_the_login(
        stack, paths, mail, smarthost):
    """With the production default (mail_relayhost_tls: encrypt) a smarthost that offers no
    STARTTLS gets nothing, not even the login (the mail waits, deferred); once it offers
    STARTTLS, the waiting mail and new mail are relayed, DKIM-signed, over TLS only."""
    run = lambda command: _on_mail_host(stack, paths, mail, command)  # noqa: E731
    assert run("/usr/sbin/postconf -h smtp_tls_security_level").stdout.strip() == "encrypt"
    smarthost.offer_tls = False
    waiting = _message(mail, "reader@example.org")
    _submit(mail, waiting)
    deadline = time.monotonic() + 60
    while "TLS is required" not in (queue := run("sudo postqueue -j").stdout):
        assert time.monotonic() < deadline, f"the message should wait, deferred: {queue}"
        time.sleep(1)
    assert "reader@example.org" in queue
    assert smarthost.messages == [] and smarthost.logins == []

    smarthost.offer_tls = True
    assert run("sudo postqueue -f").returncode == 0
    fresh = _message(mail, "reader@example.org")
    _submit(mail, fresh)
    for message in (waiting, fresh):
        relayed = _relayed(smarthost, message)
        assert relayed["tls"], "relayed without TLS"
        assert b"reader@example.org" in relayed["rcpt"][0]
        assert b"DKIM-Signature:" in relayed["data"]
    assert smarthost.logins and all(entry["tls"] for entry in smarthost.logins)
    assert {tuple(entry["login"]) for entry in smarthost.logins} == {(b"podium", b"sink-password")}


def test_renewal_by_certbot_alone_reaches_postfix_and_dovecot(stack, paths, mail):
    """certbot renew (what certbot.timer runs, here forced) gets a new certificate from the
    ACME CA and the deploy hook reloads the services: both serve the new one, no Ansible."""
    run = lambda command: _on_mail_host(stack, paths, mail, command, timeout=120)  # noqa: E731
    renew = run("sudo env REQUESTS_CA_BUNDLE=/etc/podium/acme/api-ca.pem "
                "certbot renew --force-renewal --no-random-sleep-on-renew --cert-name mail -q")
    assert renew.returncode == 0, renew.stderr
    lineage = run("sudo openssl x509 -in /etc/letsencrypt/live/mail/cert.pem -noout -serial")
    for port, starttls in ((587, "-starttls smtp"), (993, "")):
        served = run(f"openssl s_client -connect 127.0.0.1:{port} {starttls} </dev/null "
                     "2>/dev/null | openssl x509 -noout -serial")
        assert served.stdout == lineage.stdout, port


# --- the app's side: bounces marked, mail held while the mail server is down -------------

def _signup(where: dict, email_address: str) -> str:
    """Sign up through the edge (the app queues the confirmation mail); the username."""
    app = _json(_call(where, "POST", "/api/v1/apps", body={
        "client_name": "lab mail test", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read write"}))
    app_token = _json(_call(where, "POST", "/oauth/token", body={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "scope": "read write"}))["access_token"]
    name = f"m{uuid.uuid4().hex[:8]}"
    _json(_call(where, "POST", "/api/v1/accounts", token=app_token, body={
        "username": name, "email": email_address, "password": uuid.uuid4().hex,
        "agreement": True, "locale": "en"}))
    return name


def _admin_view(where: dict, token: str, username: str) -> dict:
    found = _json(_call(where, "GET", f"/api/v1/accounts/lookup?acct={username}"))
    return _json(_call(where, "GET", f"/api/v1/admin/accounts/{found['id']}", token=token))


@pytest.fixture(scope="module")
def admin_token(stack, paths, site, publisher) -> str:  # noqa: F811
    """A token of the publisher (an owner) that may read accounts as a moderator does."""
    out = _app_cli(stack, paths, site,
                   f"tokens create {publisher['name']} --scopes 'read admin:read:accounts'")
    return out.split("token: ")[1].split()[0]


def test_app_marks_an_address_that_bounced_hard(site, admin_token, mail):  # noqa: F811
    """app -> Postfix (VERP sender bounce+TOKEN@) -> no such user -> DSN -> bounce mailbox ->
    the worker (every minute) marks the account and removes the DSN from the mailbox."""
    missing = f"nobody-{uuid.uuid4().hex[:8]}@{mail['domain']}"
    name = _signup(site, missing)
    deadline = time.monotonic() + 180
    while not (seen := _admin_view(site, admin_token, name))["email_bounced_at"]:
        assert time.monotonic() < deadline, f"{missing} was never marked: {seen}"
        time.sleep(3)
    assert seen["email_bounce_detail"].startswith("5.1.1"), seen
    with Imap(mail) as imap:
        imap.login(f"bounce@{mail['domain']}", mail["password"]("bounce"))
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "TEXT", f'"{missing}"')
    assert not found[0], "the handled DSN should be gone from the bounce mailbox"


def _spf(stack, paths, mail, address: str, sender: str, helo: str) -> str:
    """SPF (RFC 7208) evaluated by pyspf on the mail host, against the lab DNS: the result for
    mail from ``sender`` arriving from ``address`` with ``helo``. Debian's python3-spf is
    installed for it (an evaluator independent of Postfix; the role does not need it)."""
    ensure_packages(stack, paths, mail["address"], "python3 -c 'import spf' 2>/dev/null",
                    ["python3-spf"])
    check = ("python3 -c 'import spf, sys; print(spf.check2(i=sys.argv[1], s=sys.argv[2], "
             f"h=sys.argv[3])[0])' {shlex.quote(address)} {shlex.quote(sender)} "
             f"{shlex.quote(helo)}")
    result = _on_mail_host(stack, paths, mail, check)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_app_confirmation_mail_is_dkim_signed_and_passes_spf(stack, paths, site, mail):  # noqa: F811
    """The app's own confirmation mail (sign-up through the edge, the worker submits it),
    read back over IMAPS: its DKIM signature verifies against the lab DNS, SPF for its
    envelope sender from the mail host's address passes (and fails from another lab host),
    and the From domain is the one both are aligned on (DMARC adkim=s, aspf=s)."""
    tag = uuid.uuid4().hex[:8]
    name = _signup(site, f"ops+confirm{tag}@{mail['domain']}")
    raw = wait_in_mailbox(mail, "ops", name, timeout=180)
    assert f"ops+confirm{tag}@".encode() in raw
    _assert_dkim_verifies(stack, paths, mail, raw)
    message = email.message_from_bytes(raw)
    sender = email.utils.parseaddr(message["Return-Path"])[1]
    author = email.utils.parseaddr(message["From"])[1]
    assert sender.rpartition("@")[2] == author.rpartition("@")[2] == mail["domain"], \
        (sender, author)
    helo = _on_mail_host(stack, paths, mail, "/usr/sbin/postconf -h myhostname").stdout.strip()
    assert _spf(stack, paths, mail, mail["address"], sender, helo) == "pass"
    other = next(str(h.address) for h in stack.hosts if "mail" not in h.roles)
    assert _spf(stack, paths, mail, other, sender, helo) == "fail"


def _wait_for_worker_retry(stack, paths, address: str, timeout: float = 300) -> str:
    """Wait until an app worker has tried to send mail to ``address``, failed and logged its
    retry (the job stays in the app's queue); that journal line."""
    # Every app host runs a worker, and any of them may take the job: read them all.
    app_hosts = [str(h.address) for h in stack.hosts if "app" in h.roles]
    deadline = time.monotonic() + timeout
    while True:
        logs = [ssh.run(paths, stack.admin.user, host,
                        "sudo journalctl -u podium-app-worker --since=-10min --no-pager",
                        timeout=240).stdout for host in app_hosts]
        for line in "\n".join(logs).splitlines():
            if f"mail to {address} failed" in line and "retrying" in line:
                return line
        assert time.monotonic() < deadline, "\n".join(log[-1000:] for log in logs)
        time.sleep(2)


def test_app_mail_sent_while_postfix_is_down_arrives_after_it_returns(
        stack, paths, site, mail):  # noqa: F811
    """Postfix on the mail host stopped: the app's confirmation mail fails to send, stays in
    the app's queue (arq retry with backoff) and arrives once Postfix is back."""
    run = lambda command: _on_mail_host(stack, paths, mail, command)  # noqa: E731
    tag = uuid.uuid4().hex[:8]
    assert run("sudo systemctl stop postfix").returncode == 0
    try:
        name = _signup(site, f"ops+down{tag}@{mail['domain']}")
        _wait_for_worker_retry(stack, paths, f"ops+down{tag}@{mail['domain']}")
    finally:
        assert run("sudo systemctl start postfix").returncode == 0
    raw = wait_in_mailbox(mail, "ops", name, timeout=240)
    assert f"ops+down{tag}@".encode() in raw


# Roles whose host must stay up for the app to take a sign-up and queue its mail.
_PLATFORM_ROLES = {"app", "postgres", "redis", "proxy", "edge"}


@pytest.fixture()
def mail_machine(stack, paths, mail):
    """The lab machine of the mail host, to stop and boot as a whole; skipped where that
    cannot show what the test is about. Booted again afterwards whatever happened."""
    if stack.provider != "local":
        pytest.skip(f"stack '{stack.name}' is on {stack.provider}: the tests stop only lab "
                    "machines")
    host = next(h for h in stack.hosts if str(h.address) == mail["address"])
    shared = sorted(_PLATFORM_ROLES & set(host.roles))
    if shared:
        pytest.skip(f"{host.name} also runs {', '.join(shared)}: with it stopped the platform "
                    "cannot take the sign-up whose mail this test follows")
    machine = Machine(stack, host, paths)
    running = machine.pid()
    assert running is not None, f"{host.name}'s machine is not running"
    yield machine
    # Leave the lab as found, whatever step failed: the host up, Dovecot running.
    if machine.pid() is None:
        machine.boot()
        lab.wait_all(stack, paths, [machine], Progress(total=1))
    _on_mail_host(stack, paths, mail, "sudo systemctl start dovecot")
    if os.environ.get("PODIUM_LAB_DISPOSABLE") == "1":
        # ./podium test booted this stack and tears it down next: a converge would be waste.
        print("\nnot converging after pebble's restart: the stack is torn down next")
    elif "acme" in host.roles and machine.pid() != running:
        # pebble came back with a new root (it keeps nothing on disk): converge, so that the
        # exported root, every certificate and every host trusting it agree again
        # (roles/acme/README.md). Without it the next converge of only some hosts leaves the
        # others' certificates chaining to a root nobody trusts any more.
        began = time.monotonic()
        run_playbook(paths, "playbooks/site.yml", "after-mail-host-stop", echo=False)
        print(f"\nconverged after pebble's restart in {time.monotonic() - began:.0f}s")


def _queued(stack, paths, mail, sender: str) -> list[dict]:
    """Postfix's queue entries (postqueue -j) of the envelope ``sender``."""
    out = _on_mail_host(stack, paths, mail, "sudo postqueue -j").stdout
    return [e for e in map(json.loads, out.splitlines()) if e["sender"] == sender]


def _answers(address: str, port: int) -> bool:
    """True when something accepts a TCP connection on ``address``:``port``."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.drill
def test_mail_sent_while_the_mail_host_is_stopped_is_delivered_after_it_returns(
        stack, paths, site, mail, mail_machine):  # noqa: F811
    """The whole mail host stopped (a clean power-off, what `machinectl poweroff` does: SIGTERM
    to its nspawn) and booted again (`up`'s path). Nothing is lost on either side:

    - Postfix's queue: a message accepted on port 25 while Dovecot (delivery) was stopped
      waits, deferred, in the queue on disk; it is still there after the power-off and is
      delivered. (Postfix would retry it by itself minimal_backoff_time, 300 s, after it was
      deferred; the test flushes the queue instead of waiting.)
    - the app's queue: a sign-up while the host is off; the worker's attempt fails (seen:
      "timed out", "No route to host"; the host name still resolves, from /etc/hosts, with
      the lab DNS on the stopped host) and the job waits in Redis (arq, backoff 5 s
      doubling); once the host is back the confirmation mail arrives, untouched by anyone,
      and is read back over IMAPS.

    Marked drill (it runs in the lab tier's drill pass, after the other lab tests): where the
    lab's ACME CA lives on the mail host, pebble comes back with a new root (it keeps nothing
    on disk), and the fixture converges site.yml afterwards so that certificates, the
    exported root and the hosts trusting it agree again. Prints the delays measured
    (docs/perf.md)."""
    run = lambda command: _on_mail_host(stack, paths, mail, command)  # noqa: E731
    host = mail_machine.host.name
    tag = uuid.uuid4().hex[:8]
    queued = _message(mail, f"abuse@{mail['domain']}", sender="reporter")
    queued.replace_header("Subject", f"queued before the power-off {tag}")
    reporter = f"reporter-{tag}@example.org"
    assert run("sudo systemctl stop dovecot").returncode == 0
    with _Smtp(mail, 25) as smtp:
        smtp.starttls(context=mail["context"])
        smtp.send_message(queued, from_addr=reporter)
    deadline = time.monotonic() + 60
    while (states := [e["queue_name"] for e in _queued(stack, paths, mail, reporter)]) \
            != ["deferred"]:
        assert time.monotonic() < deadline, f"the message should wait, deferred: {states}"
        time.sleep(1)

    stopped = time.monotonic()
    mail_machine.stop(timeout=60)
    assert mail_machine.pid() is None and not _answers(mail["address"], 587), \
        f"{host} should be off"
    address = f"ops+hostdown{tag}@{mail['domain']}"
    name = _signup(site, address)
    failed = _wait_for_worker_retry(stack, paths, address)

    booted = time.monotonic()
    mail_machine.boot()
    lab.wait_all(stack, paths, [mail_machine], Progress(total=1))
    ssh_back = time.monotonic()
    deadline = ssh_back + 120
    while not _answers(mail["address"], 587):
        assert time.monotonic() < deadline, f"{host} booted but port 587 never answered"
        time.sleep(0.5)
    back = time.monotonic()

    raw = wait_in_mailbox(mail, "ops", name, timeout=600)
    arrived = time.monotonic()
    assert address.encode() in raw
    assert _queued(stack, paths, mail, reporter) or \
        _in_mailbox(mail, "abuse", queued["Subject"]), "the queued message was lost"
    assert run("sudo postqueue -f").returncode == 0
    raw = wait_in_mailbox(mail, "abuse", queued["Subject"], timeout=120)
    assert queued["Message-ID"].encode() in raw
    reason = re.search(r"failed \((.*)\), retrying", failed)
    print(f"\nmail host stopped: {host} off for {booted - stopped:.0f}s (signed up, the "
          f"worker failed: {reason.group(1) if reason else failed}); boot to SSH and cloud-init "
          f"{ssh_back - booted:.1f}s, to port 587 {back - booted:.1f}s; app mail in the "
          f"mailbox {arrived - back:.1f}s after 587 answered, {arrived - stopped:.0f}s after "
          "the stop")


def _in_mailbox(mail: dict, account: str, needle: str) -> bool:
    """Whether ``account``'s INBOX holds a message containing ``needle`` (no waiting)."""
    try:
        wait_in_mailbox(mail, account, needle, timeout=0)
    except AssertionError:
        return False
    return True
