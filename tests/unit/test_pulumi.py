"""The Pulumi program at Hetzner under pulumi.runtime.set_mocks: no CLI, no cloud, one
property a test (Scaleway: test_pulumi_scaleway.py).

Every cloud stack file in infra/stacks/ is built; the mocks record each resource declared.
"""

from __future__ import annotations

import pulumi
import pytest

from kit import cloudinit, dkim
from kit.firewall import rules_for
from kit.paths import STACKS_DIR, StackPaths
from kit.pulumi_mocks import install, settled
from kit.stack import load_stack

CLOUD_STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS_DIR.glob("Pulumi.*.yaml")
    if "podium:provider: hcloud" in p.read_text()
)
PRIVATE_ONLY_PORTS = {5432, 6432, 6379, 22, 8081, 587, 8432}


@pytest.fixture(params=CLOUD_STACKS)
def built(request, tmp_path, monkeypatch):
    """(stack, recorder, resources) after running the program for one stack under mocks."""
    # The stack's DKIM keys, as `./podium up` makes them before `pulumi up`.
    monkeypatch.setattr(StackPaths, "secrets", property(lambda self: tmp_path / self.stack))
    dkim.ensure_keys(StackPaths(request.param).secrets)
    recorder = install(request.param)
    from topology import build

    stack = load_stack(request.param)
    platform = build(stack)
    return stack, recorder, platform


def _server_firewall(recorder, host_name):
    ((_, fw),) = [(n, i) for n, i in recorder.of_type("hcloud:index/firewall:Firewall")
                  if n == f"{host_name}-fw"]
    return fw


@pulumi.runtime.test
def test_every_server_has_its_roles_rules_and_no_others(built):
    stack, recorder, platform = built

    def check():
        for host in stack.hosts:
            rules = _server_firewall(recorder, host.name)["rules"]
            got = {(r["protocol"], r.get("port"), tuple(r["sourceIps"])) for r in rules
                   if r["protocol"] != "icmp"}
            want = {(r.proto, str(r.port), r.sources) for r in rules_for(stack, host)}
            assert got == want, host.name
    return settled(platform, check)


@pulumi.runtime.test
def test_no_rule_opens_database_redis_origin_or_ssh_to_the_world(built):
    _, recorder, platform = built

    def check():
        for name, fw in recorder.of_type("hcloud:index/firewall:Firewall"):
            for rule in fw["rules"]:
                if rule["protocol"] == "icmp":
                    continue
                world = {"0.0.0.0/0", "::/0"} & set(rule["sourceIps"])
                assert not (world and int(rule["port"]) in PRIVATE_ONLY_PORTS), (name, rule)
    return settled(platform, check)


@pulumi.runtime.test
def test_servers_are_in_the_private_network_at_their_address(built):
    stack, recorder, platform = built

    def check():
        servers = dict(recorder.of_type("hcloud:index/server:Server"))
        assert set(servers) == {h.name for h in stack.hosts}
        for host in stack.hosts:
            (attachment,) = servers[host.name]["networks"]
            assert attachment["ip"] == str(host.address)
    return settled(platform, check)


@pulumi.runtime.test
def test_servers_are_spread_over_placement_groups_of_at_most_ten(built):
    _, recorder, platform = built

    def check():
        groups = recorder.of_type("hcloud:index/placementGroup:PlacementGroup")
        assert all(inputs["type"] == "spread" for _, inputs in groups)
        members: dict = {}
        for _, server in recorder.of_type("hcloud:index/server:Server"):
            assert "placementGroupId" in server
            members.setdefault(server["placementGroupId"], 0)
            members[server["placementGroupId"]] += 1
        assert max(members.values()) <= 10
    return settled(platform, check)


@pulumi.runtime.test
def test_servers_are_labelled_with_stack_and_roles(built):
    stack, recorder, platform = built

    def check():
        servers = dict(recorder.of_type("hcloud:index/server:Server"))
        for host in stack.hosts:
            labels = servers[host.name]["labels"]
            assert labels["podium-stack"] == stack.name
            assert {k for k in labels if k.startswith("podium-role-")} == {
                f"podium-role-{r}" for r in host.roles}
    return settled(platform, check)


@pulumi.runtime.test
def test_user_data_is_the_labs_template_for_the_same_host(built):
    stack, recorder, platform = built

    def check():
        servers = dict(recorder.of_type("hcloud:index/server:Server"))
        for host in stack.hosts:
            assert servers[host.name]["userData"] == cloudinit.user_data(
                stack, host, list(stack.admin.ssh_keys))
    return settled(platform, check)


@pulumi.runtime.test
def test_mail_host_has_reverse_dns_matching_its_name(built):
    stack, recorder, platform = built

    def check():
        mail_hosts = [h for h in stack.hosts if "mail" in h.roles]
        rdns = recorder.of_type("hcloud:index/rdns:Rdns")
        assert len(rdns) == 2 * len(mail_hosts)  # IPv4 and IPv6
        for host in mail_hosts:
            assert {r["dnsPtr"] for _, r in rdns} == {f"{host.name}.{stack.domain}"}
    return settled(platform, check)


@pulumi.runtime.test
def test_data_hosts_get_a_volume_and_others_none(built):
    stack, recorder, platform = built

    def check():
        volumes = dict(recorder.of_type("hcloud:index/volume:Volume"))
        data_hosts = {h.name for h in stack.hosts
                      if {"postgres", "media", "backup"} & set(h.roles)}
        assert {name.removesuffix("-data") for name in volumes} == data_hosts
        attachments = dict(recorder.of_type("hcloud:index/volumeAttachment:VolumeAttachment"))
        for name in data_hosts:
            attachment = attachments[f"{name}-data-attachment"]
            assert attachment["serverId"] == int(recorder.ids[("hcloud:index/server:Server",
                                                              name)])
            assert attachment["volumeId"] == int(recorder.ids[("hcloud:index/volume:Volume",
                                                              f"{name}-data")])
            assert volumes[f"{name}-data"]["location"] == stack.host(name).location
    return settled(platform, check)


def test_data_volumes_do_not_depend_on_servers_so_destroy_can_keep_them():
    """`pulumi destroy --exclude-protected` also keeps what a protected resource depends on:
    a volume that referenced its server would keep the server alive too."""
    from kit.plan import run_program

    stack = load_stack("hetzner")
    recorder = run_program(stack)
    servers = {urn for urn, n in recorder.nodes.items() if n.typ == "hcloud:index/server:Server"}
    volumes = [n for n in recorder.nodes.values() if n.typ == "hcloud:index/volume:Volume"]
    assert volumes
    for volume in volumes:
        assert not set(volume.depends_on) & servers, volume.name


def test_bad_stack_stops_the_program_before_any_resource(monkeypatch, tmp_path):
    text = (STACKS_DIR / "Pulumi.hetzner-mini.yaml").read_text().replace(
        "location: fsn1", "location: us-east")
    bad = tmp_path / "Pulumi.broken.yaml"
    bad.write_text(text)
    monkeypatch.setattr("kit.stack.stack_file", lambda name: bad)
    recorder = install("broken")
    import config

    with pytest.raises(pulumi.RunError) as caught:
        config.load()
    assert "podium:hosts[0].location: 'us-east' is not a location of hcloud" in str(caught.value)
    assert recorder.resources == []


@pulumi.runtime.test
def test_outputs_render_to_the_same_inventory_shape_as_the_lab(built):
    stack, _, platform = built
    from kit import inventory
    from kit.paths import StackPaths

    servers = platform.servers
    names = list(servers)

    def check(ipv4s):
        outputs = {"servers": {name: {"ipv4": ip} for name, ip in zip(names, ipv4s,
                                                                      strict=True)}}
        public = inventory.public_addresses_from_outputs(stack, outputs)
        cloud = inventory.build(stack, StackPaths(stack.name), public_addresses=public)
        lab = inventory.build(load_stack("local"), StackPaths("local"), "ssh-ed25519 AAAA lab")
        assert cloud["all"]["vars"].keys() == lab["all"]["vars"].keys()
        for name, ip in zip(names, ipv4s, strict=True):
            host = cloud["all"]["hosts"][name]
            assert host["ansible_host"] == host["podium_public_address"] == ip
            assert host["podium_private_address"] == str(stack.host(name).address)
            assert host.keys() == next(iter(lab["all"]["hosts"].values())).keys()
        for role, names_in_role in stack.groups().items():
            if names_in_role:
                assert set(cloud["all"]["children"][role]["hosts"]) == set(names_in_role)

    return pulumi.Output.all(*[servers[n].ipv4_address for n in names]).apply(check)


def test_outputs_missing_a_host_are_refused_with_its_name():
    from kit import inventory
    from kit.errors import PodiumError

    stack = load_stack("hetzner")
    outputs = {"servers": {h.name: {"ipv4": "198.51.100.1"} for h in stack.hosts[1:]}}
    with pytest.raises(PodiumError, match=f"no public address for host '{stack.hosts[0].name}'"):
        inventory.public_addresses_from_outputs(stack, outputs)


@pulumi.runtime.test
def test_load_balancer_targets_exactly_the_app_hosts(built):
    stack, recorder, platform = built

    def check():
        lbs = recorder.of_type("hcloud:index/loadBalancer:LoadBalancer")
        if stack.load_balancer != "provider":
            assert lbs == []
            return
        assert len(lbs) == 1
        target_ids = [t["serverId"] for _, t in
                      recorder.of_type("hcloud:index/loadBalancerTarget:LoadBalancerTarget")]
        app_ids = {int(recorder.ids[("hcloud:index/server:Server", h.name)])
                   for h in stack.hosts if "app" in h.roles}
        assert sorted(target_ids) == sorted(app_ids)
        for _, target in recorder.of_type("hcloud:index/loadBalancerTarget:LoadBalancerTarget"):
            assert target["usePrivateIp"] is True
        ((_, service),) = recorder.of_type("hcloud:index/loadBalancerService:LoadBalancerService")
        assert service["healthCheck"]["http"]["path"] == "/readyz"
        app_port = next(r.port for r in rules_for(stack, stack.hosts[0].model_copy(
            update={"roles": ["app"]})) if r.role == "app")
        assert service["destinationPort"] == service["healthCheck"]["port"] == app_port
        ((_, attachment),) = recorder.of_type(
            "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork")
        assert attachment["enablePublicInterface"] is False
        assert attachment["ip"] == stack.load_balancer_address
    return settled(platform, check)


@pulumi.runtime.test
def test_dns_records_are_the_kits_record_data(built):
    """The zone holds exactly kit.dns_records' records (the data the lab's dns role will serve)."""
    from kit.dns_records import dkim_from_secrets, records

    stack, recorder, platform = built
    servers = platform.servers
    names = list(servers)

    def check(addresses):
        ipv4 = dict(zip(names, addresses[:len(names)], strict=True))
        ipv6 = dict(zip(names, addresses[len(names):], strict=True))
        keys = dkim_from_secrets(StackPaths(stack.name).secrets, dkim.selectors())
        want = {(r.name, r.type, tuple(r.values)) for r in records(stack, ipv4, ipv6, keys)}
        got = {(i["name"], i["type"], tuple(v["value"] for v in i["records"]))
               for _, i in recorder.of_type("hcloud:index/zoneRrset:ZoneRrset")}
        assert got == want
        types = {t for _, t, _ in got}
        assert {"A", "AAAA", "MX", "TXT"} <= types
        # The DKIM key the mail role signs with is published (the stacks have a mail host).
        assert any(name == "podium1._domainkey" and kind == "TXT" for name, kind, _ in got)

    # Waits for every resource too: the address records are declared once addresses resolve.
    return pulumi.Output.all(*[servers[n].ipv4_address for n in names],
                             *[servers[n].ipv6_address for n in names],
                             *[r.urn for r in platform.all_resources()]).apply(
        lambda values: check(values[:2 * len(names)]))


@pulumi.runtime.test
def test_offsite_backup_bucket_is_at_the_other_provider_and_versioned(built):
    stack, recorder, platform = built

    def check():
        buckets = recorder.of_type("scaleway:object/bucket:Bucket")
        assert len(buckets) == 1
        ((_, bucket),) = buckets
        assert stack.offsite is not None and stack.offsite.provider != stack.provider
        assert bucket["region"] == stack.offsite.region
        assert bucket["versioning"]["enabled"] is True
        (rule,) = bucket["lifecycleRules"]
        assert rule["noncurrentVersionExpiration"]["noncurrentDays"] >= 7
    return settled(platform, check)
