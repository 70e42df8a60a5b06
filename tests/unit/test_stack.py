"""Stack-file validation: every mistake is named by file and key, before anything runs."""

from __future__ import annotations

import copy

import pytest
import yaml

from kit.errors import PodiumError
from kit.paths import STACKS_DIR
from kit.stack import LAB_ONLY_ROLES, known_roles, load_stack, parse_stack, platform_roles


def _parse(doc: dict, name: str = "trial"):
    return parse_stack(name, yaml.safe_dump(doc), f"infra/stacks/Pulumi.{name}.yaml")


def _error(doc: dict) -> str:
    with pytest.raises(PodiumError) as caught:
        _parse(doc)
    return caught.value.render()


@pytest.mark.parametrize("path", sorted(STACKS_DIR.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_shipped_stack_files_are_valid(path):
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    stack = load_stack(name)
    assert stack.name == name


def test_local_stack_has_about_ten_hosts_covering_every_role():
    stack = load_stack("local")
    assert 9 <= len(stack.hosts) <= 12
    placed = {role for host in stack.hosts for role in host.roles}
    assert placed == set(platform_roles())


def test_local_mini_is_one_host_with_every_role():
    stack = load_stack("local-mini")
    assert len(stack.hosts) == 1
    assert set(stack.hosts[0].roles) == set(platform_roles())


def test_unknown_role_is_named_with_its_key(local_stack_doc):
    local_stack_doc["config"]["podium:hosts"][2]["roles"] = ["edge", "webserver"]
    message = _error(local_stack_doc)
    assert "infra/stacks/Pulumi.trial.yaml" in message
    assert "podium:hosts[2].roles" in message
    assert "unknown role 'webserver'" in message


def test_duplicate_host_name_is_refused(local_stack_doc):
    local_stack_doc["config"]["podium:hosts"][1]["name"] = "edge1"
    message = _error(local_stack_doc)
    assert "podium:hosts[1].name" in message
    assert "duplicate host name 'edge1'" in message


def test_bad_size_is_refused(local_stack_doc):
    local_stack_doc["config"]["podium:hosts"][0]["size"] = "huge"
    message = _error(local_stack_doc)
    assert "podium:hosts[0].size" in message
    assert "'huge'" in message


@pytest.mark.parametrize("address", ["10.213.0.999", "10.99.0.5", "10.213.0.1", "10.213.0.255"])
def test_bad_or_outside_address_is_refused(local_stack_doc, address):
    local_stack_doc["config"]["podium:hosts"][3]["address"] = address
    assert "podium:hosts[3].address" in _error(local_stack_doc)


def test_address_used_twice_is_refused(local_stack_doc):
    hosts = local_stack_doc["config"]["podium:hosts"]
    hosts[4]["address"] = hosts[3]["address"]
    message = _error(local_stack_doc)
    assert "podium:hosts[4].address" in message
    assert "already used by hosts[3]" in message


@pytest.mark.parametrize("key", ["podium:domain", "podium:mode", "podium:admin", "podium:hosts",
                                 "podium:network", "podium:provider"])
def test_missing_key_is_named(local_stack_doc, key):
    del local_stack_doc["config"][key]
    message = _error(local_stack_doc)
    assert f"{key}: missing key" in message


def test_misspelt_key_is_named(local_stack_doc):
    local_stack_doc["config"]["podium:hots"] = []
    assert "podium:hots: unknown key" in _error(local_stack_doc)


def test_lab_section_required_for_local(local_stack_doc):
    del local_stack_doc["config"]["podium:lab"]
    assert "lab: required when provider is 'local'" in _error(local_stack_doc)


def test_bad_network_and_cidr_are_refused(local_stack_doc):
    doc = copy.deepcopy(local_stack_doc)
    doc["config"]["podium:network"]["cidr"] = "8.8.8.0/24"
    assert "podium:network.cidr" in _error(doc)
    local_stack_doc["config"]["podium:admin"]["ssh_cidrs"] = ["10.213.0.1/40"]
    assert "podium:admin.ssh_cidrs[0]" in _error(local_stack_doc)


def test_root_as_admin_is_refused(local_stack_doc):
    local_stack_doc["config"]["podium:admin"]["user"] = "root"
    assert "podium:admin.user" in _error(local_stack_doc)


def test_bridge_name_longer_than_an_interface_name_is_refused(local_stack_doc):
    local_stack_doc["config"]["podium:lab"]["bridge"] = "a-very-long-bridge-name"
    assert "podium:lab.bridge" in _error(local_stack_doc)


def test_not_yaml_and_no_config_are_clear():
    with pytest.raises(PodiumError, match="not valid YAML"):
        parse_stack("trial", "config: [unclosed", "x.yaml")
    with pytest.raises(PodiumError, match="missing key 'config'"):
        parse_stack("trial", "hosts: []", "x.yaml")


def test_other_namespaces_are_left_to_their_providers(local_stack_doc):
    local_stack_doc["config"]["hcloud:token"] = {"secure": "AAAA"}
    assert _parse(local_stack_doc).name == "trial"


def test_unknown_stack_lists_the_available_ones():
    with pytest.raises(PodiumError) as caught:
        load_stack("nope")
    assert "Pulumi.nope.yaml does not exist" in caught.value.message
    assert "local-mini" in caught.value.hint


def test_groups_by_role(local_stack_doc):
    groups = _parse(local_stack_doc).groups()
    assert groups["edge"] == ["edge1", "edge2"]
    assert groups["postgres"] == ["db1", "db2"]


def _cloud_doc(local_stack_doc: dict) -> dict:
    config = local_stack_doc["config"]
    config["podium:provider"] = "hcloud"
    del config["podium:lab"]
    config["podium:admin"]["ssh_keys"] = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey x"]
    config["podium:offsite"] = {"provider": "scaleway", "region": "fr-par"}
    for host in config["podium:hosts"]:
        host["location"] = "fsn1"
    return local_stack_doc


def test_cloud_host_needs_a_known_location(local_stack_doc):
    doc = _cloud_doc(local_stack_doc)
    del doc["config"]["podium:hosts"][2]["location"]
    assert "podium:hosts[2].location: missing; it is required for hcloud" in _error(doc)
    doc["config"]["podium:hosts"][2]["location"] = "ash"
    assert "'ash' is not a location of hcloud" in _error(doc)


def test_cloud_stack_needs_an_operator_key_and_no_lab_section(local_stack_doc):
    doc = _cloud_doc(local_stack_doc)
    doc["config"]["podium:admin"]["ssh_keys"] = []
    assert "podium:admin.ssh_keys: at least one operator public key" in _error(doc)
    doc["config"]["podium:admin"]["ssh_keys"] = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey x"]
    doc["config"]["podium:lab"] = {"bridge": "pd-x"}
    assert "podium:lab: only for provider 'local'" in _error(doc)


def test_cloud_stack_needs_offsite_backups_at_a_known_region(local_stack_doc):
    doc = _cloud_doc(local_stack_doc)
    del doc["config"]["podium:offsite"]
    assert "podium:offsite: required for cloud stacks" in _error(doc)
    doc["config"]["podium:offsite"] = {"provider": "scaleway", "region": "us-east-1"}
    assert "podium:offsite: region 'us-east-1' is not a scaleway region" in _error(doc)


def test_a_host_on_the_provider_load_balancers_address_is_refused():
    text = (STACKS_DIR / "Pulumi.scaleway.yaml").read_text().replace("10.20.3.81", "10.20.3.254")
    with pytest.raises(PodiumError, match=r"podium:hosts\[9\]\.address: 10\.20\.3\.254 is the "
                                          "provider load balancer's address"):
        parse_stack("scaleway", text, "Pulumi.scaleway.yaml")


def test_lab_only_roles_are_known_and_refused_in_cloud_stacks():
    assert set(LAB_ONLY_ROLES) <= set(known_roles())
    doc = yaml.safe_load((STACKS_DIR / "Pulumi.hetzner.yaml").read_text())
    assert _parse(doc, "hetzner").provider == "hcloud"
    doc["config"]["podium:hosts"][0]["roles"] = ["objectstore"]
    with pytest.raises(PodiumError) as caught:
        _parse(doc, "hetzner")
    message = caught.value.render()
    assert "podium:hosts[0].roles" in message
    assert "objectstore is a lab test double" in message


def test_offsite_store_is_another_stack_and_not_beside_an_own_stand_in(local_stack_doc):
    local_stack_doc["config"]["podium:lab"]["offsite_store"] = "trial"
    assert "names this stack itself" in _error(local_stack_doc)
    local_stack_doc["config"]["podium:lab"]["offsite_store"] = "lab-offsite"
    local_stack_doc["config"]["podium:hosts"].append(
        {"name": "s3x", "roles": ["objectstore"], "size": "small", "address": "10.213.0.99"})
    assert "has its own objectstore host" in _error(local_stack_doc)


def test_repository_in_the_bucket_needs_a_bucket(local_stack_doc):
    lab_doc = local_stack_doc["config"]["podium:lab"]
    lab_doc["repository"] = "bucket"
    assert "lab.repository: 'bucket' needs a bucket" in _error(local_stack_doc)
    lab_doc["repository"] = "tape"
    assert "repository" in _error(local_stack_doc)
    lab_doc["repository"], lab_doc["offsite_store"] = "bucket", "lab-offsite"
    assert _parse(local_stack_doc).lab.repository == "bucket"


def test_offsite_store_must_be_a_lab_stack_with_one_store_host(local_stack_doc):
    from kit import labstore

    local_stack_doc["config"]["podium:lab"]["offsite_store"] = "no-such-stack"
    with pytest.raises(PodiumError, match="no stack file for stack 'no-such-stack'"):
        labstore.store_of(_parse(local_stack_doc))
    local_stack_doc["config"]["podium:lab"]["offsite_store"] = "lab-data"
    with pytest.raises(PodiumError, match="'lab-data' has 0 objectstore hosts") as err:
        labstore.store_of(_parse(local_stack_doc))
    assert "Pulumi.lab-data.yaml" in err.value.hint
    local_stack_doc["config"]["podium:lab"]["offsite_store"] = "hetzner"
    with pytest.raises(PodiumError, match="'hetzner' is a hcloud stack"):
        labstore.store_of(_parse(local_stack_doc))
    local_stack_doc["config"]["podium:lab"]["offsite_store"] = "lab-offsite"
    store = labstore.store_of(_parse(local_stack_doc))
    assert store.endpoint == "offsite1" and store.ca_file.name == "ca.crt"
