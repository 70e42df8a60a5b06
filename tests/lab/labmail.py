"""Reading the lab mail server from the controller: IMAPS by address, with the certificate
checked for the mail host's name (the controller does not resolve the lab's zone); test
tools on lab hosts (Debian packages through the apt proxy) and swaks sessions run there."""

from __future__ import annotations

import imaplib
import re
import shlex
import ssl
import time
from dataclasses import dataclass

from kit import ssh
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


def ensure_packages(stack: Stack, paths: StackPaths, address: str, probe: str,
                    packages: list[str]) -> None:
    """Install Debian ``packages`` on a lab host for a test, through the lab's apt proxy (set
    on every guest by cloud-init), unless ``probe`` (a shell test) already succeeds: idempotent,
    and nothing the roles would have to know about (test tools are not part of a server)."""
    install = ssh.run(
        paths, stack.admin.user, address,
        f"{probe} || sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        f"--no-install-recommends {shlex.join(packages)}", timeout=300)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]


# A swaks transcript line the client sent (-> plain, ~> under TLS) or the server answered
# (<- / <~ accepted, <** / <~* refused: swaks marks the replies it takes as errors).
_SENT = re.compile(r"^ *(?:->|~>) (.*)$")
_REPLY = re.compile(r"^ *(?:<-|<~|<\*\*|<~\*) +(\d{3})[ -](.*)$")
_VERBS = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "QUIT", "RSET"}


@dataclass
class SwaksRun:
    """One swaks session: its exit code (see swaks(1), EXIT CODES: 0 delivered, 24 no
    recipient accepted, 28 authentication failed or not offered) and its transcript."""

    exit_code: int
    transcript: str

    def replies(self, verb: str) -> list[tuple[int, str]]:
        """The server's reply lines (code, text) to the commands ``verb`` (EHLO, MAIL, RCPT,
        DATA...; ``.`` for the end of the message data), in order."""
        found: list[tuple[int, str]] = []
        current = ""
        for line in self.transcript.splitlines():
            if sent := _SENT.match(line):
                word = sent.group(1).split(" ", 1)[0].split(":", 1)[0].upper()
                if word in _VERBS or word == ".":
                    current = word
                elif current != "DATA":
                    current = ""
            elif (reply := _REPLY.match(line)) and current == verb:
                found.append((int(reply.group(1)), reply.group(2)))
        return found


def swaks(stack: Stack, paths: StackPaths, address: str, args: list[str],
          password: str | None = None) -> SwaksRun:
    """Run swaks on the lab host ``address`` with ``args``. A ``password`` goes over SSH's
    stdin into swaks's environment (SWAKS_OPT_auth_password), never on a command line, and
    --auth-hide-password keeps it out of the transcript."""
    command = f"swaks {shlex.join(args)}"
    if password is not None:
        command = ("IFS= read -r SWAKS_OPT_auth_password && export SWAKS_OPT_auth_password && "
                   f"{command} --auth-hide-password")
    result = ssh.run(paths, stack.admin.user, address, command, timeout=120,
                     input=None if password is None else password + "\n")
    return SwaksRun(result.returncode, result.stdout + result.stderr)
