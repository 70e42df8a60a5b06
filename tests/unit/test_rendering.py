"""What the kit writes for hosts: cloud-init seed and Ansible inventory."""

from __future__ import annotations

import re

import yaml

from kit import cloudinit, inventory
from kit.paths import StackPaths
from kit.stack import load_stack

LAB_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyForTestsOnly podium-lab-test"


def test_user_data_is_cloud_config_with_admin_and_key():
    stack = load_stack("local")
    host = stack.host("db1")
    text = cloudinit.user_data(stack, host, [LAB_KEY], "http://10.213.0.1:3149")
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data["hostname"] == "db1"
    assert data["fqdn"] == "db1.podium.test"
    assert data["ssh_pwauth"] is False
    assert data["disable_root"] is True
    (admin,) = data["users"]
    assert admin["name"] == stack.admin.user
    assert admin["ssh_authorized_keys"] == [LAB_KEY]
    assert admin["lock_passwd"] is True
    assert data["apt"]["proxy"] == "http://10.213.0.1:3149"
    # Ansible's prerequisites arrive with first boot, on stock cloud images too.
    assert {"python3", "python3-apt"} <= set(data["packages"])


def test_user_data_without_proxy_has_no_apt_section():
    stack = load_stack("local")
    data = yaml.safe_load(cloudinit.user_data(stack, stack.hosts[0], [LAB_KEY]))
    assert "apt" not in data


def test_network_config_gives_the_stack_address_and_gateway():
    stack = load_stack("local")
    data = yaml.safe_load(cloudinit.network_config(stack, stack.host("edge2")))
    assert data["version"] == 2
    assert data["ethernets"]["host0"]["addresses"] == ["10.213.0.12/24"]
    assert data["ethernets"]["host0"]["routes"] == [{"to": "0.0.0.0/0", "via": "10.213.0.1"}]


def test_seed_files_are_written_private(tmp_path):
    stack = load_stack("local-mini")
    cloudinit.write_seed(tmp_path, stack, stack.hosts[0], [LAB_KEY], "", "iid-1")
    seed = tmp_path / cloudinit.SEED_DIR
    assert yaml.safe_load((seed / "meta-data").read_text())["instance-id"] == "iid-1"
    assert {p.name for p in seed.iterdir()} == {"user-data", "meta-data", "network-config"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in seed.iterdir())


def test_inventory_groups_hosts_by_role(tmp_path):
    stack = load_stack("local")
    inv = inventory.build(stack, StackPaths("local"), LAB_KEY)
    children = inv["all"]["children"]
    assert set(children["edge"]["hosts"]) == {"edge1", "edge2"}
    assert set(children["redis"]["hosts"]) == {"store1"}
    assert set(children["media"]["hosts"]) == {"store1"}
    assert "common" not in children


def test_inventory_host_and_stack_variables():
    stack = load_stack("local")
    inv = inventory.build(stack, StackPaths("local"), LAB_KEY)
    db1 = inv["all"]["hosts"]["db1"]
    assert db1["ansible_host"] == db1["podium_private_address"] == "10.213.0.41"
    assert db1["podium_roles"] == ["postgres"]
    stack_vars = inv["all"]["vars"]
    assert stack_vars["ansible_user"] == "podium"
    assert stack_vars["podium_admin_ssh_keys"] == [LAB_KEY]
    assert stack_vars["podium_operator_cidrs"] == ["10.213.0.1/32"]
    assert "StrictHostKeyChecking=yes" in stack_vars["ansible_ssh_common_args"]


def test_inventory_file_round_trips(tmp_path):
    stack = load_stack("local-mini")
    path = tmp_path / "inventory.yml"
    inventory.write(inventory.build(stack, StackPaths("local-mini"), LAB_KEY), path)
    loaded = yaml.safe_load(path.read_text())
    assert loaded["all"]["children"]["app"]["hosts"] == {"solo": None}
    assert not path.with_suffix(".tmp").exists()


def test_dns_records_point_the_platform_at_the_edges_and_mail_at_the_mail_host():
    from kit.dns_records import records

    stack = load_stack("local")
    ipv4 = {h.name: str(h.address) for h in stack.hosts}
    by_key = {(r.name, r.type): r.values for r in records(stack, ipv4, {})}
    assert by_key[("@", "A")] == ("10.213.0.11", "10.213.0.12")  # edge1, edge2
    assert by_key[("media", "A")] == by_key[("@", "A")]
    assert by_key[("@", "MX")] == ("10 mail1.podium.test.",)
    assert by_key[("@", "TXT")] == ('"v=spf1 mx -all"',)
    assert "p=quarantine" in by_key[("_dmarc", "TXT")][0]
    assert by_key[("_mta-sts", "TXT")][0].startswith('"v=STSv1;')
    assert by_key[("_smtp._tls", "TXT")][0].startswith('"v=TLSRPTv1;')
    assert by_key[("db1", "A")] == ("10.213.0.41",)


def test_mta_sts_policy_names_the_mx_and_its_hash_is_the_published_id():
    from kit.dns_records import mta_sts_id, mta_sts_policy, records

    stack = load_stack("local")
    ipv4 = {h.name: str(h.address) for h in stack.hosts}
    policy = mta_sts_policy(stack)
    assert policy is not None and policy.endswith("\r\n")
    fields = dict(line.split(": ", 1) for line in policy.split("\r\n") if line)
    assert fields == {"version": "STSv1", "mode": "enforce", "mx": "mail1.podium.test",
                      "max_age": "604800"}
    by_key = {(r.name, r.type): r.values for r in records(stack, ipv4, {})}
    assert by_key[("_mta-sts", "TXT")] == (f'"v=STSv1; id={mta_sts_id(policy)}"',)
    assert by_key[("mta-sts", "A")] == by_key[("@", "A")]  # served by the edges
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", mta_sts_id(policy))  # RFC 8461's id syntax


def test_mta_sts_id_changes_when_the_policy_does():
    from kit.dns_records import mta_sts_id, mta_sts_policy, records

    stack = load_stack("local")
    moved = stack.model_copy(update={"hosts": [
        h.model_copy(update={"name": "mail9"}) if "mail" in h.roles else h for h in stack.hosts]})
    assert "mx: mail9.podium.test\r\n" in mta_sts_policy(moved)
    assert mta_sts_id(mta_sts_policy(moved)) != mta_sts_id(mta_sts_policy(stack))
    ids = [next(r.values for r in records(s, {h.name: str(h.address) for h in s.hosts}, {})
                if r.name == "_mta-sts") for s in (stack, moved)]
    assert ids[0] != ids[1]


def test_no_mta_sts_policy_without_a_mail_host():
    from kit.dns_records import mta_sts_policy

    stack = load_stack("local")
    bare = stack.model_copy(update={"hosts": [h for h in stack.hosts if "mail" not in h.roles]})
    assert mta_sts_policy(bare) is None
    built = inventory.build(bare, StackPaths("local"), LAB_KEY)
    assert built["all"]["vars"]["podium_mta_sts_policy"] == ""
    assert inventory.build(stack, StackPaths("local"), LAB_KEY)["all"]["vars"][
        "podium_mta_sts_policy"] == mta_sts_policy(stack)


def test_dkim_record_is_published_at_its_selector_split_into_txt_strings():
    from kit.dns_records import Dkim, records

    stack = load_stack("local")
    ipv4 = {h.name: str(h.address) for h in stack.hosts}
    body = "A" * 392  # the length of a 2048-bit RSA public key in base64
    pem = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(
        body[i:i + 64] for i in range(0, len(body), 64)) + "\n-----END PUBLIC KEY-----\n"
    by_key = {(r.name, r.type): r.values for r in records(stack, ipv4, {}, dkim=[Dkim("s1", pem)])}
    (value,) = by_key[("s1._domainkey", "TXT")]
    strings = value[1:-1].split('" "')
    assert all(len(s) <= 255 for s in strings)
    assert "".join(strings) == "v=DKIM1; k=rsa; p=" + body
    assert ("s1._domainkey", "TXT") not in {(r.name, r.type) for r in records(stack, ipv4, {})}


def test_dkim_from_secrets_reads_only_the_keys_that_exist(tmp_path):
    from kit.dns_records import dkim_from_secrets

    (tmp_path / "dkim").mkdir()
    (tmp_path / "dkim" / "new.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----\n")
    assert [k.selector for k in dkim_from_secrets(tmp_path, ["new", "missing"])] == ["new"]


def test_ptr_records_map_each_lab_address_back_to_its_host():
    from kit.dns_records import ptr_records, reverse_zone

    stack = load_stack("local")
    ipv4 = {h.name: str(h.address) for h in stack.hosts}
    assert reverse_zone("10.213.0.0/24") == "0.213.10.in-addr.arpa"
    assert reverse_zone("10.20.0.0/16") == "20.10.in-addr.arpa"
    ptr = {r.name: r.values for r in ptr_records(stack, ipv4)}
    mail = next(h for h in stack.hosts if "mail" in h.roles)
    assert ptr[str(mail.address).split(".")[-1]] == (f"{mail.name}.podium.test.",)
    assert len(ptr) == len(stack.hosts)


def test_inventory_carries_the_zone_for_the_lab_dns_role():
    stack = load_stack("local-mini")
    built = inventory.build(stack, StackPaths("local-mini"), LAB_KEY)["all"]["vars"]
    types = {(r["name"], r["type"]) for r in built["podium_dns_records"]}
    assert {("@", "MX"), ("_dmarc", "TXT"), ("solo", "A")} <= types
    assert built["podium_dns_reverse_zone"] == "1.213.10.in-addr.arpa"
    assert built["podium_dns_reverse_records"] == [
        {"name": "10", "type": "PTR", "values": ["solo.podium.test."], "ttl": 300}]
