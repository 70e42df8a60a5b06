"""The local lab provisioner: `up`, `down` and `status` for stacks whose provider is local."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kit import aptproxy, host, image, inventory, labstore, ssh
from kit.ansible import VENV_BIN, run_playbook, venv_env
from kit.console import Progress, fmt_seconds, table
from kit.errors import PodiumError
from kit.machines import Machine
from kit.paths import MACHINES_ROOT, REPO, STATE_ROOT, StackPaths, stack_file
from kit.stack import Stack, load_stack

BOOT_TIMEOUT = 180  # seconds from boot to SSH and cloud-init done, per host (hosts boot together)
UP_STEPS = 10


def _require_local(stack: Stack) -> None:
    if stack.provider != "local":  # kit.cli sends cloud stacks to kit.cloud
        raise PodiumError(f"stack '{stack.name}' is a {stack.provider} stack, not a lab stack",
                          f"bring it up with ./podium up --stack {stack.name}")


def _save_state(stack: Stack, paths: StackPaths) -> None:
    """Keep what `down` needs even if the stack file is edited or removed later."""
    paths.state.mkdir(parents=True, exist_ok=True)
    (paths.state / "stack.json").write_text(stack.model_dump_json(indent=2))


def _load_state(name: str) -> Stack | None:
    try:
        return Stack.model_validate_json((StackPaths(name).state / "stack.json").read_text())
    except OSError:
        return None


def active_bridge_gateways(exclude: str | None = None) -> list[str]:
    """Gateway addresses of every lab stack that is up (for the shared apt proxy)."""
    gateways = []
    if STATE_ROOT.is_dir():
        for state in STATE_ROOT.iterdir():
            stack = _load_state(state.name)
            if stack and stack.lab and stack.name != exclude and host.bridge_exists(
                    stack.lab.bridge):
                gateways.append(stack.gateway)
    return gateways


def up(stack_name: str, run_tests: bool = True) -> None:
    progress = Progress(UP_STEPS)
    paths = StackPaths(stack_name)
    source = str(stack_file(stack_name).relative_to(REPO))

    with progress.step(f"Validate the stack file {source}"):
        stack = load_stack(stack_name)
        _require_local(stack)
        assert stack.lab is not None
        progress.note(f"{len(stack.hosts)} hosts, domain {stack.domain}, mode {stack.mode}")

    with progress.step("Prepare the host: packages, nspawn, bridge, apt proxy"):
        host.check_root()
        host.ensure_packages(host.HOST_PACKAGES, progress.note)
        host.check_nspawn()
        host.ensure_inotify_limits(progress.note)
        host.ensure_bridge(stack, source, progress.note)
        _save_state(stack, paths)
        aptproxy.ensure([*active_bridge_gateways(), stack.gateway], progress.note)
        aptproxy.check(stack.gateway, stack.lab.suite)
        progress.note(f"apt proxy answers at {aptproxy.url(stack.gateway)}")
        labstore.ensure_relay(stack, progress.note)

    with progress.step(f"Build or reuse the Debian {stack.lab.suite} base image"):
        base = image.ensure_image(stack.lab.suite, progress.note)

    machines = [Machine(stack, h, paths) for h in stack.hosts]
    with progress.step("Create one machine per host, each with its cloud-init NoCloud seed"):
        public_key = ssh.ensure_key(paths)
        _remove_strays(stack, paths, progress)
        for machine in machines:
            if machine.created():
                progress.note("exists, reused", machine.host.name)
                continue
            ssh.forget_host(paths, str(machine.host.address))
            machine.create(base, [public_key, *stack.admin.ssh_keys],
                           aptproxy.url(stack.gateway))
            progress.note("created; seed rendered from templates/cloud-init/", machine.host.name)

    with progress.step(f"Boot the machines with systemd-nspawn on bridge {stack.lab.bridge}"):
        for machine in machines:
            if machine.pid() is not None:
                progress.note("already running, reused", machine.host.name)
                continue
            machine.boot()
            progress.note(f"booting as {machine.host.address}", machine.host.name)

    with progress.step("Wait for SSH and cloud-init on every host"):
        wait_all(stack, paths, machines, progress)

    with progress.step(f"Write the inventory {paths.inventory.relative_to(REPO)}"):
        inventory.write(inventory.build(stack, paths, public_key), paths.inventory)

    with progress.step("Converge: ansible-playbook playbooks/site.yml"):
        run_playbook(paths, "playbooks/site.yml", "converge")

    with progress.step("Check the hosts: pytest tests/infra (testinfra)"):
        if run_tests:
            run_testinfra(paths)
        else:
            progress.note("skipped (--no-test)")

    with progress.step("Summary"):
        pass
    print_summary(stack, paths, progress)


def wait_all(stack: Stack, paths: StackPaths, machines: list[Machine],
             progress: Progress) -> None:
    """Wait, in parallel, until every machine answers SSH and cloud-init is done."""
    def wait(machine: Machine) -> str:
        for attempt in (1, 2):
            try:
                ssh.wait_ready(paths, stack.admin.user, str(machine.host.address),
                               machine.host.name, lambda: machine.pid() is not None,
                               BOOT_TIMEOUT, machine.console_tail)
                break
            except PodiumError:
                # Seen once in ~10 cold runs: a guest's nspawn ended mid-boot with nothing
                # in its console. One more boot gets past it; a second failure is real.
                if attempt == 2 or machine.pid() is not None:
                    raise
                progress.note(f"nspawn exited during boot (status "
                              f"{machine.exit_status()}); booting it once more",
                              machine.host.name)
                machine.boot()
        progress.note("SSH up, cloud-init done", machine.host.name)
        return machine.host.name

    with ThreadPoolExecutor(max_workers=len(machines) or 1) as pool:
        list(pool.map(wait, machines))


def rebuild(stack: Stack, paths: StackPaths, names: list[str], progress: Progress) -> None:
    """Give these hosts of a running lab stack brand-new machines: stop and remove the old
    ones (disk included), create fresh ones from the base image with their cloud-init seed,
    boot them and wait for SSH (what `up` does for a new host). Used by the restore drill."""
    _require_local(stack)
    assert stack.lab is not None
    base = image.ensure_image(stack.lab.suite, progress.note)
    public_key = ssh.ensure_key(paths)
    machines = [Machine(stack, stack.host(n), paths) for n in names]
    for machine in machines:
        if machine.created():
            machine.remove()
        ssh.forget_host(paths, str(machine.host.address))
        machine.create(base, [public_key, *stack.admin.ssh_keys], aptproxy.url(stack.gateway))
        machine.boot()
        progress.note(f"new machine booting as {machine.host.address}", machine.host.name)
    wait_all(stack, paths, machines, progress)


def destroy(stack: Stack, paths: StackPaths, names: list[str]) -> None:
    """Stop these hosts' machines and remove them with their disks (the restore drill's
    disaster). The stack's state, bridge and other hosts stay."""
    _require_local(stack)
    machines = [Machine(stack, stack.host(n), paths) for n in names]
    with ThreadPoolExecutor(max_workers=len(machines) or 1) as pool:
        list(pool.map(Machine.remove, machines))


def run_testinfra(paths: StackPaths, extra: list[str] | None = None) -> None:
    cmd = [str(VENV_BIN / "pytest"), "-q", "tests/infra",
           f"--ansible-inventory={paths.inventory}", *(extra or [])]
    result = subprocess.run(cmd, cwd=REPO, env=venv_env(PODIUM_STACK=paths.stack))
    if result.returncode != 0:
        raise PodiumError(
            f"the testinfra checks failed on stack '{paths.stack}' (see the report above)",
            f"rerun them alone with: .venv/bin/pytest tests/infra "
            f"--ansible-inventory={paths.inventory.relative_to(REPO)}",
        )


def _remove_strays(stack: Stack, paths: StackPaths, progress: Progress) -> None:
    """Remove machines of this stack whose host is no longer in the stack file."""
    if not paths.machines.is_dir():
        return
    wanted = {h.name for h in stack.hosts}
    for directory in paths.machines.iterdir():
        if directory.name not in wanted:
            progress.note("no longer in the stack file: stopping and removing", directory.name)
            Machine.on_disk(stack, directory.name, paths).remove()


def print_summary(stack: Stack, paths: StackPaths, progress: Progress) -> None:
    rows = []
    for h in stack.hosts:
        state = "running" if Machine(stack, h, paths).pid() else "stopped"
        rows.append([h.name, ", ".join(h.roles), str(h.address), state])
    out = [
        "",
        f"Stack '{stack.name}' is up ({progress.elapsed()} in all).",
        "",
        table(rows, ["host", "roles", "address", "state"]),
        "",
        "Time per step:",
        *(f"  {fmt_seconds(t):>8}  {title}" for title, t in progress.timings),
        "",
        f"Inventory:  {paths.inventory.relative_to(REPO)}",
        f"Shell:      ./podium ssh {stack.hosts[0].name}"
        + (f" --stack {stack.name}" if stack.name != "local" else ""),
        f"Ansible:    ansible-playbook playbooks/site.yml -i {paths.inventory.relative_to(REPO)}",
        f"Checks:     pytest tests/infra --ansible-inventory={paths.inventory.relative_to(REPO)}",
    ]
    edges = [h for h in stack.hosts if "edge" in h.roles]
    if edges:
        ca = (paths.state / "acme" / "root.pem").relative_to(REPO)
        out.append(f"Platform:   https://{stack.domain}/ on the edges "
                   + ", ".join(str(h.address) for h in edges)
                   + " (the lab's name and CA: the lab DNS serves the name, and the CA root is "
                   f"{ca})")
        out.append(f"Try:        curl --cacert {ca} "
                   f"--resolve {stack.domain}:443:{edges[0].address} "
                   f"https://{stack.domain}/healthz")
    else:
        out.append("Platform:   this stack has no edge host, so nothing is served to browsers")
    print("\n".join(out), flush=True)


def down(stack_name: str) -> None:
    """Stop and remove everything of the stack: machines, bridge, state. Verify it is gone."""
    host.check_root()
    paths = StackPaths(stack_name)
    stack = _load_state(stack_name)
    if stack is None:
        try:
            stack = load_stack(stack_name)
        except PodiumError:
            stack = None
    if stack is not None and stack.provider != "local":  # kit.cli sends these to kit.cloud
        raise PodiumError(f"stack '{stack.name}' is a {stack.provider} stack, not a lab stack",
                          f"destroy it with ./podium down --stack {stack.name}")
    if stack is None and not paths.state.exists() and not paths.machines.exists():
        print(f"stack '{stack_name}' is not up; nothing to remove", file=sys.stderr)
        return
    if paths.machines.is_dir() and stack is not None:
        machines = [Machine.on_disk(stack, d.name, paths) for d in sorted(paths.machines.iterdir())]
        print(f"==> stopping and removing {len(machines)} machines: "
              + ", ".join(m.host.name for m in machines), file=sys.stderr, flush=True)
        with ThreadPoolExecutor(max_workers=len(machines) or 1) as pool:
            list(pool.map(Machine.remove, machines))
    if paths.machines.exists():
        shutil.rmtree(paths.machines)
    labstore.stop_relay(stack_name)
    if stack is not None and stack.lab is not None:
        host.remove_bridge(stack.lab.bridge)
    if paths.state.exists():
        shutil.rmtree(paths.state)
    aptproxy.ensure(active_bridge_gateways(exclude=stack_name), lambda msg: None)
    left = leftovers(stack_name, stack)
    if left:
        raise PodiumError(
            f"stack '{stack_name}' was not removed completely: {'; '.join(left)}",
            "remove those by hand, then run ./podium down again",
        )
    print(f"stack '{stack_name}' is down: machines, bridge and state removed", file=sys.stderr)


def leftovers(stack_name: str, stack: Stack | None) -> list[str]:
    """Anything of the stack still on this host (empty when `down` did its job)."""
    paths = StackPaths(stack_name)
    found = []
    if paths.machines.exists():
        found.append(f"{paths.machines} exists")
    if paths.state.exists():
        found.append(f"{paths.state} exists")
    if stack is not None and stack.lab is not None and host.bridge_exists(stack.lab.bridge):
        found.append(f"bridge {stack.lab.bridge} exists")
    if (relay := labstore.relay_pid(stack_name)) is not None:
        found.append(f"the offsite relay (socat, pid {relay}) still runs")
    marker = str(MACHINES_ROOT / stack_name).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name} still runs a machine of the stack")
            except OSError:
                continue
    return found


def status(stack_name: str | None) -> None:
    names = [stack_name] if stack_name else sorted(
        p.name for p in STATE_ROOT.iterdir() if (p / "stack.json").is_file()
    ) if STATE_ROOT.is_dir() else []
    if not names:
        print("no lab stack is up (start one with ./podium up)")
        return
    for name in names:
        stack = _load_state(name)
        if stack is None:
            print(f"stack '{name}': not up")
            continue
        paths = StackPaths(name)
        rows = []
        for h in stack.hosts:
            machine = Machine(stack, h, paths)
            running = machine.pid() is not None
            reachable = running and ssh.port_open(str(h.address), timeout=0.5)
            state = ("running" if running else "stopped") + (", ssh ok" if reachable else "")
            rows.append([h.name, ", ".join(h.roles), str(h.address), state])
        bridge = stack.lab.bridge if stack.lab else "-"
        print(f"stack '{name}' ({stack.provider}, {stack.domain}, mode {stack.mode}, "
              f"bridge {bridge} {stack.network.cidr})")
        print(table(rows, ["host", "roles", "address", "state"]))
        print()


def shell(stack_name: str, host_name: str, command: list[str]) -> None:
    stack = _load_state(stack_name)
    if stack is None:
        raise PodiumError(f"stack '{stack_name}' is not up",
                          f"run ./podium up --stack {stack_name}")
    target = stack.host(host_name)
    paths = StackPaths(stack_name)
    args = ["ssh", *ssh.base_args(paths), "-o", "BatchMode=no",
            f"{stack.admin.user}@{target.address}", *command]
    os.execvp("ssh", args)



def converge(stack_name: str, extra: list[str], playbook: str = "playbooks/site.yml") -> dict:
    """Run site.yml (or ``playbook``, e.g. deploy.yml) on a stack that is up (lab or cloud:
    its inventory exists); return the run's report."""
    paths = StackPaths(stack_name)
    if not paths.inventory.is_file():
        raise PodiumError(
            f"stack '{stack_name}' has no inventory ({paths.inventory.relative_to(REPO)})",
            f"bring it up first: ./podium up --stack {stack_name}",
        )
    label = "converge" if playbook == "playbooks/site.yml" else Path(playbook).stem
    return run_playbook(paths, playbook, label, extra)
