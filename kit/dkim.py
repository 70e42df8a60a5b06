"""The stack's DKIM keys on the controller, made before the first `pulumi up`.

The mail role makes the same files with community.crypto (roles/mail/tasks/dkim_key.yml) and
leaves existing keys alone, so whichever runs first wins and the other reuses the key. For
cloud stacks the kit makes them first, so that the very first `pulumi up` already publishes
the DKIM record and mail is signed and verifiable from the first converge.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kit.paths import REPO

MAIL_VARS = REPO / "playbooks" / "group_vars" / "all" / "mail.yml"


def selectors() -> list[str]:
    """The active selector and the standby ones, as the mail role is configured."""
    data = yaml.safe_load(MAIL_VARS.read_text())
    return [data["mail_dkim_selector"], *(data.get("mail_dkim_standby_selectors") or [])]


def ensure_keys(secrets_dir: Path) -> list[str]:
    """Create missing DKIM key pairs under ``secrets_dir/dkim``; returns the selectors made."""
    folder = Path(secrets_dir) / "dkim"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    made = []
    for selector in selectors():
        private, public = folder / f"{selector}.key", folder / f"{selector}.pub"
        if private.is_file():
            continue
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tmp = private.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
        tmp.replace(private)
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        public.chmod(0o644)
        made.append(selector)
    return made
