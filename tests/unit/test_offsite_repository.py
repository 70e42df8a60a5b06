"""Cloud stacks keep pgBackRest's repository in the offsite bucket at the other company
(issue 9): the Pulumi program exports the bucket, kit.inventory carries it as podium_offsite,
and playbooks/group_vars/all/backup.yml turns it into the backup role's S3 settings, with the
key pair read from the controller's environment. The program runs under
pulumi.runtime.set_mocks; the variables are evaluated by Ansible itself. The lab keeps the
repository on the backup host's disk. (No S3 service is reachable from here: the role's S3
repository itself is exercised only in the cloud.)
"""

from __future__ import annotations

import pulumi
import pytest
from test_load_balancer_upstream import _variables, secrets_in_tmp  # noqa: F401 (fixture)

from kit import dkim, inventory
from kit.errors import PodiumError
from kit.paths import StackPaths
from kit.pulumi_mocks import install
from kit.stack import load_stack

S3_VARS = ["backup_repo_type", "backup_s3_endpoint", "backup_s3_bucket", "backup_s3_region",
           "backup_s3_key", "backup_s3_key_secret", "backup_repo2_s3", "backup_offsite_copy",
           "backup_s3_ca_file"]
EXPECTED = {  # stack -> (offsite company, key variables, endpoint suffix)
    "hetzner": ("scaleway", ("SCW_ACCESS_KEY", "SCW_SECRET_KEY"), ".scw.cloud"),
    "scaleway": ("hetzner", ("MINIO_USER", "MINIO_PASSWORD"), ".your-objectstorage.com"),
}


@pytest.mark.parametrize("stack_name", sorted(EXPECTED))
@pulumi.runtime.test
def test_cloud_repository_is_the_offsite_bucket_at_the_other_company(stack_name, tmp_path,
                                                                     secrets_in_tmp):  # noqa: F811
    dkim.ensure_keys(StackPaths(stack_name).secrets)
    install(stack_name)
    from topology import build

    stack = load_stack(stack_name)
    platform = build(stack)
    assert platform.offsite_bucket is not None
    company, (key_env, secret_env), suffix = EXPECTED[stack_name]

    def check(bucket: str) -> None:
        outputs = {"servers": {h.name: {"ipv4": f"198.51.100.{n}"}
                               for n, h in enumerate(stack.hosts, 1)},
                   "load_balancer_address": "10.0.0.2", "offsite_bucket": bucket}
        data = inventory.build(
            stack, StackPaths(stack.name),
            public_addresses=inventory.public_addresses_from_outputs(stack, outputs),
            offsite_bucket=inventory.offsite_bucket_from_outputs(stack, outputs))
        offsite = data["all"]["vars"]["podium_offsite"]
        assert offsite["company"] == company and offsite["bucket"] == bucket
        # The key pair stays out of the inventory file.
        assert "key-from-env" not in str(data)
        backup = next(h.name for h in stack.hosts if "backup" in h.roles)
        found = _variables(tmp_path, data, backup, S3_VARS,
                           {key_env: "key-from-env", secret_env: "secret-from-env"})
        assert found == {
            "backup_repo_type": "s3",
            "backup_s3_endpoint": f"{offsite['endpoint']}",
            "backup_s3_bucket": bucket,
            "backup_s3_region": stack.offsite.region,
            "backup_s3_key": "key-from-env",
            "backup_s3_key_secret": "secret-from-env",
            # The media and secrets copies go to the same bucket (decision 0281); the
            # provider's certificate is checked against the system's CAs.
            "backup_repo2_s3": False,
            "backup_offsite_copy": True,
            "backup_s3_ca_file": "",
        }
        assert found["backup_s3_endpoint"].endswith(suffix)
        assert stack.offsite.region in found["backup_s3_endpoint"]

    return platform.offsite_bucket.apply(check)


def test_lab_repository_stays_on_the_backup_host(tmp_path, secrets_in_tmp):  # noqa: F811
    stack = load_stack("local")
    data = inventory.build(stack, StackPaths(stack.name))
    assert data["all"]["vars"]["podium_offsite"] == {}
    backup = next(h.name for h in stack.hosts if "backup" in h.roles)
    found = _variables(tmp_path, data, backup, ["backup_repo_type", "backup_s3_key",
                                                "backup_repo2_s3", "backup_offsite_copy"])
    assert found == {"backup_repo_type": "posix", "backup_s3_key": "",
                     "backup_repo2_s3": False, "backup_offsite_copy": False}


def test_lab_stack_with_an_s3_stand_in_uses_it_as_the_offsite_bucket(tmp_path,
                                                                      secrets_in_tmp):  # noqa: F811
    """lab-backup has an objectstore host (decision 0281): repo1 stays on the backup host's
    disk, repo2 and the media and secrets copies go to the stand-in, verified with its CA."""
    stack = load_stack("lab-backup")
    stand_in = next(h.name for h in stack.hosts if "objectstore" in h.roles)
    data = inventory.build(stack, StackPaths(stack.name))
    backup = next(h.name for h in stack.hosts if "backup" in h.roles)
    found = _variables(tmp_path, data, backup, S3_VARS)
    key, secret = found.pop("backup_s3_key"), found.pop("backup_s3_key_secret")
    assert len(key) == 20 and len(secret) == 40 and key != secret
    assert found == {
        "backup_repo_type": "posix", "backup_repo2_s3": True, "backup_offsite_copy": True,
        "backup_s3_endpoint": stand_in, "backup_s3_bucket": "podium-offsite",
        "backup_s3_region": "us-east-1",
        "backup_s3_ca_file": f"{StackPaths(stack.name).secrets}/objectstore-tls/ca.crt",
    }
    # The stand-in creates the bucket the backup host pushes to.
    assert _variables(tmp_path, data, stand_in, ["objectstore_buckets"]) == {
        "objectstore_buckets": ["podium-offsite"]}


def test_lab_stack_with_another_stack_s_store_reaches_it_through_its_gateway(
        tmp_path, secrets_in_tmp):  # noqa: F811
    """lab-prova names lab-offsite in lab.offsite_store (decision 0282): its own bucket
    podium-lab-prova there, created by the backup host, the store's CA, and the store's name
    pointing at lab-prova's gateway, where the host's relay listens."""
    stack, store = load_stack("lab-prova"), load_stack("lab-offsite")
    data = inventory.build(stack, StackPaths(stack.name))
    backup = next(h.name for h in stack.hosts if "backup" in h.roles)
    found = _variables(tmp_path, data, backup, [*S3_VARS, "backup_s3_create_bucket",
                                                "common_hosts_entries"])
    found.pop("backup_s3_key"), found.pop("backup_s3_key_secret")
    hosts = found.pop("common_hosts_entries")
    assert found == {
        "backup_repo_type": "posix", "backup_repo2_s3": True, "backup_offsite_copy": True,
        "backup_s3_endpoint": "offsite1", "backup_s3_bucket": "podium-lab-prova",
        "backup_s3_region": "us-east-1", "backup_s3_create_bucket": True,
        "backup_s3_ca_file": str((StackPaths(store.name).secrets / "objectstore-tls" /
                                  "ca.crt").resolve()),
    }
    assert {"name": "offsite1", "address": stack.gateway} in hosts
    assert len(hosts) == len(stack.hosts) + 1


def test_lab_stack_with_its_repository_in_the_bucket_is_shaped_like_a_cloud_stack(
        tmp_path, secrets_in_tmp):  # noqa: F811
    """lab-provb sets lab.repository: bucket (decision 0283): repo1 is the bucket in
    lab-offsite, no second repository, as a cloud stack with podium:offsite."""
    stack = load_stack("lab-provb")
    data = inventory.build(stack, StackPaths(stack.name))
    assert data["all"]["vars"]["podium_lab_store"]["repository"] == "bucket"
    backup = next(h.name for h in stack.hosts if "backup" in h.roles)
    found = _variables(tmp_path, data, backup, [*S3_VARS, "backup_s3_create_bucket"])
    found.pop("backup_s3_key"), found.pop("backup_s3_key_secret"), found.pop("backup_s3_ca_file")
    assert found == {
        "backup_repo_type": "s3", "backup_repo2_s3": False, "backup_offsite_copy": True,
        "backup_s3_endpoint": "offsite1", "backup_s3_bucket": "podium-lab-provb",
        "backup_s3_region": "us-east-1", "backup_s3_create_bucket": True,
    }


def test_cloud_outputs_without_the_offsite_bucket_are_refused():
    with pytest.raises(PodiumError, match="no 'offsite_bucket'"):
        inventory.offsite_bucket_from_outputs(load_stack("hetzner"), {})
    assert inventory.offsite_bucket_from_outputs(load_stack("local"), {}) is None
