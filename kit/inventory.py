"""The Ansible inventory of a stack, written to .podium/<stack>/inventory.yml.

Both provisioners produce this same shape: one group per role, every host with its private
and public address, and the stack-wide values (domain, mode, network, admin) as variables
of ``all``. playbooks/group_vars/all/ maps those onto the roles' variables.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from kit import dns_records, labstore, providers
from kit.errors import PodiumError
from kit.paths import StackPaths
from kit.stack import Stack, role_ports


def build(stack: Stack, paths: StackPaths, lab_public_key: str | None = None,
          public_addresses: dict[str, str] | None = None,
          load_balancer_address: str | None = None,
          offsite_bucket: str | None = None) -> dict:
    """The inventory as a dict (see module doc).

    ``lab_public_key`` is added to the admin keys (lab only). ``public_addresses`` maps host
    names to their public IPv4 (cloud stacks, from Pulumi's outputs); Ansible then connects
    there. Without it (the lab) the bridge address is both the private and public address.
    ``load_balancer_address``: the provider load balancer's private address (cloud stacks
    with ``load_balancer: provider``, from Pulumi's outputs); it becomes
    ``podium_load_balancer_address`` (empty when the stack balances with proxy hosts), which
    the edges send requests to and the app hosts trust for X-Forwarded-For.
    ``offsite_bucket``: the bucket at the other company (cloud stacks, from Pulumi's outputs);
    it becomes ``podium_offsite`` (empty in the lab), where the backup role keeps pgBackRest's
    repository.
    """
    keys = [*([lab_public_key] if lab_public_key else []), *stack.admin.ssh_keys]
    public_addresses = public_addresses or {}
    hosts = {}
    for host in stack.hosts:
        public = public_addresses.get(host.name, str(host.address))
        hosts[host.name] = {
            "ansible_host": public,
            "podium_private_address": str(host.address),
            "podium_public_address": public,
            "podium_roles": list(host.roles),
            "podium_size": host.size,
        }
    public = {name: h["podium_public_address"] for name, h in hosts.items()}
    private = {h.name: str(h.address) for h in stack.hosts}
    children = {role: {"hosts": {name: None for name in names}}
                for role, names in stack.groups().items() if names}
    return {
        "all": {
            "vars": {
                "ansible_user": stack.admin.user,
                "ansible_ssh_private_key_file": str(paths.ssh_key.resolve()),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={paths.known_hosts.resolve()} "
                    "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                ),
                "podium_stack": stack.name,
                "podium_provider": stack.provider,
                "podium_domain": stack.domain,
                "podium_mode": stack.mode,
                "podium_network_cidr": stack.network.cidr,
                "podium_load_balancer": stack.load_balancer,
                "podium_load_balancer_address": load_balancer_address or "",
                "podium_gateway": stack.gateway,
                "podium_operator_cidrs": list(stack.admin.ssh_cidrs),
                "podium_admin_user": stack.admin.user,
                "podium_admin_email": stack.admin.email,
                "podium_admin_ssh_keys": keys,
                "podium_hosts": [{"name": h.name, "address": str(h.address)}
                                 for h in stack.hosts],
                "podium_role_ports": role_ports(),
                # The zone the cloud stacks publish (kit/dns_records.py), for the lab's dns
                # role; DKIM is added by the dns role from the key the mail role generates.
                "podium_dns_records": [_record(r) for r in dns_records.records(stack, public, {})],
                # The MTA-STS policy file the edges serve (empty: no mail host), the one whose
                # hash is the id in the _mta-sts record above.
                "podium_mta_sts_policy": dns_records.mta_sts_policy(stack) or "",
                "podium_dns_reverse_zone": dns_records.reverse_zone(stack.network.cidr),
                "podium_dns_reverse_records": [_record(r) for r in
                                               dns_records.ptr_records(stack, private)],
                # Where the backups go beside the backup host: {} in the lab.
                "podium_offsite": _offsite(stack, offsite_bucket),
                # The lab's S3 stand-in for that bucket, own or another stack's ({} if none).
                "podium_lab_store": labstore.inventory_vars(stack),
                # The stack's state folder on the controller (exports such as the lab CA's root).
                "podium_state_dir": str(paths.state.resolve()),
                # Where roles keep generated secrets on the controller (see
                # docs/decisions/0007-secrets.md); created 0700 when the inventory is written.
                "podium_secrets_dir": str(paths.secrets.resolve()),
            },
            "hosts": hosts,
            "children": children,
        }
    }


def _offsite(stack: Stack, bucket: str | None) -> dict:
    """Where the offsite copy lives: {} in the lab (the repository is the backup host's disk)."""
    if stack.offsite is None or not bucket:
        return {}
    company, region = stack.offsite.provider, stack.offsite.region
    key_env, secret_env = providers.OFFSITE_S3_ENV[company]
    return {"company": company, "region": region, "bucket": bucket,
            "endpoint": providers.offsite_endpoint(company, region),
            "key_env": key_env, "secret_env": secret_env}


def offsite_bucket_from_outputs(stack: Stack, outputs: dict) -> str | None:
    """The offsite bucket's name from Pulumi's outputs (None for a lab stack).

    Raises PodiumError when a cloud stack's outputs lack it: its backups would otherwise
    stay at the same company as the servers.
    """
    if stack.offsite is None:
        return None
    bucket = outputs.get("offsite_bucket")
    if not isinstance(bucket, str) or not bucket:
        raise PodiumError(
            f"the Pulumi outputs of stack '{stack.name}' have no 'offsite_bucket', and the "
            f"stack file asks for offsite backups at {stack.offsite.provider}",
            f"run `pulumi up --stack {stack.name}` (the program exports it), then retry")
    return bucket


def _record(record: dns_records.Record) -> dict:
    return {"name": record.name, "type": record.type, "values": list(record.values),
            "ttl": record.ttl}


def public_addresses_from_outputs(stack: Stack, outputs: dict) -> dict[str, str]:
    """Host name -> public IPv4 from ``pulumi stack output --json`` (its ``servers`` output).

    Raises PodiumError naming the host when the outputs do not match the stack file.
    """
    servers = outputs.get("servers")
    if not isinstance(servers, dict):
        raise PodiumError(
            f"the Pulumi outputs of stack '{stack.name}' have no 'servers' map",
            f"run pulumi up --stack {stack.name} first (infra/ exports it)",
        )
    addresses = {}
    for host in stack.hosts:
        entry = servers.get(host.name)
        if not isinstance(entry, dict) or not entry.get("ipv4"):
            raise PodiumError(
                f"the Pulumi outputs of stack '{stack.name}' have no public address for host "
                f"'{host.name}'",
                f"the stack file and the deployed stack differ: run pulumi up --stack {stack.name}",
            )
        addresses[host.name] = str(entry["ipv4"])
    return addresses


def load_balancer_address_from_outputs(stack: Stack, outputs: dict) -> str | None:
    """The provider load balancer's private address from ``pulumi stack output --json`` (its
    ``load_balancer_address`` output); None for stacks that balance with proxy hosts.

    Raises PodiumError when the stack asks for the provider's load balancer and the outputs
    lack its address (the edges would have no upstream).
    """
    if stack.load_balancer != "provider":
        return None
    address = outputs.get("load_balancer_address")
    if not isinstance(address, str) or not address:
        raise PodiumError(
            f"the Pulumi outputs of stack '{stack.name}' have no 'load_balancer_address', and "
            "the stack file says load_balancer: provider",
            f"run pulumi up --stack {stack.name} (infra/ exports it with the load balancer)",
        )
    return address


class _Dumper(yaml.SafeDumper):
    """Writes `None` as an empty value, the usual way to list a host in a group."""


_Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))


def write(inventory: dict, path: Path) -> None:
    """Write atomically, so an interrupted run never leaves half an inventory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    header = "# Generated by ./podium from the stack file; do not edit (it is rewritten).\n"
    tmp.write_text(header + yaml.dump(inventory, Dumper=_Dumper, sort_keys=False, width=100))
    os.replace(tmp, path)
    secrets = Path(inventory["all"]["vars"]["podium_secrets_dir"])
    secrets.mkdir(parents=True, exist_ok=True)
    secrets.chmod(0o700)
