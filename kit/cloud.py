"""Cloud stacks (provider other than local) as far as ./podium drives them today.

What works: the stack is validated, and a missing Pulumi CLI or provider token stops the run
at once with what is missing and how to get it. Not yet: running `pulumi up` and writing the
inventory from its outputs (kit.inventory.public_addresses_from_outputs does the mapping);
until then the operator runs those by hand (README, "Going to production").
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from kit import inventory
from kit.errors import PodiumError
from kit.paths import StackPaths, shown, stack_file
from kit.stack import Stack

TOKEN_ENV = {"hcloud": "HCLOUD_TOKEN"}


def has_token(stack: Stack) -> bool:
    """The provider token is in the environment or set as a secret in the stack file."""
    if os.environ.get(TOKEN_ENV[stack.provider]):
        return True
    doc = yaml.safe_load(stack_file(stack.name).read_text()) or {}
    return f"{stack.provider}:token" in (doc.get("config") or {})


def check_prerequisites(stack: Stack) -> None:
    if shutil.which("pulumi") is None:
        raise PodiumError(
            f"stack '{stack.name}' is provisioned with Pulumi, and the Pulumi CLI is not "
            "installed on this machine",
            "install it on your workstation (https://www.pulumi.com/docs/install/); it "
            "downloads a binary, so it cannot be installed on machines limited to package "
            "registries",
        )
    if not has_token(stack):
        raise PodiumError(
            f"no {stack.provider} API token for stack '{stack.name}'",
            f"create one in the provider's console, then either export "
            f"{TOKEN_ENV[stack.provider]}=... or run: pulumi config set --secret "
            f"{stack.provider}:token ... --stack {stack.name} (stored encrypted in "
            f"{shown(stack_file(stack.name))})",
        )


def write_inventory(stack: Stack, outputs_file: Path) -> Path:
    """Write .podium/<stack>/inventory.yml from a `pulumi stack output --json` file."""
    try:
        outputs = json.loads(outputs_file.read_text())
    except (OSError, ValueError) as exc:
        raise PodiumError(
            f"cannot read Pulumi outputs from {outputs_file}: {exc}",
            f"create it with: pulumi stack output --json --stack {stack.name} > {outputs_file}",
        ) from None
    paths = StackPaths(stack.name)
    public = inventory.public_addresses_from_outputs(stack, outputs)
    data = inventory.build(stack, paths, public_addresses=public)
    # No lab key in the cloud: Ansible uses the operator's own SSH key (agent or ~/.ssh).
    data["all"]["vars"].pop("ansible_ssh_private_key_file")
    data["all"]["vars"]["ansible_ssh_common_args"] = (
        f"-o UserKnownHostsFile={paths.known_hosts.resolve()} -o StrictHostKeyChecking=accept-new"
    )
    inventory.write(data, paths.inventory)
    return paths.inventory


def up(stack: Stack) -> None:
    check_prerequisites(stack)
    raise PodiumError(
        f"./podium up does not drive cloud stacks yet (stack '{stack.name}')",
        f"run: pulumi up --stack {stack.name}; pulumi stack output --json --stack {stack.name} "
        f"> outputs.json; ./podium inventory --stack {stack.name} --pulumi-outputs "
        f"outputs.json; then ansible-playbook playbooks/site.yml -i "
        f".podium/{stack.name}/inventory.yml (docs/production.md)",
    )
