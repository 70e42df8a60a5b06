"""Provider-specific names, in one place: sizes, locations, images, prices.

Stack files use provider-neutral sizes (small, medium, large) and this table maps them.
Only non-US providers; locations limited to the EU so the data stays under EU law.
Provider names are the stack file's `podium:provider` values: `hcloud` (Hetzner Cloud) and
`scaleway`; the offsite bucket names the company (`hetzner`, `scaleway`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Server types per neutral size. Check before a first deploy (`hcloud server-type list`,
# `scw instance server-type list`): providers rename and retire lines.
# Hetzner: shared-vCPU x86, 2/4/8 vCPU with 4/8/16 GB (the CX23-CX43 line that replaced
# CX22-CX42 in late 2025).
# Scaleway: DEV1-M (3 vCPU, 4 GB), DEV1-L (4 vCPU, 8 GB), POP2-4C-16G (4 dedicated vCPU, 16 GB).
# DEV1 is not offered in fr-par-3 (PAR3), whose prices are also higher: the shipped Scaleway
# stacks use fr-par-1 and fr-par-2.
SIZES: dict[str, dict[str, str]] = {
    "local": {"small": "nspawn", "medium": "nspawn", "large": "nspawn"},
    "hcloud": {"small": "cx23", "medium": "cx33", "large": "cx43"},
    "scaleway": {"small": "DEV1-M", "medium": "DEV1-L", "large": "POP2-4C-16G"},
}

# Where hosts may be placed. Scaleway's are availability zones; its private network is
# regional, so one Scaleway stack stays in one region (REGION_OF below, checked by kit.stack).
LOCATIONS: dict[str, list[str]] = {
    "hcloud": ["fsn1", "nbg1", "hel1"],
    "scaleway": ["fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3",
                 "pl-waw-1", "pl-waw-2", "pl-waw-3"],
}

# Hetzner's private networks live in a network zone that must contain every location used.
NETWORK_ZONES = {"fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central"}


def region_of(zone: str) -> str:
    """Scaleway's region of an availability zone: fr-par-2 -> fr-par."""
    return zone.rsplit("-", 1)[0]


IMAGES = {"hcloud": "debian-13", "scaleway": "debian_trixie"}

# Who runs the stack's servers, and who may hold its offsite copy (never the same company).
COMPANY = {"hcloud": "hetzner", "scaleway": "scaleway"}

# Object storage for offsite backups, at a provider other than the one running the platform.
OFFSITE_REGIONS = {"scaleway": ["fr-par", "nl-ams", "pl-waw"],
                   "hetzner": ["fsn1", "nbg1", "hel1"]}
# Hetzner Object Storage's S3 endpoint per location (no pulumi-hcloud resource exists for
# buckets; the MinIO provider talks to this endpoint, as Hetzner's docs suggest).
HETZNER_S3_ENDPOINT = "{region}.your-objectstorage.com"
SCALEWAY_S3_ENDPOINT = "s3.{region}.scw.cloud"
# The environment variables holding each company's S3 key pair on the controller: the same
# ones `./podium up` reads to create the bucket (kit/cloud.py CREDENTIALS). The converge reads
# them for pgBackRest's repository; they are never written into the inventory.
OFFSITE_S3_ENV = {"scaleway": ("SCW_ACCESS_KEY", "SCW_SECRET_KEY"),
                  "hetzner": ("MINIO_USER", "MINIO_PASSWORD")}


def offsite_endpoint(company: str, region: str) -> str:
    """The S3 endpoint of the offsite bucket's company and region."""
    pattern = SCALEWAY_S3_ENDPOINT if company == "scaleway" else HETZNER_S3_ENDPOINT
    return pattern.format(region=region)

# Volume size (GB) per neutral size, for hosts whose roles keep data (postgres, media).
VOLUME_GB = {"small": 20, "medium": 50, "large": 100}
DATA_ROLES = ("postgres", "media", "backup")
# Scaleway block volumes come in performance classes; 5000 IOPS is the general-purpose one.
SCALEWAY_VOLUME_IOPS = 5000

# Placement groups: Hetzner spread groups hold at most 10 servers, Scaleway's at most 20.
PLACEMENT_GROUP_SIZE = {"hcloud": 10, "scaleway": 20}

# The providers' load balancer products used for `load_balancer: provider`.
LOAD_BALANCER_TYPE = {"hcloud": "lb11", "scaleway": "LB-S"}


# --- Prices -------------------------------------------------------------------------------
# One table, read by docs/production.md's cost section (bill_markdown) and ./podium plan.
# List prices in EUR per month excluding VAT, each provider's from the source named in
# PRICE_SOURCES (its own pages, with the date of the figures). None means NOT verified: no
# figure from the provider itself could be read when this was written, so none is given
# rather than a guess, and totals that need it are "unknown".
# Scaleway bills by the hour; a month is counted as 730 hours.

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class PriceSource:
    taken: str | None   # date of the figures (YYYY-MM-DD); None: not verified
    page: str           # the provider's price page, to check and update from
    what: str           # where the figures come from exactly


PRICE_SOURCES = {
    "hcloud": PriceSource(
        None, "https://www.hetzner.com/cloud/",
        "not verified: Hetzner's price page could not be read from here, and third-party "
        "figures disagree after Hetzner's 2026 price changes (1 April: all servers; 15 June: "
        "new orders and rescales). Authoritative figures: the page above, or the Hetzner "
        "Cloud API's GET /v1/pricing with your token"),
    "scaleway": PriceSource(
        "2025-08-28", "https://www.scaleway.com/en/pricing/",
        "hourly list prices of Scaleway's Instances FAQ "
        "(https://www.scaleway.com/en/docs/instances/faq/, source scaleway/docs-content "
        "pages/instances/faq.mdx, revision of 2025-08-28, figures unchanged since its "
        "2025-03-25 validation; regions other than PAR3), times 730 hours; the load "
        "balancer's price is not on that page and is not verified"),
}
PRICE_PAGES = {
    "hcloud": PRICE_SOURCES["hcloud"].page,
    "hetzner-object-storage": "https://www.hetzner.com/storage/object-storage/",
    "scaleway": PRICE_SOURCES["scaleway"].page,
}


def _hourly(eur_per_hour: float) -> float:
    return round(eur_per_hour * HOURS_PER_MONTH, 4)


PRICES: dict[str, dict[str, float | None]] = {
    "hcloud": {"cx23": None, "cx33": None, "cx43": None, "lb11": None,
               "volume-gb": None, "primary-ipv4": None},
    "scaleway": {
        "DEV1-M": _hourly(0.0256), "DEV1-L": _hourly(0.0495), "POP2-4C-16G": _hourly(0.147),
        "flexible-ipv4": _hourly(0.004),
        # "Block Storage" in the FAQ's storage table, used for data and root volumes.
        "volume-gb": _hourly(0.000118), "root-volume-gb": _hourly(0.000118),
        "LB-S": None,
    },
}
# Scaleway instances boot from a block volume billed apart (Hetzner's disk is included).
SCALEWAY_ROOT_VOLUME_GB = 20


@dataclass(frozen=True)
class BillLine:
    item: str          # the provider's product name (server type, "volume-gb", ...)
    quantity: int      # how many (GB for volumes)
    unit_eur: float | None

    @property
    def eur(self) -> float | None:
        return None if self.unit_eur is None else round(self.unit_eur * self.quantity, 2)

    @property
    def unit_text(self) -> str:
        if self.unit_eur is None:
            return "not verified"
        return f"{self.unit_eur:.4f}" if self.unit_eur < 0.1 else f"{self.unit_eur:.2f}"


def bill(stack) -> list[BillLine]:
    """What a cloud stack rents per month, at the prices above (``unit_eur`` None: unknown).

    Object storage is left out: it is billed by use (stored GB, egress), not by topology.
    """
    provider = stack.provider
    prices = PRICES[provider]
    counts: dict[str, int] = {}
    for host in stack.hosts:
        kind = SIZES[provider][host.size]
        counts[kind] = counts.get(kind, 0) + 1
    ip_item = "primary-ipv4" if provider == "hcloud" else "flexible-ipv4"
    counts[ip_item] = len(stack.hosts)
    if stack.load_balancer == "provider":
        counts[LOAD_BALANCER_TYPE[provider]] = 1
    volume_gb = sum(VOLUME_GB[h.size] for h in stack.hosts if set(h.roles) & set(DATA_ROLES))
    if volume_gb:
        counts["volume-gb"] = volume_gb
    if provider == "scaleway":
        counts["root-volume-gb"] = SCALEWAY_ROOT_VOLUME_GB * len(stack.hosts)
    return [BillLine(item, n, prices.get(item)) for item, n in counts.items()]


def total(lines: list[BillLine]) -> float | None:
    """The monthly total, or None when any line's price is unknown."""
    if any(line.eur is None for line in lines):
        return None
    return round(sum(line.eur for line in lines if line.eur is not None), 2)


def bill_markdown(stack) -> str:
    """The cost table of docs/production.md for ``stack`` (a test keeps the doc in step)."""
    rows = ["| item | quantity | EUR each per month | EUR per month |", "|---|---|---|---|"]
    for line in bill(stack):
        rows.append(f"| {line.item} | {line.quantity} | {line.unit_text} | "
                    f"{'-' if line.eur is None else f'{line.eur:.2f}'} |")
    amount = total(bill(stack))
    known = sum(line.eur for line in bill(stack) if line.eur is not None)
    shown_total = f"{amount:.2f}" if amount is not None else f"unknown (known lines: {known:.2f})"
    rows.append(f"| **total** | | | {shown_total} |")
    return "\n".join(rows)
