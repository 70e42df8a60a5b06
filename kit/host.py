"""Preparing the lab's host: packages, nspawn support, the private bridge.

Everything here is idempotent: it checks first and changes only what is missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

from kit.errors import PodiumError
from kit.stack import Stack

# Debian packages the lab needs on the host. Each is in Debian 12 and 13.
HOST_PACKAGES = [
    "systemd-container",  # systemd-nspawn
    "mmdebstrap",  # builds the base image
    "apt-cacher-ng",  # the guests' apt proxy
    "socat",  # the relay to another stack's offsite store (kit/labstore.py)
    "openssh-client",
    "iproute2",
    "util-linux",
    "ca-certificates",
    # promtool and amtool, for the unit tier's alert-rule tests. Their daemons are not wanted
    # here: on a host whose init starts services on install, stop and disable them
    # (systemctl disable --now prometheus prometheus-alertmanager).
    "prometheus",
    "prometheus-alertmanager",
    "age",  # encrypts the secrets copy for the backup host (roles/backup)
    "libnss3-tools",  # certutil: the lab browser test trusts the lab CA (kit/browser.py)
]


def run(cmd: list[str], what: str, hint: str = "", **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure raise PodiumError saying what was being done."""
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)
    except FileNotFoundError:
        raise PodiumError(f"{what}: '{cmd[0]}' is not installed", hint) from None
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or "").strip()
        raise PodiumError(
            f"{what} failed: {' '.join(cmd)} exited with {exc.returncode}",
            hint,
            detail=output[-2000:],
        ) from None


def missing_packages(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_packages(packages: list[str], note) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    note(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    hint = "check that this machine reaches its Debian mirror (apt-get update), then retry"
    run(["apt-get", "update", "-qq"], "apt-get update", hint, env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        f"installing {' '.join(missing)}", hint, env=env)


def check_root() -> None:
    if os.geteuid() != 0:
        raise PodiumError(
            "the lab must be managed as root (bridges, containers, host services)",
            "run ./podium again as root, e.g. with sudo",
        )


# Every guest's systemd and its services hold inotify instances, which count against the
# host's per-user limit (root's, shared by all guests): Debian's default of 128 runs out with
# a full stack ("Too many open files" at boot or in services).
INOTIFY_LIMITS = {"fs.inotify.max_user_instances": 1024, "fs.inotify.max_user_watches": 524288}


def ensure_inotify_limits(note) -> None:
    """Raise the host's inotify limits to at least INOTIFY_LIMITS (never lowers them)."""
    for key, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            current = int(path.read_text())
        except (OSError, ValueError):
            continue
        if current < wanted:
            try:
                path.write_text(str(wanted))
            except OSError as exc:
                raise PodiumError(
                    f"cannot raise {key} from {current} to {wanted} ({exc})",
                    f"set it yourself: sysctl -w {key}={wanted}",
                ) from None
            note(f"raised {key} from {current} to {wanted} (many guests share it)")


def check_nspawn() -> None:
    """Fail clearly when this machine cannot run systemd-nspawn containers."""
    if shutil.which("systemd-nspawn") is None:
        raise PodiumError(
            "systemd-nspawn is not available on this host",
            "apt-get install systemd-container (./podium up installs it itself on Debian)",
        )
    probe = subprocess.run(
        ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "--mount-proc",
         "true"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        raise PodiumError(
            "this host cannot create the namespaces systemd-nspawn needs "
            "(mount, uts, ipc, net, pid)",
            "run the lab on a Debian machine or VM where root may create namespaces "
            "(not inside an unprivileged container)",
            detail=probe.stderr,
        )


def _interfaces() -> list[dict]:
    return json.loads(run(["ip", "-j", "addr", "show"], "listing network interfaces").stdout)


def _overlaps(stack: Stack, source: str) -> list[str]:
    """Interfaces or routes other than the stack's bridge that use its subnet."""
    assert stack.lab is not None
    net = ipaddress.ip_network(stack.network.cidr)
    found = []
    for iface in _interfaces():
        if iface["ifname"] == stack.lab.bridge:
            continue
        for addr in iface.get("addr_info", []):
            if addr.get("family") != "inet":
                continue
            other = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network
            if other.overlaps(net):
                found.append(f"interface {iface['ifname']} has {addr['local']}/{addr['prefixlen']}")
    routes = json.loads(run(["ip", "-j", "-4", "route", "show"], "listing routes").stdout)
    for route in routes:
        if route.get("dst") in (None, "default") or route.get("dev") == stack.lab.bridge:
            continue
        other = ipaddress.ip_network(route["dst"] if "/" in route["dst"] else f"{route['dst']}/32",
                                     strict=False)
        if other.overlaps(net) and not any(route.get("dev", "") in f for f in found):
            found.append(f"route {route['dst']} via {route.get('dev', '?')}")
    return found


def bridge_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def ensure_bridge(stack: Stack, source: str, note) -> None:
    """Create the stack's bridge with the gateway address, or check the existing one."""
    assert stack.lab is not None
    bridge = stack.lab.bridge
    clashes = _overlaps(stack, source)
    if clashes:
        raise PodiumError(
            f"the subnet {stack.network.cidr} of stack '{stack.name}' is already in use on "
            f"this host: {'; '.join(clashes)}",
            f"choose a free private network in {source} (podium:network.cidr, the host "
            "addresses and podium:admin.ssh_cidrs), or remove what uses it",
        )
    gateway = f"{stack.gateway}/{stack.prefixlen}"
    if bridge_exists(bridge):
        iface = next(i for i in _interfaces() if i["ifname"] == bridge)
        addresses = [f"{a['local']}/{a['prefixlen']}" for a in iface.get("addr_info", [])
                     if a.get("family") == "inet"]
        if not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
            raise PodiumError(
                f"network interface '{bridge}' exists but is not a bridge",
                f"pick another podium:lab.bridge name in {source}",
            )
        if addresses and gateway not in addresses:
            raise PodiumError(
                f"bridge '{bridge}' exists with {', '.join(addresses)}, not {gateway}: "
                "another stack or tool uses that name",
                f"pick another podium:lab.bridge name in {source}, or run ./podium down "
                "for the stack that owns it",
            )
        if not addresses:
            run(["ip", "addr", "add", gateway, "dev", bridge], f"addressing bridge {bridge}")
        run(["ip", "link", "set", bridge, "up"], f"bringing up bridge {bridge}")
        return
    note(f"creating bridge {bridge} with {gateway}")
    run(["ip", "link", "add", bridge, "type", "bridge"], f"creating bridge {bridge}")
    run(["ip", "addr", "add", gateway, "dev", bridge], f"addressing bridge {bridge}")
    run(["ip", "link", "set", bridge, "up"], f"bringing up bridge {bridge}")


def remove_bridge(name: str) -> None:
    if bridge_exists(name):
        run(["ip", "link", "del", name], f"removing bridge {name}")
