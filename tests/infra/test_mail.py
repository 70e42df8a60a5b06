"""The mail role: Postfix, Dovecot and OpenDKIM running; only 25, 587 and 993 reachable from
another lab host (ports the role does not own closed); the certificate valid for the MX name
and chaining to the lab CA; the DKIM key in use is the one published."""

from __future__ import annotations

from pathlib import Path

import pytest
import testinfra
import yaml
from exporter_checks import listening_addresses, metrics_port, samples, scrape, value

REPO = Path(__file__).resolve().parents[2]
# The signing selector is set in the mail role's wiring (not in the inventory).
SELECTOR = yaml.safe_load(
    (REPO / "playbooks/group_vars/all/mail.yml").read_text())["mail_dkim_selector"]

# The role's values as the kit configures them: its defaults, overridden by the wiring.
ROLE_VALUES = {
    **yaml.safe_load((REPO / "roles/mail/defaults/main.yml").read_text()),
    **yaml.safe_load((REPO / "playbooks/group_vars/all/mail.yml").read_text()),
}

testinfra_hosts = ["ansible://mail"]


@pytest.mark.parametrize("service", ["postfix", "dovecot", "opendkim", "fail2ban"])
def test_mail_services_are_running_and_enabled(host, service):
    assert host.service(service).is_running
    assert host.service(service).is_enabled


@pytest.mark.parametrize("port", [25, 587, 993])
def test_mail_ports_listen_on_every_address(host, port):
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


@pytest.mark.parametrize("port", [110, 143, 465, 995, 8891])
def test_no_other_mail_port_listens_outside_loopback(host, port):
    for prefix in ("0.0.0.0", "::"):
        assert not host.socket(f"tcp://{prefix}:{port}").is_listening


def test_dkim_milter_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:8891").is_listening


def _other_host(pytestconfig, stack_vars, host_vars):
    """A lab host that is not the mail host, to probe its ports from the network."""
    me = host_vars["podium_private_address"]
    others = [h for h in stack_vars["podium_hosts"] if h["address"] != me]
    if not others:
        pytest.skip("the stack has one host: nothing to probe from")
    inventory = pytestconfig.option.ansible_inventory
    return testinfra.get_host(f"ansible://{others[0]['name']}?ansible_inventory={inventory}")


@pytest.mark.parametrize(("port", "open_"), [
    (25, True), (587, True), (993, True),
    (22, False),  # SSH: the operator's addresses only
    (80, False),  # ACME http-01: open in the firewall, but certbot listens only while it runs
    (143, False), (110, False), (465, False), (8891, False), (15000, False),
])
def test_from_another_host_only_the_mail_ports_answer(pytestconfig, stack_vars, host_vars,
                                                      port, open_):
    other = _other_host(pytestconfig, stack_vars, host_vars)
    probe = other.run("timeout 3 bash -c %s",
                      f"</dev/tcp/{host_vars['podium_private_address']}/{port}")
    assert (probe.rc == 0) is open_, probe


@pytest.mark.parametrize(("port", "starttls"), [(25, "smtp"), (587, "smtp"), (993, None)])
def test_certificate_is_valid_for_the_mx_name_and_chains_to_the_lab_ca(host, stack_vars,
                                                                       port, starttls):
    name = f"{host.backend.get_hostname()}.{stack_vars['podium_domain']}"
    with host.sudo():
        result = host.run(
            "openssl s_client -connect 127.0.0.1:%s " + ("-starttls smtp " if starttls else "")
            + "-servername %s -verify_hostname %s -CAfile /etc/podium/acme/root.pem "
            "-verify_return_error -brief </dev/null", str(port), name, name)
    assert result.rc == 0, result.stderr
    assert "Verification: OK" in result.stderr


def test_certificate_renews_while_an_edge_on_the_same_host_holds_port_80(host, inventory):
    """Decision 0262: certbot's standalone challenge stops the edge's nginx for its seconds on
    port 80 (hooks stored in the lineage) and starts it again. A dry run against the CA runs
    the same challenge and hooks as certbot.timer's renewal."""
    name = host.backend.get_hostname()
    if name not in (inventory["all"]["children"].get("edge") or {}).get("hosts", {}):
        pytest.skip("the edge is on another host: port 80 is free for certbot")
    with host.sudo():
        renewal = host.file("/etc/letsencrypt/renewal/mail.conf").content_string
        # --dry-run switches to Let's Encrypt's staging CA unless the server is given.
        (server,) = [line.split("=", 1)[1].strip() for line in renewal.splitlines()
                     if line.startswith("server =")]
        result = host.run("REQUESTS_CA_BUNDLE=/etc/podium/acme/api-ca.pem certbot renew "
                          "--cert-name mail --dry-run --no-random-sleep-on-renew --server %s",
                          server)
    assert "pre_hook = systemctl stop nginx" in renewal
    assert result.rc == 0, result.stdout + result.stderr
    assert host.service("nginx").is_running
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_signing_key_is_the_published_one(host, stack_vars):
    """The private key OpenDKIM signs with derives the public key in the secrets (and DNS)."""
    public = (Path(stack_vars["podium_secrets_dir"]) / "dkim" / f"{SELECTOR}.pub").read_text()
    with host.sudo():
        derived = host.run("openssl pkey -in /etc/opendkim/keys/%s.private -pubout", SELECTOR)
    assert derived.rc == 0
    assert derived.stdout.strip() == public.strip()


def test_postfix_exporter_listens_on_the_private_address_only(host, host_vars, stack_vars):
    assert host.service("prometheus-postfix-exporter").is_enabled
    assert listening_addresses(host, metrics_port(stack_vars, "mail", "postfix")) == {
        host_vars["podium_private_address"]}


def test_postfix_exporter_reads_the_queue(host, host_vars, stack_vars):
    """The queue figures MailQueueGrowing reads: one histogram per Postfix queue."""
    text = scrape(host, host_vars["podium_private_address"],
                  metrics_port(stack_vars, "mail", "postfix"))
    assert value(text, "postfix_up") == 1
    queues = samples(text, "postfix_showq_message_age_seconds_count")
    assert any('queue="deferred"' in labels for labels in queues), queues


def _postconf(host, *args: str) -> str:
    """postconf's output (by full path: /usr/sbin is not on the admin user's PATH)."""
    result = host.run_expect([0], " ".join(["/usr/sbin/postconf", *args]))
    return result.stdout


@pytest.mark.parametrize(("parameter", "variable"), [
    ("message_size_limit", "mail_message_size_limit"),
    ("smtpd_recipient_limit", "mail_recipient_limit"),
    ("smtpd_client_message_rate_limit", "mail_client_message_rate_limit"),
    ("smtpd_client_connection_rate_limit", "mail_client_connection_rate_limit"),
    ("smtpd_client_auth_rate_limit", "mail_client_auth_rate_limit"),
])
def test_postfix_limits_are_the_roles(host, parameter, variable):
    assert _postconf(host, "-h", parameter).strip() == str(ROLE_VALUES[variable])


def test_submission_has_its_own_message_rate_limit(host):
    value = _postconf(host, "-P", "submission/inet/smtpd_client_message_rate_limit")
    assert value.strip().endswith(f"= {ROLE_VALUES['mail_submission_message_rate_limit']}")


def test_client_rate_limits_are_counted_by_anvil_per_minute(host):
    """The rate limits above are anvil's counts: the service exists, its window is a minute
    (the unit the role's variables are in), and only loopback is exempt."""
    assert _postconf(host, "-M", "anvil/unix").split()[-1] == "anvil"
    assert _postconf(host, "-h", "anvil_rate_time_unit").strip() == "60s"
    exempt = _postconf(host, "-xh", "smtpd_client_event_limit_exceptions").split()
    assert exempt == _postconf(host, "-xh", "mynetworks").split()
    assert all(n.startswith(("127.", "[::1]", "[::ffff:127.")) for n in exempt), exempt
