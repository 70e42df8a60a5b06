"""Rendering cloud-init data from templates/cloud-init/.

``user_data`` is the same for the lab and the cloud; ``meta_data`` and ``network_config``
form the lab's NoCloud seed (cloud providers supply theirs from their metadata service).
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from kit.paths import REPO
from kit.stack import Host, Stack

TEMPLATES = REPO / "templates" / "cloud-init"
SEED_DIR = Path("var/lib/cloud/seed/nocloud")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def user_data(stack: Stack, host: Host, ssh_keys: list[str], apt_proxy: str = "") -> str:
    return _env.get_template("user-data.yaml.j2").render(
        stack=stack, host=host, ssh_keys=ssh_keys, apt_proxy=apt_proxy
    )


def meta_data(stack: Stack, host: Host, instance_id: str) -> str:
    return _env.get_template("meta-data.yaml.j2").render(
        stack=stack, host=host, instance_id=instance_id
    )


def network_config(stack: Stack, host: Host) -> str:
    return _env.get_template("network-config.yaml.j2").render(stack=stack, host=host)


def write_seed(root: Path, stack: Stack, host: Host, ssh_keys: list[str], apt_proxy: str,
               instance_id: str) -> None:
    """Write the NoCloud seed into a machine's root filesystem."""
    seed = root / SEED_DIR
    seed.mkdir(parents=True, exist_ok=True)
    (seed / "user-data").write_text(user_data(stack, host, ssh_keys, apt_proxy))
    (seed / "meta-data").write_text(meta_data(stack, host, instance_id))
    (seed / "network-config").write_text(network_config(stack, host))
    for name in ("user-data", "meta-data", "network-config"):
        (seed / name).chmod(0o600)
