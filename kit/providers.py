"""Provider-specific names, in one place: sizes, locations, images.

Stack files use provider-neutral sizes (small, medium, large) and this table maps them.
Only non-US providers; locations limited to the EU so the data stays under EU law.
"""

from __future__ import annotations

# Server types per neutral size. Hetzner's shared-vCPU x86 line (2/4/8 vCPU, 4/8/16 GB):
# check `hcloud server-type list` before a first deploy, as Hetzner renames lines.
SIZES: dict[str, dict[str, str]] = {
    "local": {"small": "nspawn", "medium": "nspawn", "large": "nspawn"},
    "hcloud": {"small": "cx22", "medium": "cx32", "large": "cx42"},
}

# Where hosts may be placed.
LOCATIONS: dict[str, list[str]] = {
    "hcloud": ["fsn1", "nbg1", "hel1"],
}

# Hetzner's private networks live in a network zone that must contain every location used.
NETWORK_ZONES = {"fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central"}

IMAGES = {"hcloud": "debian-13"}

# Object storage for offsite backups, at a provider other than the one running the platform.
OFFSITE_REGIONS = {"scaleway": ["fr-par", "nl-ams", "pl-waw"]}

# Volume size (GB) per neutral size, for hosts whose roles keep data (postgres, media).
VOLUME_GB = {"small": 20, "medium": 50, "large": 100}
DATA_ROLES = ("postgres", "media", "backup")
