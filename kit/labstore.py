"""A lab stack's offsite store in another lab stack, and the relay that reaches it
(decision 0282).

In the cloud the offsite bucket is at another company, reached over the internet, and it
outlives every server of the stack. In the lab a stack names another lab stack with
``lab.offsite_store``; that stack's objectstore host (the S3 stand-in of decision 0281)
holds the bucket ``podium-<stack>``. The lab's bridges are not routed to one another
(guests have no route out, the host does not forward), so the host relays TCP from the
client stack's gateway address, port 443, to the store host: one socat per client stack,
listening only on that bridge address and connecting only to the store. The guests reach
the store under its own name (an /etc/hosts entry pointing at their gateway), so TLS is
verified against the store's certificate as it would be against a provider's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kit.errors import PodiumError
from kit.paths import HOST_SERVICES_ROOT, StackPaths
from kit.stack import Host, Stack, load_stack

PORT = 443
REGION = "us-east-1"  # moto's default; the stand-in ignores it but S3 clients send one
RELAY_DIR = HOST_SERVICES_ROOT / "offsite-relay"


@dataclass(frozen=True)
class Store:
    """The store stack and its objectstore host."""

    stack: Stack
    host: Host

    @property
    def endpoint(self) -> str:
        """The name its certificate carries (the objectstore role's server name)."""
        return self.host.name

    @property
    def ca_file(self) -> Path:
        return store_ca_file(self.stack.name)


def store_ca_file(store_stack: str) -> Path:
    """The CA that signed a store's certificate, kept in its stack's secrets."""
    return StackPaths(store_stack).secrets / "objectstore-tls" / "ca.crt"


def bucket(stack: Stack) -> str:
    """The client stack's bucket in the store: one per stack, as a provider would have."""
    return f"podium-{stack.name}"


def store_of(stack: Stack) -> Store | None:
    """The store named by ``stack.lab.offsite_store``, checked; None when it names none."""
    if stack.lab is None or stack.lab.offsite_store is None:
        return None
    name = stack.lab.offsite_store
    store = load_stack(name)  # a missing or invalid file is a PodiumError naming it
    where = f"stack '{stack.name}', lab.offsite_store"
    if store.provider != "local":
        raise PodiumError(f"{where}: '{name}' is a {store.provider} stack; the lab's store is "
                          "a lab stack with an objectstore host",
                          "name a lab stack, or use podium:offsite in a cloud stack")
    hosts = [h for h in store.hosts if "objectstore" in h.roles]
    if len(hosts) != 1:
        raise PodiumError(f"{where}: stack '{name}' has {len(hosts)} objectstore hosts; the "
                          "store needs exactly one",
                          f"give one host of infra/stacks/Pulumi.{name}.yaml the role "
                          "objectstore")
    if store.network.cidr == stack.network.cidr:
        raise PodiumError(f"{where}: '{name}' uses the same network {stack.network.cidr}",
                          "give the store stack a network of its own")
    return Store(store, hosts[0])


def inventory_vars(stack: Stack) -> dict:
    """``podium_lab_store`` for the inventory: the S3 stand-in this stack's backup host
    uses, {} when there is none. Its own objectstore host (lab-backup, bucket
    ``podium-offsite``), or another stack's, reached through the relay on the gateway."""
    own = [h for h in stack.hosts if "objectstore" in h.roles]
    if own:
        return {"endpoint": own[0].name, "address": str(own[0].address),
                "bucket": "podium-offsite", "region": REGION, "create_bucket": False,
                "ca_file": str(store_ca_file(stack.name).resolve()),
                "repository": repository(stack)}
    store = store_of(stack)
    if store is None:
        return {}
    return {"endpoint": store.endpoint, "address": stack.gateway, "bucket": bucket(stack),
            "region": REGION, "create_bucket": True, "store_stack": store.stack.name,
            "ca_file": str(store.ca_file.resolve()), "repository": repository(stack)}


def repository(stack: Stack) -> str:
    """Where repo1 is: ``disk`` (the backup host's, with repo2 in the bucket) or ``bucket``
    (only there, as in the cloud; decision 0283)."""
    return stack.lab.repository if stack.lab is not None else "disk"


# ---------------------------------------------------------------- the relay on the host

def _pid_file(client: str) -> Path:
    return RELAY_DIR / f"{client}.pid"


def relay_pid(client: str) -> int | None:
    """The running relay of ``client``, if any (the pid file's process must be socat)."""
    try:
        pid = int(_pid_file(client).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if cmdline and cmdline[0].endswith(b"socat") else None


def _relay_args(listen: str, target: str, port: int = PORT,
                target_port: int = PORT) -> list[str]:
    return ["socat", f"TCP4-LISTEN:{port},bind={listen},reuseaddr,fork",
            f"TCP4:{target}:{target_port},connect-timeout=10"]


def ensure_relay(stack: Stack, note) -> None:
    """The relay from ``stack``'s gateway to its store, started unless it already runs with
    the same addresses. The store stack must be up: without it the backups have nowhere to
    go, and the converge would fail later with a less clear error."""
    store = store_of(stack)
    if store is None:
        stop_relay(stack.name)
        return
    from kit import lab
    from kit.machines import Machine

    state = lab._load_state(store.stack.name)
    paths = StackPaths(store.stack.name)
    if state is None or Machine(state, state.host(store.host.name), paths).pid() is None:
        raise PodiumError(f"stack '{stack.name}' keeps its offsite copies in stack "
                          f"'{store.stack.name}' (lab.offsite_store), whose store host "
                          f"{store.host.name} is not running",
                          f"./podium up --stack {store.stack.name} --no-test first")
    args = _relay_args(stack.gateway, str(store.host.address))
    pid = relay_pid(stack.name)
    if pid is not None:
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] == \
                [a.encode() for a in args]:
            return
        stop_relay(stack.name)
    RELAY_DIR.mkdir(parents=True, exist_ok=True)
    log = (RELAY_DIR / f"{stack.name}.log").open("ab")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    _pid_file(stack.name).write_text(f"{proc.pid}\n")
    time.sleep(0.3)
    if proc.poll() is not None:
        _pid_file(stack.name).unlink(missing_ok=True)
        raise PodiumError(f"the offsite relay {stack.gateway}:{PORT} -> "
                          f"{store.host.address}:{PORT} did not start",
                          f"check that port {PORT} is free on {stack.gateway} (ss -ltnp) and "
                          f"read {RELAY_DIR / (stack.name + '.log')}")
    note(f"offsite relay {stack.gateway}:{PORT} -> {store.host.name} "
         f"({store.host.address}, stack {store.stack.name})")


def stop_relay(client: str) -> None:
    pid = relay_pid(client)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)  # socat forks one child per connection
        for _ in range(50):
            if relay_pid(client) is None:
                break
            time.sleep(0.1)
    _pid_file(client).unlink(missing_ok=True)
