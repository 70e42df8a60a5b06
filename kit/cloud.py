"""Cloud stacks (provider hcloud or scaleway): ./podium up and down drive the standard tools.

`up`: checks the Pulumi CLI and the credentials first (and stops at once, saying what is
missing and how to get it), then runs `pulumi up` with its progress on the terminal, reads
`pulumi stack output --json`, writes .podium/<stack>/inventory.yml in the lab's shape, waits
for the servers (ansible wait_for_connection, cloud-init), converges playbooks/site.yml and
runs tests/infra: the same playbooks and tests as the lab.

`down`: asks for the stack's name as confirmation (or --yes), then runs
`pulumi destroy --exclude-protected`: the data volumes and the offsite bucket are protected
in the program, so they survive; what is kept is printed with how to release it.

The Pulumi CLI is the only cloud boundary: tests put a fake `pulumi` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from kit import dkim, inventory, providers
from kit.ansible import VENV_BIN, run_playbook, venv_env
from kit.errors import PodiumError
from kit.paths import REPO, StackPaths, shown, stack_file
from kit.stack import Stack

PULUMI_INSTALL = "https://www.pulumi.com/docs/install/"
# Per provider: (environment variables, the same as `pulumi config set --secret` keys).
CREDENTIALS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "hcloud": (("HCLOUD_TOKEN",), ("hcloud:token",),
               "Hetzner Cloud Console: your project, Security, API tokens (read & write)"),
    # Scaleway's API key pair is also the S3 key pair of a Scaleway offsite bucket.
    "scaleway": (providers.OFFSITE_S3_ENV["scaleway"], ("scaleway:accessKey",
                                                        "scaleway:secretKey"),
                 "Scaleway console: IAM, API keys"),
    # The offsite bucket at Hetzner Object Storage goes through the MinIO provider.
    "hetzner-s3": (providers.OFFSITE_S3_ENV["hetzner"], ("minio:minioUser",
                                                         "minio:minioPassword"),
                   "Hetzner Cloud Console: your project, Security, S3 credentials"),
}
OFFSITE_CREDENTIALS = {"scaleway": "scaleway", "hetzner": "hetzner-s3"}
WAIT_SECONDS = 600  # for new servers to answer SSH and finish cloud-init

Runner = Callable[[list[str]], None]


def _config_keys(stack: Stack) -> set[str]:
    doc = yaml.safe_load(stack_file(stack.name).read_text()) or {}
    return set((doc.get("config") or {}).keys())


def missing_credentials(stack: Stack) -> list[str]:
    """One line per credential set that is neither in the environment nor in the stack file."""
    assert stack.offsite is not None
    keys = _config_keys(stack)
    out = []
    for kind in dict.fromkeys([stack.provider, OFFSITE_CREDENTIALS[stack.offsite.provider]]):
        env_names, config_keys, where = CREDENTIALS[kind]
        if all(os.environ.get(n) for n in env_names) or all(k in keys for k in config_keys):
            continue
        out.append(f"{' and '.join(env_names)} (from {where}): export them, or run "
                   + "; ".join(f"pulumi config set --secret {k} ... --stack {stack.name}"
                               for k in config_keys))
    return out


def check_prerequisites(stack: Stack) -> str:
    """The Pulumi CLI's path; raises PodiumError naming everything missing."""
    pulumi_cli = shutil.which("pulumi")
    if pulumi_cli is None:
        raise PodiumError(
            f"stack '{stack.name}' is provisioned with Pulumi, and the Pulumi CLI is not "
            "installed on this machine (no `pulumi` on PATH)",
            f"install the Pulumi CLI on your workstation ({PULUMI_INSTALL}) and log in to a "
            "state backend (pulumi login); it downloads a binary, so it cannot be installed "
            "on machines limited to package registries",
        )
    missing = missing_credentials(stack)
    if missing:
        raise PodiumError(
            f"credentials missing for stack '{stack.name}':\n  " + "\n  ".join(missing),
            f"secrets set with pulumi config are stored encrypted in "
            f"{shown(stack_file(stack.name))}; nothing has been created",
        )
    return pulumi_cli


def _pulumi(cli: str, args: list[str], what: str, capture: bool = False) -> str:
    """Run the Pulumi CLI in the repository (Pulumi.yaml); its output goes to the terminal
    unless ``capture``. Raises PodiumError saying which step failed."""
    cmd = [cli, *args]
    print(f"==> {what}: {' '.join(['pulumi', *args])}", file=sys.stderr, flush=True)
    result = subprocess.run(cmd, cwd=REPO, env=venv_env(),
                            stdout=subprocess.PIPE if capture else None, text=True)
    if result.returncode != 0:
        raise PodiumError(
            f"{what} failed (pulumi exited {result.returncode}; its messages are above)",
            "fix the cause and run the same ./podium command again: Pulumi resumes from "
            "what exists",
        )
    return result.stdout or ""


def write_inventory(stack: Stack, outputs_file: Path) -> Path:
    """Write .podium/<stack>/inventory.yml from a `pulumi stack output --json` file."""
    try:
        outputs = json.loads(outputs_file.read_text())
    except (OSError, ValueError) as exc:
        raise PodiumError(
            f"cannot read Pulumi outputs from {outputs_file}: {exc}",
            f"create it with: pulumi stack output --json --stack {stack.name} > {outputs_file}",
        ) from None
    paths = StackPaths(stack.name)
    public = inventory.public_addresses_from_outputs(stack, outputs)
    data = inventory.build(stack, paths, public_addresses=public,
                           load_balancer_address=inventory.load_balancer_address_from_outputs(
                               stack, outputs),
                           offsite_bucket=inventory.offsite_bucket_from_outputs(stack, outputs))
    # No lab key in the cloud: Ansible uses the operator's own SSH key (agent or ~/.ssh).
    data["all"]["vars"].pop("ansible_ssh_private_key_file")
    data["all"]["vars"]["ansible_ssh_common_args"] = (
        f"-o UserKnownHostsFile={paths.known_hosts.resolve()} -o StrictHostKeyChecking=accept-new"
    )
    paths.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    inventory.write(data, paths.inventory)
    return paths.inventory


def inventory_from_state(stack: Stack) -> Path:
    """Write the inventory from the outputs the Pulumi state backend holds (`pulumi stack
    output`): no provider API is called, so it works for a stack whose provider is gone
    (./podium recover reads the lost stack's bucket there)."""
    cli = shutil.which("pulumi")
    if cli is None:
        raise PodiumError(f"reading the outputs of stack '{stack.name}' needs the Pulumi CLI, "
                          "and there is no `pulumi` on PATH",
                          f"install it ({PULUMI_INSTALL}), or save the outputs elsewhere "
                          f"(pulumi stack output --json --stack {stack.name} > FILE) and pass "
                          "--pulumi-outputs FILE")
    outputs = _pulumi(cli, ["stack", "output", "--json", "--stack", stack.name],
                      "read the stack's outputs", capture=True)
    paths = StackPaths(stack.name)
    paths.state.mkdir(parents=True, exist_ok=True)
    outputs_file = paths.state / "pulumi-outputs.json"
    outputs_file.write_text(outputs)
    return write_inventory(stack, outputs_file)


def _run(cmd: list[str]) -> None:
    """Run a standard tool from the kit's venv, output on the terminal; raise on failure."""
    print("==> " + " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)),
          file=sys.stderr, flush=True)
    result = subprocess.run(cmd, cwd=REPO, env=venv_env(ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    if result.returncode != 0:
        raise PodiumError(f"{Path(cmd[0]).name} failed (exit {result.returncode})",
                          "see its output above; run ./podium up again once fixed")


def wait_commands(paths: StackPaths) -> list[list[str]]:
    """Ad-hoc Ansible: wait until every host answers SSH, then until cloud-init is done."""
    ansible = str(VENV_BIN / "ansible")
    inv = str(paths.inventory)
    return [
        [ansible, "all", "-i", inv, "-m", "ansible.builtin.wait_for_connection",
         "-a", f"timeout={WAIT_SECONDS}"],
        [ansible, "all", "-i", inv, "-m", "ansible.builtin.command",
         "-a", "cloud-init status --wait"],
    ]


def testinfra_command(paths: StackPaths) -> list[str]:
    return [str(VENV_BIN / "pytest"), "-q", "tests/infra",
            f"--ansible-inventory={paths.inventory}"]


def up(stack: Stack, run_tests: bool = True, runner: Runner = _run,
       converge: Callable[[StackPaths], object] | None = None) -> Path:
    """Provision with Pulumi, write the inventory, converge and check. Returns the inventory.

    ``runner`` runs the Ansible/pytest commands and ``converge`` runs site.yml (defaults: the
    real tools); tests pass recorders, as those need real servers.
    """
    cli = check_prerequisites(stack)
    paths = StackPaths(stack.name)
    paths.state.mkdir(parents=True, exist_ok=True)
    if any("mail" in h.roles for h in stack.hosts):
        made = dkim.ensure_keys(paths.secrets)
        if made:
            print(f"==> made DKIM key(s) {', '.join(made)} in {shown(paths.secrets)}/dkim "
                  "(the zone publishes them; keep this folder: docs/decisions/0007-secrets.md)",
                  file=sys.stderr, flush=True)
    _pulumi(cli, ["stack", "select", "--create", stack.name], "select the Pulumi stack")
    _pulumi(cli, ["up", "--stack", stack.name, "--yes"], "create or update the infrastructure")
    outputs = _pulumi(cli, ["stack", "output", "--json", "--stack",
                            stack.name], "read the stack's outputs", capture=True)
    outputs_file = paths.state / "pulumi-outputs.json"
    outputs_file.write_text(outputs)
    path = write_inventory(stack, outputs_file)
    print(f"==> wrote {shown(path)}", file=sys.stderr, flush=True)
    for cmd in wait_commands(paths):
        runner(cmd)
    if converge is None:
        run_playbook(paths, "playbooks/site.yml", "converge")
    else:
        converge(paths)
    if run_tests:
        runner(testinfra_command(paths))
    print(f"Stack '{stack.name}' is up at {stack.provider}. Inventory: {shown(path)}; "
          f"converge again: ./podium converge --stack {stack.name}", flush=True)
    return path


PROTECTED = ("the data volumes (database, media, backup hosts) and the offsite backup bucket "
             "are protected in the program, so `pulumi destroy --exclude-protected` keeps them")


def down(stack: Stack, assume_yes: bool = False, ask: Callable[[str], str] = input) -> bool:
    """Destroy the stack's infrastructure after confirmation; keep protected data.

    Returns False (nothing done) when the operator does not confirm.
    """
    cli = shutil.which("pulumi")
    if cli is None:
        raise PodiumError(f"stack '{stack.name}' is destroyed with Pulumi, and the Pulumi CLI "
                          "is not installed on this machine",
                          f"install it ({PULUMI_INSTALL}), or destroy the servers in the "
                          "provider's console")
    print(f"This destroys the servers, networks, firewalls, load balancer and DNS records of "
          f"stack '{stack.name}' at {stack.provider}.\nKept: {PROTECTED}.", flush=True)
    if not assume_yes:
        try:
            answer = ask(f"Type the stack name ({stack.name}) to destroy it: ")
        except EOFError:
            answer = ""
        if answer.strip() != stack.name:
            print("not confirmed: nothing was destroyed", file=sys.stderr)
            return False
    _pulumi(cli, ["destroy", "--stack", stack.name, "--yes", "--exclude-protected"],
            "destroy the infrastructure")
    paths = StackPaths(stack.name)
    if paths.state.exists():
        shutil.rmtree(paths.state)
    print(f"stack '{stack.name}' is down. Still there on purpose: {PROTECTED}. To delete them "
          f"for good: pulumi state unprotect --all --stack {stack.name}, then pulumi destroy "
          f"--stack {stack.name}. Generated secrets stay in {shown(paths.secrets)}.",
          flush=True)
    return True
