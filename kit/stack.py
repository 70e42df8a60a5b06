"""The stack file: one topology read by both provisioners (the lab and Pulumi).

A stack file is ``infra/stacks/Pulumi.<stack>.yaml``, a Pulumi stack configuration whose
``podium:*`` keys describe the platform. ``load_stack`` validates it completely before
anything is touched and raises ``PodiumError`` naming the file and the key at fault.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kit.errors import PodiumError
from kit.paths import REPO, shown, stack_file
from kit.providers import COMPANY, LOCATIONS, OFFSITE_REGIONS, region_of

ROLE_PORTS_FILE = REPO / "playbooks" / "group_vars" / "all" / "role_ports.yml"
STACK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
HOSTNAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Linux interface names are at most 15 bytes.
BRIDGE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")


@cache
def role_ports() -> dict[str, list[dict]]:
    """The role-to-ports table (playbooks/group_vars/all/role_ports.yml)."""
    data = yaml.safe_load(ROLE_PORTS_FILE.read_text())
    return data["podium_role_ports"]


def known_roles() -> list[str]:
    return sorted(role_ports())


# Test doubles a lab stack may place, which no platform needs: the local stacks need not
# cover them and cloud stacks may not use them. objectstore: an S3 stand-in for the offsite
# bucket (decision 0281).
LAB_ONLY_ROLES = ("objectstore",)


def platform_roles() -> list[str]:
    """The roles a platform is made of (every known role but common and the lab-only ones)."""
    return [r for r in known_roles() if r != "common" and r not in LAB_ONLY_ROLES]


# Ports that two roles claim in the role-to-ports table and can share on one host, because
# one daemon serves both: (port, proto) -> the roles and why. Any other port claimed by two
# roles of one host is a collision the stack validation refuses (decision 0263).
SHARED_PORTS: dict[tuple[int, str], tuple[frozenset[str], str]] = {
    (9113, "tcp"): (frozenset({"edge", "media"}), "one nginx and its one exporter"),
    (8432, "tcp"): (frozenset({"postgres", "backup"}), "one pgBackRest TLS server"),
    (80, "tcp"): (frozenset({"edge", "mail"}),
                  "certbot stops the edge's nginx for the mail certificate (decision 0262)"),
}


def port_collisions(roles: list[str]) -> list[str]:
    """Ports that two of ``roles`` claim on one host and cannot share, as 'tcp/80: a, b'."""
    owners: dict[tuple[int, str], set[str]] = {}
    table = role_ports()
    for role in roles:
        for entry in table.get(role) or []:
            owners.setdefault((entry["port"], entry["proto"]), set()).add(role)
    shared = {key: roles for key, (roles, _why) in SHARED_PORTS.items()}
    return [f"{proto}/{port}: {', '.join(sorted(names))}"
            for (port, proto), names in sorted(owners.items())
            if len(names) > 1 and not names <= shared.get((port, proto), frozenset())]


def _hostname(value: str) -> str:
    if not HOSTNAME.match(value):
        raise ValueError(
            "must be 2-32 characters: lowercase letters, digits and '-', starting with a letter"
        )
    return value


def _domain(value: str) -> str:
    if not DOMAIN.match(value):
        raise ValueError("must be a lowercase DNS name such as 'podium.test' or 'example.org'")
    return value


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a network in CIDR form ({exc})") from None


Cidr = Annotated[str, AfterValidator(_cidr)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Admin(Strict):
    """The admin user Ansible connects as, everywhere."""

    user: Annotated[str, AfterValidator(_hostname)] = "podium"
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    ssh_cidrs: list[Cidr] = Field(min_length=1)
    ssh_keys: list[str] = []

    @field_validator("user")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if value == "root":
            raise ValueError("must not be root: the kit disables root login")
        return value

    @field_validator("ssh_keys")
    @classmethod
    def _public_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not re.match(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+", key):
                raise ValueError(f"'{key[:30]}...' is not an OpenSSH public key")
        return keys


class Network(Strict):
    cidr: Cidr

    @field_validator("cidr")
    @classmethod
    def _private_v4(cls, value: str) -> str:
        net = ipaddress.ip_network(value)
        if net.version != 4 or not net.is_private or net.prefixlen > 28:
            raise ValueError(f"'{value}' must be a private IPv4 network of /28 or larger")
        return value


class Lab(Strict):
    """Settings used only by the local lab provisioner."""

    bridge: str = Field(pattern=BRIDGE.pattern)
    suite: Literal["trixie", "bookworm"] = "trixie"
    # Another lab stack whose objectstore host stands for the offsite bucket at another
    # company (decision 0282): the backups and copies then outlive every host of this stack.
    offsite_store: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    # Where pgBackRest's repo1 lives: on the backup host's disk with a second repository in
    # the bucket (the lab's default), or in the bucket only, as cloud stacks keep it
    # (decision 0283: the lab rehearses a cloud stack's recovery with it).
    repository: Literal["disk", "bucket"] = "disk"


class Offsite(Strict):
    """Where backups go: object storage at another provider than the platform's."""

    provider: Literal["scaleway", "hetzner"]
    region: str

    @model_validator(mode="after")
    def _known_region(self) -> Offsite:
        regions = OFFSITE_REGIONS[self.provider]
        if self.region not in regions:
            raise ValueError(f"region '{self.region}' is not a {self.provider} region; use one "
                             f"of: {', '.join(regions)}")
        return self


class Host(Strict):
    name: Annotated[str, AfterValidator(_hostname)]
    roles: list[str] = Field(min_length=1)
    size: Literal["small", "medium", "large"]
    address: ipaddress.IPv4Address
    location: str | None = None

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        known = known_roles()
        for role in roles:
            if role not in known:
                raise ValueError(f"unknown role '{role}'; known roles: {', '.join(known)}")
        if len(set(roles)) != len(roles):
            raise ValueError("a role is listed twice")
        if collisions := port_collisions(roles):
            raise ValueError(
                f"these roles cannot share one host, they claim the same port "
                f"({'; '.join(collisions)}): put them on separate hosts, or make one daemon "
                "serve both and list the port in kit/stack.py SHARED_PORTS"
            )
        return roles


class Stack(Strict):
    """A validated stack. ``name`` comes from the file name, the rest from ``podium:*`` keys."""

    name: str
    provider: Literal["local", "hcloud", "scaleway"]
    domain: Annotated[str, AfterValidator(_domain)]
    mode: Literal["desk", "social"]
    admin: Admin
    network: Network
    hosts: list[Host] = Field(min_length=1)
    lab: Lab | None = None
    # "proxy": HAProxy on the hosts with the proxy role; "provider": the cloud's own load
    # balancer in front of the app hosts (no proxy host then).
    load_balancer: Literal["proxy", "provider"] = "proxy"
    offsite: Offsite | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Stack:
        net = ipaddress.ip_network(self.network.cidr)
        gateway = next(net.hosts())
        seen_names: dict[str, int] = {}
        seen_addresses: dict[str, int] = {}
        for index, host in enumerate(self.hosts):
            where = f"hosts[{index}]"
            if host.name in seen_names:
                raise ValueError(
                    f"{where}.name: duplicate host name '{host.name}' "
                    f"(also hosts[{seen_names[host.name]}])"
                )
            seen_names[host.name] = index
            if host.address not in net or host.address in (net.network_address, gateway,
                                                            net.broadcast_address):
                raise ValueError(
                    f"{where}.address: {host.address} must be inside network.cidr {net} "
                    f"and not its network, broadcast or first address ({gateway}, the gateway)"
                )
            if str(host.address) in seen_addresses:
                raise ValueError(
                    f"{where}.address: {host.address} is already used by "
                    f"hosts[{seen_addresses[str(host.address)]}]"
                )
            seen_addresses[str(host.address)] = index
        if self.load_balancer == "provider":
            if self.provider == "local":
                raise ValueError("load_balancer: 'provider' needs a cloud provider; the lab "
                                 "uses 'proxy'")
            for index, host in enumerate(self.hosts):
                if str(host.address) == self.load_balancer_address:
                    raise ValueError(
                        f"hosts[{index}].address: {host.address} is the provider load "
                        "balancer's address (the network's last usable one); pick another")
            proxies = [h.name for h in self.hosts if "proxy" in h.roles]
            if proxies:
                raise ValueError(f"load_balancer: 'provider' replaces the proxy role, but "
                                 f"{', '.join(proxies)} still has it")
        if self.provider == "local" and self.lab is None:
            raise ValueError("lab: required when provider is 'local' (bridge name and suite)")
        if self.lab is not None and self.lab.offsite_store is not None:
            if self.lab.offsite_store == self.name:
                raise ValueError("lab.offsite_store: names this stack itself; the store is "
                                 "another lab stack (one with an objectstore host)")
            own = [h.name for h in self.hosts if "objectstore" in h.roles]
            if own:
                raise ValueError(f"lab.offsite_store: the stack has its own objectstore host "
                                 f"({', '.join(own)}); use one or the other")
        if (self.lab is not None and self.lab.repository == "bucket"
                and self.lab.offsite_store is None
                and not any("objectstore" in h.roles for h in self.hosts)):
            raise ValueError("lab.repository: 'bucket' needs a bucket: name a store stack in "
                             "lab.offsite_store, or give a host the objectstore role")
        if self.provider != "local":
            if self.lab is not None:
                raise ValueError(f"lab: only for provider 'local', not '{self.provider}'")
            for index, host in enumerate(self.hosts):
                if lab_only := sorted(set(host.roles) & set(LAB_ONLY_ROLES)):
                    raise ValueError(
                        f"hosts[{index}].roles: {', '.join(lab_only)} is a lab test double, "
                        f"not for provider '{self.provider}' (the offsite bucket is "
                        "podium:offsite)")
            allowed = LOCATIONS[self.provider]
            for index, host in enumerate(self.hosts):
                if host.location not in allowed:
                    what = f"'{host.location}' is not a location of" if host.location else \
                        "missing; it is required for"
                    raise ValueError(
                        f"hosts[{index}].location: {what} {self.provider}; use one of: "
                        f"{', '.join(allowed)}"
                    )
            if self.offsite is None:
                raise ValueError("offsite: required for cloud stacks: backups must also live "
                                 "at another provider (e.g. {provider: scaleway, region: "
                                 "fr-par})")
            if self.offsite.provider == COMPANY[self.provider]:
                raise ValueError(f"offsite.provider: '{self.offsite.provider}' runs the "
                                 "servers too; the offsite copy must be at another company")
            if self.provider == "scaleway":
                # A Scaleway private network spans one region (its zones), not more.
                regions = {region_of(h.location or "") for h in self.hosts}
                if len(regions) > 1:
                    raise ValueError("hosts[].location: a Scaleway stack stays in one region "
                                     f"(its private network is regional); got zones of "
                                     f"{', '.join(sorted(regions))}")
            if not self.admin.ssh_keys:
                raise ValueError(
                    "admin.ssh_keys: at least one operator public key is required for "
                    f"provider '{self.provider}' (the lab makes its own key, the cloud cannot)"
                )
        return self

    @property
    def gateway(self) -> str:
        """The first address of the network: the lab host's bridge, the cloud's gateway."""
        return str(next(ipaddress.ip_network(self.network.cidr).hosts()))

    @property
    def load_balancer_address(self) -> str:
        """The provider load balancer's private address: the network's last usable one, so
        edges can be configured with it before it exists (load_balancer: provider)."""
        return str(ipaddress.ip_network(self.network.cidr).broadcast_address - 1)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.network.cidr).prefixlen

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise PodiumError(
            f"stack '{self.name}' has no host '{name}'",
            f"hosts are: {', '.join(h.name for h in self.hosts)}",
        )

    def groups(self) -> dict[str, list[str]]:
        """Role -> host names, for every known role (empty groups included)."""
        groups: dict[str, list[str]] = {role: [] for role in known_roles() if role != "common"}
        for host in self.hosts:
            for role in host.roles:
                groups.setdefault(role, []).append(host.name)
        return groups


def _format_location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _config_key(location: str) -> str:
    """Render a model location as the stack file's own key, e.g. podium:hosts[2].size."""
    return f"podium:{location}" if location else "config"


def parse_stack(name: str, text: str, source: Path | str) -> Stack:
    """Validate a stack file's text. Raises PodiumError naming ``source`` and the key."""
    if not STACK_NAME.match(name):
        raise PodiumError(
            f"{source}: stack name '{name}' is not valid",
            "stack names are 1-20 lowercase letters, digits and '-'",
        )
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PodiumError(f"{source}: not valid YAML: {exc}", "fix the syntax and retry") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise PodiumError(
            f"{source}: missing key 'config'",
            "a stack file is a Pulumi stack config: a mapping with a 'config:' section "
            "holding the podium:* keys (see infra/stacks/Pulumi.local.yaml)",
        )
    fields: dict[str, object] = {"name": name}
    for key, value in doc["config"].items():
        if not isinstance(key, str) or not key.startswith("podium:"):
            continue  # other namespaces (hcloud:token, ...) belong to their providers
        fields[key.removeprefix("podium:")] = value
    try:
        return Stack.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            location = _format_location(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "missing key"
            elif err["type"] == "extra_forbidden":
                message = "unknown key (check its spelling)"
            elif err["type"] == "literal_error":
                message = f"{message}, got {err.get('input')!r}"
            if not location and ":" in message.split()[0]:
                # model-level checks already name their key ("hosts[2].name: ...")
                key, _, message = message.partition(": ")
                location = key
            problems.append(f"{_config_key(location)}: {message}")
        raise PodiumError(
            f"{source}: invalid stack file\n  " + "\n  ".join(problems),
            f"fix the key(s) named above in {source}; nothing has been changed",
        ) from None


def load_stack(name: str) -> Stack:
    """Read and validate ``infra/stacks/Pulumi.<name>.yaml``."""
    path = stack_file(name)
    if not path.is_file():
        available = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in path.parent.glob(
            "Pulumi.*.yaml"))
        raise PodiumError(
            f"no stack file for stack '{name}': {shown(path)} does not exist",
            f"use one of: {', '.join(available) or '(none)'}, or create that file",
        )
    return parse_stack(name, path.read_text(), shown(path))
