"""Headless Chromium for the tests: Debian's build driven by Playwright (LAB-NOTES).

The app tier (tests/app/test_web_browser.py) and the lab tier (tests/lab/test_web_journey.py)
launch it the same way. For the lab, `trusting_home` makes a HOME whose NSS database trusts
the lab's ACME root, so the browser checks the edge's certificate like any visitor's browser
does (no --ignore-certificate-errors), and `resolving` points the lab's names at an edge.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kit.errors import PodiumError

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]


def trusting_home(home: Path, ca_pem: Path, name: str = "podium-lab") -> Path:
    """Create `home`/.pki/nssdb (Chromium's certificate store on Linux) trusting `ca_pem` to
    issue server certificates. Returns `home`, to pass as HOME. Needs certutil (Debian's
    libnss3-tools, a lab host package)."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    for cmd in (["certutil", "-N", "-d", f"sql:{db}", "--empty-password"],
                ["certutil", "-A", "-d", f"sql:{db}", "-n", name, "-t", "C,,", "-i",
                 str(ca_pem)]):
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise PodiumError("certutil is not installed",
                              "apt-get install libnss3-tools (./podium up installs it)") from None
        except subprocess.CalledProcessError as exc:
            raise PodiumError(f"certutil failed: {' '.join(cmd)}", exc.stderr) from None
    return home


def resolving(names: list[str], address: str) -> str:
    """A --host-resolver-rules argument sending `names` to `address` and nothing else
    anywhere (every other name fails to resolve: no traffic leaves the lab)."""
    rules = [f"MAP {name} {address}" for name in names]
    return "--host-resolver-rules=" + ", ".join([*rules, "MAP * ~NOTFOUND"])
