"""How the controller reaches a stack's hosts over SSH: the address, user and options
Ansible uses, read from the stack's written inventory (.podium/<stack>/inventory.yml).

The drills and ``./podium recover`` run their step-by-step commands over the same
connection Ansible makes (decision 0111). Reading it from the inventory, not from the stack
file, is what lets one code path reach both kinds of stack: a lab host at its bridge address
with the lab key, a cloud host at its public address (Pulumi's outputs) with the operator's
own key from the agent (decision 0298).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import yaml

from kit import ssh
from kit.errors import PodiumError
from kit.paths import StackPaths, shown
from kit.stack import Stack

# Added to the inventory's own options: commands fail rather than prompt, and a host that
# does not answer is reported within seconds.
NON_INTERACTIVE = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR")


@dataclass(frozen=True)
class Reach:
    """SSH to the hosts of one stack."""

    stack: str
    user: str
    addresses: dict[str, str]  # host name -> the address SSH connects to
    options: tuple[str, ...]

    def address(self, name: str) -> str:
        try:
            return self.addresses[name]
        except KeyError:
            raise PodiumError(f"host {name} is not in the inventory of stack '{self.stack}'",
                              f"write it again: ./podium up --stack {self.stack}") from None

    def ssh(self, name: str, *extra: str) -> list[str]:
        """``ssh`` to the host's admin user with the stack's options; ``extra`` options go
        before the destination (a command may follow)."""
        return ["ssh", *self.options, *extra, f"{self.user}@{self.address(name)}"]


def lab_reach(stack: Stack, paths: StackPaths) -> Reach:
    """What a lab stack's inventory says, without reading it: the bridge address and the
    lab key (the inventory may not be written yet while a lab stack boots)."""
    return Reach(stack.name, stack.admin.user,
                 {h.name: str(h.address) for h in stack.hosts},
                 tuple(ssh.base_args(paths)))


def of_stack(stack: Stack, paths: StackPaths) -> Reach:
    """The stack's reach from its inventory; a lab stack without one falls back to
    ``lab_reach``. Raises PodiumError naming the file when a cloud stack has none or it does
    not parse."""
    path = paths.inventory
    if not path.is_file():
        if stack.provider == "local":
            return lab_reach(stack, paths)
        raise PodiumError(
            f"{shown(path)} is missing: the kit does not know the addresses of stack "
            f"'{stack.name}'s servers",
            f"write it from Pulumi's outputs (kept by the state backend even when the provider "
            f"is gone): ./podium inventory --stack {stack.name}")
    return parse_inventory(stack.name, path.read_text(), shown(path))


def parse_inventory(stack_name: str, text: str, where: str) -> Reach:
    try:
        data = yaml.safe_load(text) or {}
        top = data["all"]
        variables, hosts = top["vars"], top["hosts"]
        user = variables["ansible_user"]
        addresses = {name: str(h["ansible_host"]) for name, h in hosts.items()}
        common = shlex.split(variables.get("ansible_ssh_common_args", ""))
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise PodiumError(f"{where} is not an inventory the kit wrote ({type(err).__name__}: "
                          f"{err})",
                          f"write it again: ./podium up --stack {stack_name} (or "
                          "./podium inventory for a cloud stack)") from None
    key = variables.get("ansible_ssh_private_key_file")
    # A lab inventory names the lab key; a cloud one names none: the operator's agent or
    # ~/.ssh keys are used, as Ansible does.
    identity = ("-i", str(key), "-o", "IdentitiesOnly=yes") if key else ()
    return Reach(stack_name, str(user), addresses, (*identity, *common, *NON_INTERACTIVE))
