"""Where the kit keeps things. One place, so `down` can remove exactly what `up` made.

- ``.podium/<stack>/`` in the checkout: what the operator uses (inventory, lab SSH key, logs).
- ``/var/lib/podium/stacks/<stack>/``: the lab machines' root filesystems (large).
- ``/var/cache/podium/``: shared by all stacks and kept by `down` (base images, apt cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO / "infra" / "stacks"
STATE_ROOT = REPO / ".podium"
MACHINES_ROOT = Path("/var/lib/podium/stacks")
CACHE_ROOT = Path("/var/cache/podium")
HOST_SERVICES_ROOT = Path("/var/lib/podium/host")


def shown(path: Path) -> str:
    """A path as operators see it: relative to the checkout when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def stack_file(stack: str) -> Path:
    return STACKS_DIR / f"Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class StackPaths:
    """Every path that belongs to one stack."""

    stack: str

    @property
    def state(self) -> Path:
        return STATE_ROOT / self.stack

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.yml"

    @property
    def ssh_key(self) -> Path:
        return self.state / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state / "ssh" / "known_hosts"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def facts(self) -> Path:
        return self.state / "facts"

    @property
    def secrets(self) -> Path:
        """Generated secrets (passwords, keys): outside the state directory so that
        ``down`` keeps them. Roles create them here through Ansible's password lookup."""
        return STATE_ROOT / "secrets" / self.stack

    @property
    def machines(self) -> Path:
        return MACHINES_ROOT / self.stack

    def machine_root(self, host: str) -> Path:
        return self.machines / host / "root"

    def machine_dir(self, host: str) -> Path:
        return self.machines / host

    def console_log(self, host: str) -> Path:
        return self.logs / f"console-{host}.log"
