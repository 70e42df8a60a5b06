"""The Pulumi program at Scaleway under pulumi.runtime.set_mocks: one property a test,
for every Scaleway stack file in infra/stacks/ (no CLI, no cloud)."""

from __future__ import annotations

import re

import pulumi
import pytest

from kit import cloudinit, dkim
from kit.dns_records import dkim_from_secrets, records
from kit.firewall import rules_for
from kit.paths import STACKS_DIR, StackPaths
from kit.pulumi_mocks import install, settled
from kit.stack import load_stack, role_ports

SCALEWAY_STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS_DIR.glob("Pulumi.*.yaml")
    if "podium:provider: scaleway" in p.read_text()
)
PRIVATE_ONLY_PORTS = {5432, 6432, 6379, 22, 8081, 587, 8432}
WORLD = {"0.0.0.0/0", "::/0"}


def test_there_are_scaleway_stacks():
    assert {"scaleway", "scaleway-mini"} <= set(SCALEWAY_STACKS)


@pytest.fixture(params=SCALEWAY_STACKS)
def built(request, tmp_path, monkeypatch):
    """(stack, recorder, platform) after running the program for one stack under mocks."""
    # The stack's DKIM keys, as `./podium up` makes them before `pulumi up`.
    monkeypatch.setattr(StackPaths, "secrets", property(lambda self: tmp_path / self.stack))
    dkim.ensure_keys(StackPaths(request.param).secrets)
    recorder = install(request.param)
    from topology import build

    stack = load_stack(request.param)
    return stack, recorder, build(stack)


def _of(recorder, kind: str) -> dict[str, dict]:
    return dict(recorder.of_type(f"scaleway:{kind}"))


def _id(recorder, kind: str, name: str) -> str:
    return recorder.ids[(f"scaleway:{kind}", name)]


@pulumi.runtime.test
def test_every_server_has_its_roles_rules_and_no_others(built):
    stack, recorder, platform = built

    def check():
        groups = _of(recorder, "instance/securityGroup:SecurityGroup")
        for host in stack.hosts:
            group = groups[f"{host.name}-fw"]
            got = {(r["protocol"].lower(), r["port"], r["ipRange"])
                   for r in group["inboundRules"] if r["protocol"] != "ICMP"}
            want = {(r.proto, r.port, source) for r in rules_for(stack, host)
                    for source in r.sources}
            assert got == want, host.name
            assert group["inboundDefaultPolicy"] == "drop"
    return settled(platform, check)


@pulumi.runtime.test
def test_each_server_uses_its_own_security_group(built):
    stack, recorder, platform = built

    def check():
        servers = _of(recorder, "instance/server:Server")
        for host in stack.hosts:
            assert servers[host.name]["securityGroupId"] == _id(
                recorder, "instance/securityGroup:SecurityGroup", f"{host.name}-fw")
    return settled(platform, check)


@pulumi.runtime.test
def test_no_rule_opens_database_redis_origin_or_ssh_to_the_world(built):
    _, recorder, platform = built

    def check():
        for name, group in _of(recorder, "instance/securityGroup:SecurityGroup").items():
            for rule in group["inboundRules"]:
                if rule["protocol"] != "ICMP":
                    assert not (rule["ipRange"] in WORLD
                                and rule["port"] in PRIVATE_ONLY_PORTS), (name, rule)
    return settled(platform, check)


@pulumi.runtime.test
def test_servers_are_in_the_private_network_at_their_address(built):
    stack, recorder, platform = built

    def check():
        network_id = _id(recorder, "network/privateNetwork:PrivateNetwork", "private")
        (network,) = _of(recorder, "network/privateNetwork:PrivateNetwork").values()
        assert network["ipv4Subnet"]["subnet"] == stack.network.cidr
        reservations = _of(recorder, "ipam/ip:Ip")
        nics = _of(recorder, "instance/privateNic:PrivateNic")
        for host in stack.hosts:
            nic = nics[f"{host.name}-private"]
            assert nic["serverId"] == _id(recorder, "instance/server:Server", host.name)
            assert nic["privateNetworkId"] == network_id
            (reserved,) = nic["ipamIpIds"]
            assert reserved == _id(recorder, "ipam/ip:Ip", f"{host.name}-private")
            assert reservations[f"{host.name}-private"]["address"] == str(host.address)
            assert reservations[f"{host.name}-private"]["sources"] == [
                {"privateNetworkId": network_id}]
    return settled(platform, check)


@pulumi.runtime.test
def test_servers_are_in_a_placement_group_of_their_zone(built):
    stack, recorder, platform = built

    def check():
        groups = _of(recorder, "instance/placementGroup:PlacementGroup")
        zone_of_group = {_id(recorder, "instance/placementGroup:PlacementGroup", name): g["zone"]
                         for name, g in groups.items()}
        assert all(g["policyType"] == "max_availability" for g in groups.values())
        servers = _of(recorder, "instance/server:Server")
        members: dict[str, int] = {}
        for host in stack.hosts:
            group = servers[host.name]["placementGroupId"]
            assert zone_of_group[group] == host.location == servers[host.name]["zone"]
            members[group] = members.get(group, 0) + 1
        assert max(members.values()) <= 20
    return settled(platform, check)


@pulumi.runtime.test
def test_servers_are_tagged_with_stack_and_roles(built):
    stack, recorder, platform = built

    def check():
        servers = _of(recorder, "instance/server:Server")
        for host in stack.hosts:
            tags = set(servers[host.name]["tags"])
            assert f"podium-stack={stack.name}" in tags
            assert {t for t in tags if t.startswith("podium-role=")} == {
                f"podium-role={r}" for r in host.roles}
    return settled(platform, check)


@pulumi.runtime.test
def test_user_data_is_the_labs_template_for_the_same_host(built):
    stack, recorder, platform = built

    def check():
        servers = _of(recorder, "instance/server:Server")
        for host in stack.hosts:
            assert servers[host.name]["userData"] == {
                "cloud-init": cloudinit.user_data(stack, host, list(stack.admin.ssh_keys))}
    return settled(platform, check)


@pulumi.runtime.test
def test_data_hosts_get_a_volume_attached_and_others_none(built):
    stack, recorder, platform = built

    def check():
        volumes = _of(recorder, "block/volume:Volume")
        data_hosts = {h.name for h in stack.hosts
                      if {"postgres", "media", "backup"} & set(h.roles)}
        assert {name.removesuffix("-data") for name in volumes} == data_hosts
        servers = _of(recorder, "instance/server:Server")
        for host in stack.hosts:
            attached = servers[host.name].get("additionalVolumeIds", [])
            if host.name in data_hosts:
                assert attached == [_id(recorder, "block/volume:Volume", f"{host.name}-data")]
                assert volumes[f"{host.name}-data"]["zone"] == host.location
            else:
                assert attached == []
    return settled(platform, check)


@pulumi.runtime.test
def test_mail_host_has_reverse_dns_matching_its_mx_name(built):
    stack, recorder, platform = built

    def check():
        mail_hosts = [h for h in stack.hosts if "mail" in h.roles]
        rdns = _of(recorder, "instance/ipReverseDns:IpReverseDns")
        assert len(rdns) == len(mail_hosts)  # IPv4 (IPv6 not provisioned at Scaleway yet)
        mx = [r for r in _of(recorder, "domain/record:Record").values() if r["type"] == "MX"]
        for host in mail_hosts:
            entry = rdns[f"{host.name}-rdns-v4"]
            assert entry["ipId"] == _id(recorder, "instance/ip:Ip", f"{host.name}-ipv4")
            assert entry["reverse"] == f"{host.name}.{stack.domain}"
            assert {r["data"] for r in mx} == {f"{host.name}.{stack.domain}."}
    return settled(platform, check)


@pulumi.runtime.test
def test_load_balancer_targets_exactly_the_app_hosts_on_the_private_network(built):
    stack, recorder, platform = built

    def check():
        lbs = _of(recorder, "loadbalancers/loadBalancer:LoadBalancer")
        if stack.load_balancer != "provider":
            assert lbs == {}
            return
        ((lb_name, lb),) = lbs.items()
        assert lb["assignFlexibleIp"] is False  # no public face: edges reach it privately
        assert lb["privateNetworks"] == [{
            "privateNetworkId": _id(recorder, "network/privateNetwork:PrivateNetwork", "private"),
            "ipamIds": _id(recorder, "ipam/ip:Ip", f"{lb_name}-private")}]
        assert _of(recorder, "ipam/ip:Ip")[f"{lb_name}-private"]["address"] == (
            stack.load_balancer_address)
        ((_, backend),) = _of(recorder, "loadbalancers/backend:Backend").items()
        assert sorted(backend["serverIps"]) == sorted(
            str(h.address) for h in stack.hosts if "app" in h.roles)
        assert backend["healthCheckHttp"]["uri"] == "/readyz"
        app_port = role_ports()["app"][0]["port"]
        assert backend["forwardPort"] == backend["healthCheckPort"] == app_port
        ((_, frontend),) = _of(recorder, "loadbalancers/frontend:Frontend").items()
        assert frontend["inboundPort"] == role_ports()["proxy"][0]["port"]
        assert frontend["lbId"] == backend["lbId"] == _id(
            recorder, "loadbalancers/loadBalancer:LoadBalancer", lb_name)
    return settled(platform, check)


@pulumi.runtime.test
def test_dns_records_are_the_kits_record_data(built):
    """Read back into (name, type, values): exactly what kit.dns_records gives."""
    stack, recorder, platform = built
    names = list(platform.servers)

    def unquoted(record) -> frozenset:
        if record.type != "TXT":
            return frozenset(record.values)
        return frozenset("".join(re.findall(r'"([^"]*)"', v)) for v in record.values)

    def check(addresses):
        ipv4 = dict(zip(names, addresses, strict=True))
        want = {(r.name, r.type, unquoted(r)) for r in records(stack, ipv4, {}, _dkim(stack))}
        grouped: dict[tuple[str, str], set] = {}
        for r in _of(recorder, "domain/record:Record").values():
            assert r["dnsZone"] == stack.domain
            value = f"{int(r['priority'])} {r['data']}" if r["type"] == "MX" else r["data"]
            grouped.setdefault((r["name"] or "@", r["type"]), set()).add(value)
        got = {(name, typ, frozenset(values)) for (name, typ), values in grouped.items()}
        assert got == want
        assert {"A", "MX", "TXT"} <= {typ for _, typ, _ in got}
        assert ("@", "TXT", frozenset({"v=spf1 mx -all"})) in got

    return pulumi.Output.all(*[platform.ipv4[n] for n in names],
                             *[r.urn for r in platform.all_resources()]).apply(
        lambda values: check(values[:len(names)]))


@pulumi.runtime.test
def test_offsite_bucket_is_at_hetzner_versioned_and_expires_old_versions(built):
    stack, recorder, platform = built

    def check():
        assert recorder.of_type("scaleway:object/bucket:Bucket") == []
        ((_, bucket),) = recorder.of_type("minio:index/s3Bucket:S3Bucket")
        assert stack.offsite is not None and stack.offsite.provider == "hetzner"
        assert bucket["acl"] == "private"
        ((_, versioning),) = recorder.of_type("minio:index/s3BucketVersioning:S3BucketVersioning")
        assert versioning["versioningConfiguration"]["status"] == "Enabled"
        ((_, policy),) = recorder.of_type("minio:index/ilmPolicy:IlmPolicy")
        (rule,) = policy["rules"]
        assert rule["noncurrentVersionExpirationDays"] >= 7
        ((_, provider),) = recorder.of_type("pulumi:providers:minio")
        assert provider["minioServer"] == f"{stack.offsite.region}.your-objectstorage.com"
    return settled(platform, check)


@pulumi.runtime.test
def test_outputs_render_to_the_same_inventory_shape_as_the_lab(built):
    stack, _, platform = built
    from kit import inventory
    from kit.paths import StackPaths

    names = list(platform.servers)

    def check(ipv4s):
        outputs = {"servers": {n: {"ipv4": ip} for n, ip in zip(names, ipv4s, strict=True)}}
        public = inventory.public_addresses_from_outputs(stack, outputs)
        cloud = inventory.build(stack, StackPaths(stack.name), public_addresses=public)
        lab = inventory.build(load_stack("local"), StackPaths("local"), "ssh-ed25519 AAAA lab")
        assert cloud["all"]["vars"].keys() == lab["all"]["vars"].keys()
        for name, ip in zip(names, ipv4s, strict=True):
            assert cloud["all"]["hosts"][name]["ansible_host"] == ip
            assert cloud["all"]["hosts"][name]["podium_private_address"] == str(
                stack.host(name).address)

    return pulumi.Output.all(*[platform.ipv4[n] for n in names]).apply(check)


def test_a_stack_spanning_two_regions_is_refused_with_the_key(monkeypatch, tmp_path):
    text = (STACKS_DIR / "Pulumi.scaleway.yaml").read_text().replace(
        "location: fr-par-2, address: 10.20.3.12", "location: nl-ams-1, address: 10.20.3.12")
    bad = tmp_path / "Pulumi.broken.yaml"
    bad.write_text(text)
    monkeypatch.setattr("kit.stack.stack_file", lambda name: bad)
    recorder = install("broken")
    import config

    with pytest.raises(pulumi.RunError, match=r"podium:hosts\[\]\.location: a Scaleway stack "
                                              r"stays in one region"):
        config.load()
    assert recorder.resources == []


def test_offsite_at_the_same_company_is_refused(monkeypatch, tmp_path):
    text = (STACKS_DIR / "Pulumi.scaleway-mini.yaml").read_text().replace(
        "provider: hetzner\n    region: fsn1", "provider: scaleway\n    region: fr-par")
    bad = tmp_path / "Pulumi.broken.yaml"
    bad.write_text(text)
    monkeypatch.setattr("kit.stack.stack_file", lambda name: bad)
    install("broken")
    import config

    with pytest.raises(pulumi.RunError, match=r"podium:offsite\.provider: 'scaleway' runs the "
                                              "servers too"):
        config.load()


def test_data_volumes_do_not_depend_on_servers_so_destroy_can_keep_them():
    """`pulumi destroy --exclude-protected` also keeps what a protected resource depends on."""
    from kit.plan import run_program

    recorder = run_program(load_stack("scaleway"))
    servers = {urn for urn, n in recorder.nodes.items()
               if n.typ == "scaleway:instance/server:Server"}
    volumes = [n for n in recorder.nodes.values() if n.typ == "scaleway:block/volume:Volume"]
    assert volumes
    for volume in volumes:
        assert not set(volume.depends_on) & servers, volume.name


@pytest.mark.parametrize(("old", "new", "message"), [
    ("location: fr-par-1", "location: us-east-1",
     r"podium:hosts\[0\]\.location: 'us-east-1' is not a location of scaleway"),
    ("size: large", "size: huge", r"podium:hosts\[0\]\.size: .*got 'huge'"),
    ("roles: [edge, proxy,", "roles: [edge, ftp,", r"podium:hosts\[0\]\.roles: unknown role 'ftp'"),
])
def test_a_bad_stack_is_refused_with_its_key_before_any_resource(monkeypatch, tmp_path, old,
                                                                 new, message):
    text = (STACKS_DIR / "Pulumi.scaleway-mini.yaml").read_text()
    assert old in text
    bad = tmp_path / "Pulumi.broken.yaml"
    bad.write_text(text.replace(old, new))
    monkeypatch.setattr("kit.stack.stack_file", lambda name: bad)
    recorder = install("broken")
    import config

    with pytest.raises(pulumi.RunError, match=message) as caught:
        config.load()
    assert "Pulumi.broken.yaml" in str(caught.value)
    assert recorder.resources == []


def test_offsite_credentials_reach_the_explicit_provider_as_secrets(monkeypatch):
    """Explicit providers ignore the stack's minio:* config, so the program passes the keys."""
    monkeypatch.setenv("MINIO_USER", "access-key-id")
    monkeypatch.setenv("MINIO_PASSWORD", "secret-key")
    recorder = install("scaleway-mini")
    from topology import build

    stack = load_stack("scaleway-mini")
    platform = build(stack)

    def secret(value):
        """The mocks show a secret as {signature key: secret signature, "value": ...}."""
        from pulumi.runtime import rpc

        assert value[rpc._special_sig_key] == rpc._special_secret_sig
        return value["value"]

    def check():
        ((_, provider),) = recorder.of_type("pulumi:providers:minio")
        assert secret(provider["minioUser"]) == "access-key-id"
        assert secret(provider["minioPassword"]) == "secret-key"

    pulumi.runtime.test(lambda: settled(platform, check))()


def _dkim(stack):
    return dkim_from_secrets(StackPaths(stack.name).secrets, dkim.selectors())
