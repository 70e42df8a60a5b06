"""The guests' apt proxy: one apt-cacher-ng on the host, listening on each lab bridge.

Guests have no route to the outside; they fetch Debian packages through this proxy, which
keeps a cache under /var/cache/podium/apt shared by all stacks, so the second `up` installs
from the cache. It listens only on the bridges' gateway addresses, never on every address,
and on port 3149 rather than 3142 so that Debian's own apt-cacher-ng service (started by
the package on hosts that run systemd) cannot collide with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from kit.errors import PodiumError
from kit.paths import CACHE_ROOT, HOST_SERVICES_ROOT

PORT = 3149
BASE = HOST_SERVICES_ROOT / "apt-proxy"
CONF_DIR = BASE / "conf"
PID_FILE = BASE / "apt-cacher-ng.pid"
LOG_DIR = BASE / "log"
CACHE_DIR = CACHE_ROOT / "apt"
MIRROR = "http://deb.debian.org/debian/"


def url(address: str) -> str:
    return f"http://{address}:{PORT}"


def _config(addresses: list[str]) -> str:
    # The Remap lines send every Debian mirror name to deb.debian.org: Debian's package ships
    # ftp.debian.org as the backend, which does not resolve everywhere.
    return "\n".join([
        "# Written by ./podium (kit/aptproxy.py); rewritten on every up/down.",
        f"CacheDir: {CACHE_DIR}",
        f"LogDir: {LOG_DIR}",
        "SupportDir: /usr/lib/apt-cacher-ng",
        f"Port: {PORT}",
        f"BindAddress: {' '.join(sorted(addresses))}",
        f"PidFile: {PID_FILE}",
        "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian",
        "Remap-secdeb: security.debian.org security.debian.org/debian-security "
        "deb.debian.org/debian-security /debian-security ; deb.debian.org/debian-security",
        "ExThreshold: 4",
        "ReportPage: acng-report.html",
        "",
    ])


def _pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return pid if exe.endswith("apt-cacher-ng") else None


def stop() -> None:
    pid = _pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if _pid() is None:
            break
        time.sleep(0.1)
    PID_FILE.unlink(missing_ok=True)


def _bound_elsewhere(conf_file: Path) -> list[str]:
    """Addresses the running proxy serves that are still on an interface of this host.

    Several checkouts of the kit may run lab stacks at once, each knowing only its own
    stacks: a restart keeps the others' bridges served instead of cutting their guests off.
    """
    if _pid() is None or not conf_file.is_file():
        return []
    bound = []
    for line in conf_file.read_text().splitlines():
        if line.startswith("BindAddress:"):
            bound = line.split(":", 1)[1].split()
    present = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                             text=True).stdout
    return [a for a in bound if f" {a}/" in present]


def ensure(addresses: list[str], note) -> None:
    """Run the proxy on ``addresses`` and on those it already serves for bridges that still
    exist (restarting it if that set changed)."""
    addresses = sorted(set(addresses) | set(_bound_elsewhere(CONF_DIR / "acng.conf")))
    if not addresses:
        stop()
        return
    config = _config(addresses)
    conf_file = CONF_DIR / "acng.conf"
    if _pid() is not None and conf_file.is_file() and conf_file.read_text() == config:
        return
    stop()
    for directory in (CONF_DIR, LOG_DIR, CACHE_DIR):
        directory.mkdir(parents=True, exist_ok=True)
    conf_file.write_text(config)
    (CONF_DIR / "backends_debian").write_text(MIRROR + "\n")
    note(f"starting the apt proxy on {', '.join(url(a) for a in addresses)}")
    result = subprocess.run(
        ["/usr/sbin/apt-cacher-ng", "-c", str(CONF_DIR), "ForeGround=0"],
        capture_output=True, text=True,
    )
    for _ in range(50):
        if _pid() is not None:
            break
        time.sleep(0.1)
    if _pid() is None:
        log = _tail(LOG_DIR / "apt-cacher.err")
        raise PodiumError(
            f"the apt proxy (apt-cacher-ng) did not start on {', '.join(addresses)}:{PORT}",
            f"check that port {PORT} is free on those addresses (ss -ltnp)",
            detail="\n".join(x for x in (result.stderr, log) if x),
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check(address: str, suite: str) -> None:
    """The proxy answers on ``address`` and can fetch from the Debian mirror."""
    try:
        with urllib.request.urlopen(f"{url(address)}/acng-report.html", timeout=10) as resp:
            resp.read(64)
    except (urllib.error.URLError, OSError) as exc:
        raise PodiumError(
            f"the apt proxy is unreachable at {url(address)} ({exc})",
            f"see {LOG_DIR}/apt-cacher.err; run ./podium up again to restart it",
        ) from None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": url(address)}))
    probe = f"{MIRROR}dists/{suite}/InRelease"
    try:
        with opener.open(probe, timeout=60) as resp:
            resp.read(64)
    except (urllib.error.URLError, OSError) as exc:
        raise PodiumError(
            f"the apt proxy at {url(address)} cannot fetch {probe} ({exc})",
            "check that this host reaches deb.debian.org (curl -I " + probe + "); "
            f"the proxy's log is {LOG_DIR}/apt-cacher.err",
        ) from None
