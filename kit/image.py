"""The lab's Debian base image: built once with mmdebstrap, cached as a tarball.

The image holds only what has to be there before cloud-init and Ansible can take over:
systemd, sshd, python3 and cloud-init. Everything else is installed by the roles, exactly as
on a cloud server started from the provider's stock Debian image.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from kit.errors import PodiumError
from kit.paths import CACHE_ROOT

IMAGES = CACHE_ROOT / "images"
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2",
    "ca-certificates", "sudo", "cloud-init", "apt-utils", "locales",
    # Ansible's apt module needs it, and under Mitogen it cannot install it by itself.
    # The user-data asks for it too, for cloud images that lack it.
    "python3-apt",
]

# Baked into the image: the NoCloud seed directory is the only datasource in the lab, and
# cloud-init renders network-config for systemd-networkd (the image has no ifupdown/netplan).
CLOUD_CFG = """\
# Podium lab image: read the NoCloud seed that ./podium writes into the machine.
datasource_list: [NoCloud, None]
system_info:
  network:
    renderers: [networkd]
"""

# Run inside the new root ($1) after packages are installed.
CUSTOMIZE = [
    # Every machine must get its own SSH host keys (cloud-init generates them at first boot).
    'rm -f "$1"/etc/ssh/ssh_host_*',
    # An empty machine-id: each machine gets its own at creation.
    'truncate -s 0 "$1"/etc/machine-id',
    'rm -f "$1"/var/lib/dbus/machine-id',
    'systemctl --root="$1" enable systemd-networkd.service',
]


def recipe_key(suite: str) -> str:
    """A digest of everything that goes into the image: change any of it, get a new image."""
    digest = hashlib.sha256()
    for part in (suite, MIRROR, *PACKAGES, CLOUD_CFG, *CUSTOMIZE):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def image_path(suite: str) -> Path:
    return IMAGES / f"debian-{suite}-{recipe_key(suite)}.tar"


def ensure_image(suite: str, note) -> Path:
    """Return the cached image for ``suite``, building it first if needed."""
    path = image_path(suite)
    if path.is_file():
        note(f"using cached image {path}")
        return path
    IMAGES.mkdir(parents=True, exist_ok=True)
    note(f"building {path.name} with mmdebstrap (about a minute)")
    partial = path.with_suffix(".tar.partial")
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write(CLOUD_CFG)
    sources = [
        f"deb {MIRROR} {suite} main",
        f"deb {MIRROR} {suite}-updates main",
        f"deb {SECURITY} {suite}-security main",
    ]
    cmd = [
        "mmdebstrap", "--variant=minbase", "--format=tar", "--quiet",
        f"--include={','.join(PACKAGES)}",
        f"--customize-hook=upload {cfg.name} /etc/cloud/cloud.cfg.d/90-podium-lab.cfg",
        "--customize-hook=chmod 0644 \"$1\"/etc/cloud/cloud.cfg.d/90-podium-lab.cfg",
        *(f"--customize-hook={hook}" for hook in CUSTOMIZE),
        suite, str(partial), *sources,
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        os.unlink(cfg.name)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise PodiumError(
            f"building the {suite} base image failed (mmdebstrap exited {result.returncode})",
            "check that this host reaches deb.debian.org, then run ./podium up again",
            detail=(result.stderr or result.stdout)[-3000:],
        )
    partial.rename(path)
    for old in IMAGES.glob(f"debian-{suite}-*.tar"):
        if old != path:
            old.unlink()
    return path
