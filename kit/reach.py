"""How the controller reaches a stack's hosts over SSH: the address, user and options
Ansible uses, read from the stack's written inventory (.podium/<stack>/inventory.yml).

The drills and ``./podium recover`` run their step-by-step commands with Fabric over the
same inventory Ansible uses (decision 0299; the issue's "where Fabric fits"): the same user,
address, key and known-hosts file. Reading it from the inventory, not from the stack file, is
what lets one code path reach both kinds of stack: a lab host at its bridge address with the
lab key, a cloud host at its public address (Pulumi's outputs) with the operator's own key
from the agent (decision 0298). Where a tool needs an ``ssh`` command line (a tar stream from
host to host, an ``-L`` tunnel), ``Reach.ssh`` builds it from the same settings.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml
from fabric import Connection
from paramiko import AutoAddPolicy, RejectPolicy

from kit import ssh
from kit.errors import PodiumError
from kit.paths import StackPaths, shown
from kit.stack import Stack

# Added to the inventory's own options: commands fail rather than prompt, and a host that
# does not answer is reported within seconds.
NON_INTERACTIVE = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR")
CONNECT_TIMEOUT = 5  # seconds, as ConnectTimeout above

# paramiko logs a failed handshake to stderr on its own; the kit reports it in its error
# (LogLevel=ERROR above does the same for OpenSSH).
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Reach:
    """SSH to the hosts of one stack."""

    stack: str
    user: str
    addresses: dict[str, str]  # host name -> the address SSH connects to
    options: tuple[str, ...]   # OpenSSH's, for ``ssh``
    key: Path | None           # the lab key; None: the agent's or ~/.ssh's, as Ansible
    known_hosts: Path
    accept_new: bool           # StrictHostKeyChecking=accept-new (cloud) rather than yes

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

    def connection(self, name: str) -> Connection:
        """A Fabric connection to the host's admin user with the inventory's key and
        known-hosts file (opened on first use; close it after). A host key that differs from
        the file's is refused, as is an unknown one unless the inventory says accept-new."""
        if self.key is not None:
            auth = {"key_filename": [str(self.key)], "look_for_keys": False,
                    "allow_agent": False}
        else:
            auth = {}
        conn = Connection(self.address(name), user=self.user, connect_timeout=CONNECT_TIMEOUT,
                          connect_kwargs=auth)
        client = conn.client
        if self.accept_new:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            self.known_hosts.touch()
        if self.known_hosts.is_file():
            # Also where AutoAddPolicy saves a new host's key (accept-new).
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(AutoAddPolicy() if self.accept_new
                                           else RejectPolicy())
        return conn


def lab_reach(stack: Stack, paths: StackPaths) -> Reach:
    """What a lab stack's inventory says, without reading it: the bridge address and the
    lab key (the inventory may not be written yet while a lab stack boots)."""
    return Reach(stack.name, stack.admin.user,
                 {h.name: str(h.address) for h in stack.hosts},
                 tuple(ssh.base_args(paths)), paths.ssh_key, paths.known_hosts,
                 accept_new=False)


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
        settings = dict(option.split("=", 1) for option in common if "=" in option)
        known_hosts = Path(settings["UserKnownHostsFile"])
        checking = settings.get("StrictHostKeyChecking", "yes")
        if checking not in ("yes", "accept-new"):
            raise ValueError(f"StrictHostKeyChecking={checking} (the kit writes yes or "
                             "accept-new)")
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise PodiumError(f"{where} is not an inventory the kit wrote ({type(err).__name__}: "
                          f"{err})",
                          f"write it again: ./podium up --stack {stack_name} (or "
                          "./podium inventory for a cloud stack)") from None
    key = variables.get("ansible_ssh_private_key_file")
    # A lab inventory names the lab key; a cloud one names none: the operator's agent or
    # ~/.ssh keys are used, as Ansible does.
    identity = ("-i", str(key), "-o", "IdentitiesOnly=yes") if key else ()
    return Reach(stack_name, str(user), addresses, (*identity, *common, *NON_INTERACTIVE),
                 Path(key) if key else None, known_hosts, accept_new=checking == "accept-new")
