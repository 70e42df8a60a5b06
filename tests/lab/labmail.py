"""Reading the lab mail server from the controller: IMAPS by address, with the certificate
checked for the mail host's name (the controller does not resolve the lab's zone)."""

from __future__ import annotations

import imaplib
import ssl
import time

from kit.paths import StackPaths
from kit.stack import Stack


def mail_host(stack: Stack, paths: StackPaths) -> dict | None:
    """The first mail host's address, name, TLS context and account passwords (None: none)."""
    hosts = [h for h in stack.hosts if "mail" in h.roles]
    if not hosts:
        return None
    host = hosts[0]
    root = paths.state / "acme" / "root.pem"
    context = ssl.create_default_context(cafile=str(root)) if root.is_file() else None
    return {
        "address": str(host.address),
        "name": f"{host.name}.{stack.domain}",
        "domain": stack.domain,
        "context": context,
        "password": lambda account: (paths.secrets / f"mail-{account}").read_text().strip(),
    }


class Imap(imaplib.IMAP4_SSL):
    def __init__(self, mail: dict) -> None:
        self._name = mail["name"]
        super().__init__(mail["address"], 993, ssl_context=mail["context"], timeout=30)

    def _create_socket(self, timeout):
        sock = imaplib.IMAP4._create_socket(self, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._name)


def wait_in_mailbox(mail: dict, account: str, needle: str, timeout: float = 60,
                    folders: tuple[str, ...] = ("INBOX",)) -> bytes:
    """The raw message in ``account``'s INBOX (or other ``folders``, in order) whose text
    contains ``needle``."""
    deadline = time.monotonic() + timeout
    while True:
        with Imap(mail) as imap:
            imap.login(f"{account}@{mail['domain']}", mail["password"](account))
            for folder in folders:
                if imap.select(folder, readonly=True)[0] != "OK":
                    continue  # not created yet
                _, found = imap.search(None, "TEXT", f'"{needle}"')
                if found[0]:
                    _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                    return data[0][1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no message containing {needle!r} in {account}'s mailbox "
                                 f"after {timeout:.0f}s")
        time.sleep(1)
