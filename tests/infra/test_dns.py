"""The dns role: NSD serves the records kit/dns_records.py gives the cloud stacks (through the
inventory), the DKIM key the mail role generated, the lab's PTR zone; every host resolves
through it. Expected values come from the inventory and the controller's secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import testinfra
import yaml

from kit.dns_records import dkim_value

REPO = Path(__file__).resolve().parents[2]
# The signing selector is set in the mail role's wiring (not in the inventory).
SELECTOR = yaml.safe_load(
    (REPO / "playbooks/group_vars/all/mail.yml").read_text())["mail_dkim_selector"]

testinfra_hosts = ["ansible://dns"]


def _dig(host, address: str, *query: str) -> list[str]:
    result = host.run("dig +short +time=2 +tries=1 @%s " + " ".join(["%s"] * len(query)),
                      address, *query)
    assert result.rc == 0, result.stderr
    return result.stdout.split("\n")[:-1] if result.stdout else []


def test_nsd_is_running_and_enabled(host):
    service = host.service("nsd")
    assert service.is_running
    assert service.is_enabled


def test_nsd_listens_on_the_private_address_and_loopback_only(host, host_vars):
    udp53 = {s.split("://")[1].rsplit(":", 1)[0] for s in host.socket.get_listening_sockets()
             if s.startswith("udp://") and s.endswith(":53")}
    assert udp53 == {"127.0.0.1", host_vars["podium_private_address"]}


def test_zone_serves_every_record_of_kit_dns_records(host, host_vars, stack_vars):
    domain = stack_vars["podium_domain"]
    address = host_vars["podium_private_address"]
    for record in stack_vars["podium_dns_records"]:
        if not record["values"]:
            continue
        name = domain if record["name"] == "@" else f"{record['name']}.{domain}"
        got = _dig(host, address, name, record["type"])
        assert sorted(got) == sorted(record["values"]), (name, record["type"])


def test_dkim_record_is_the_mail_roles_public_key(host, host_vars, stack_vars):
    selector = SELECTOR
    key = Path(stack_vars["podium_secrets_dir"]) / "dkim" / f"{selector}.pub"
    if not key.is_file():
        pytest.skip("the stack has no mail host (no DKIM key)")
    got = _dig(host, host_vars["podium_private_address"],
               f"{selector}._domainkey.{stack_vars['podium_domain']}", "TXT")
    assert len(got) == 1
    # dig prints the record's strings quoted and space separated; joined they are one value.
    assert "".join(got[0].strip('"').split('" "')) == dkim_value(key.read_text())


def test_reverse_zone_maps_every_host_back_to_its_name(host, host_vars, stack_vars):
    for entry in stack_vars["podium_hosts"]:
        got = _dig(host, host_vars["podium_private_address"], "-x", entry["address"])
        assert got == [f"{entry['name']}.{stack_vars['podium_domain']}."]


def test_names_outside_the_lab_zones_are_refused(host, host_vars):
    result = host.run("dig +time=2 +tries=1 @%s example.com A", host_vars["podium_private_address"])
    assert "status: REFUSED" in result.stdout


# Runs on each host with its own python3: asks the first name server of /etc/resolv.conf for
# the zone's SOA and prints the response code and the number of answers.
_PROBE = """
import random, socket, struct, sys
server = next(l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver'))
qid = random.randrange(65536)
name = b''.join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split('.')) + b'\\0'
query = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0) + name + struct.pack('>HH', 6, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(query, (server, 53)); data = s.recv(4096)
rid, flags, _, answers = struct.unpack('>HHHH', data[:8])
print(server, rid == qid, flags & 0xF, answers)
"""


def test_every_host_resolves_the_zone_through_the_lab_dns(pytestconfig, stack_vars, host_vars):
    inventory = pytestconfig.option.ansible_inventory
    for entry in stack_vars["podium_hosts"]:
        other = testinfra.get_host(f"ansible://{entry['name']}?ansible_inventory={inventory}")
        result = other.run("python3 -c %s %s", _PROBE, stack_vars["podium_domain"])
        assert result.rc == 0, (entry["name"], result.stderr)
        server, id_ok, rcode, answers = result.stdout.split()
        assert (server, id_ok, rcode) == (host_vars["podium_private_address"], "True", "0"), entry
        assert int(answers) == 1, entry
