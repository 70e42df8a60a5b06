"""./podium recover: the platform back at a second provider (stack B) from the offsite backup
of the first (stack A) after A is gone (issue 9, decision 0280, runbook
docs/runbooks/cross-provider-recovery.md).

Three commands, in this order:

- ``--record-manifest`` (while A is alive): a sentinel post with an image, WAL archived and
  media pushed, then A's data manifest saved in .podium/A/ for the check after recovery.
- ``--lab-lose-source`` (lab only): destroy every host of A (but its backup host when that
  stands for the offsite store). A cloud stack is fenced by the operator.
- the recovery: B takes A's identity (its secrets, decrypted from the age-encrypted copy on
  A's backup host with A's operator identity; B keeps its own pgBackRest TLS certificates),
  A's encrypted repository and media copy are copied to B's backup host, B converges with
  A's secrets, PostgreSQL is restored from the repository (latest or --to), the replica
  rebuilt, media restored, then verify against the manifest, smoke through B's proxy,
  re-converge (stanza checked, backup on the new timeline). Report in docs/drills/.

Two lab stacks, or two cloud stacks with --allow-cloud: hosts are reached as Ansible reaches
them (kit/reach.py), a cloud stack's bucket is its inventory's ``podium_offsite`` with the key
pair from the environment, and the API is reached through an SSH forward (decision 0298).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shlex
import subprocess
import tarfile
import time
from pathlib import Path

import yaml

from kit import lab, labstore
from kit.ansible import run_playbook
from kit.console import fmt_seconds
from kit.drill import (
    RESTORE_NEEDS,
    Result,
    compare,
    db_manifest,
    load_up_stack,
    media_manifest,
    rebuild_replicas,
    restore_database,
    restore_media,
    smoke,
)
from kit.drillkit import (
    STANZA,
    Remote,
    Timeline,
    backup_new_timeline,
    check_drill_stack,
    configured_primary,
    decrypt_copy,
    decrypt_secrets_copy,
    parse_target,
    platform_entry,
    proxy_api,
    publisher,
    timeline_chart,
    write_report,
)
from kit.errors import PodiumError
from kit.machines import Machine
from kit.offsitefetch import (
    OWN_REMOTE,
    REMOTE,
    REPO_PREFIX,
    Bucket,
    BucketReader,
    move_prefix,
    posix_repo_lines,
    purge_prefix,
    repository_info,
)
from kit.paths import StackPaths, shown
from kit.stack import Stack, load_stack

MANIFEST_FILE = "recover-manifest.json"
LOST_FILE = "recover-source-lost.json"
# Secrets bound to the stack's own hosts, which B keeps: pgBackRest's CA and host
# certificates name B's hosts and addresses. Everything else is A's identity.
# B's bucket keys (a lab store, decision 0282) are B's as well: its bucket is its own.
HOST_BOUND_SECRETS = ("pgbackrest-tls", "objectstore-key", "objectstore-secret")
REPO_PARENT, REPO_DIR = "/var/lib", "pgbackrest"
# The restore drill's needs but the proxy host: a cloud stack's entry may be the provider's
# load balancer (drillkit.platform_entry).
RECOVER_NEEDS = {role: n for role, n in RESTORE_NEEDS.items() if role != "proxy"}
MEDIA_PARENT, MEDIA_DIR = "/var/backups/podium-media", "current"


# ---------------------------------------------------------------- checks before any change

def check_pair(target: Stack, source: Stack, allow_cloud: bool) -> None:
    """B and A are two different stacks, both lab or both cloud (--allow-cloud); B can run
    the platform, A has a backup host; A's offsite copies are where B reaches them."""
    if target.name == source.name:
        raise PodiumError(f"--stack and --from are both '{target.name}': recovery goes into "
                          "another stack (the second provider)",
                          "name the stack to recover into with --stack and the lost one with "
                          "--from, e.g. ./podium recover --stack lab-provb --from lab-prova")
    check_drill_stack(target, allow_cloud, RECOVER_NEEDS, cloud_ready=True)
    check_drill_stack(source, allow_cloud, {"backup": 1}, cloud_ready=True)
    platform_entry(target)  # a proxy host or the provider's load balancer to smoke through
    cloud = [s.name for s in (target, source) if s.provider != "local"]
    if len(cloud) == 1:
        lab_stack = source if cloud[0] == target.name else target
        raise PodiumError(
            f"'{cloud[0]}' is a cloud stack and '{lab_stack.name}' a lab stack: a lab's "
            "copies are not reachable from a provider, nor a lab's hosts a provider's copies",
            "recover between two lab stacks (a rehearsal) or two cloud stacks")
    if cloud:
        return  # both keep their copies in their podium:offsite bucket (stack.py requires it)
    source_store, target_store = labstore.store_of(source), labstore.store_of(target)
    if source_store is not None and (target_store is None or
                                     target_store.stack.name != source_store.stack.name):
        raise PodiumError(
            f"'{source.name}' keeps its offsite copies in stack '{source_store.stack.name}' "
            f"(lab.offsite_store), which '{target.name}' does not reach",
            f"give infra/stacks/Pulumi.{target.name}.yaml lab.offsite_store: "
            f"{source_store.stack.name}, then ./podium up --stack {target.name}")


def load_pair(target_name: str, source_name: str, allow_cloud: bool) -> tuple[Stack, Stack]:
    """Both stack files read and checked; nothing is looked at on any host yet."""
    target, source = load_stack(target_name), load_stack(source_name)
    check_pair(target, source, allow_cloud)
    return target, source


def source_backup(source_name: str) -> tuple[Stack, StackPaths, str]:
    """A as it was brought up here, and its backup host, which must still run."""
    paths = StackPaths(source_name)
    stack = lab._load_state(source_name)
    if stack is None:
        raise PodiumError(f"stack '{source_name}' was never brought up here: there is no "
                          f"backup of it to recover from ({shown(paths.state)} is missing)",
                          f"./podium up --stack {source_name} first")
    backup = stack.groups()["backup"][0]
    if Machine(stack, stack.host(backup), paths).pid() is None:
        raise PodiumError(f"the backup host {backup} of '{source_name}' (the offsite store) is "
                          "not running: nothing to recover from",
                          f"start it with ./podium up --stack {source_name}")
    return stack, paths, backup


def manifest_path(source_name: str) -> Path:
    return StackPaths(source_name).state / MANIFEST_FILE


def read_manifest(source_name: str) -> dict | None:
    path = manifest_path(source_name)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PodiumError(f"{shown(path)} is not valid JSON ({err})",
                          "record it again while the stack is alive, or remove it") from None
    missing = [k for k in ("cutoff", "recorded_at", "db", "media", "newest", "token",
                           "sentinel") if k not in data]
    if missing:
        raise PodiumError(f"{shown(path)} lacks {', '.join(missing)}",
                          f"record it again: ./podium recover --stack B --from {source_name} "
                          "--record-manifest")
    return data


# ---------------------------------------------------------------- while A is alive

def record_manifest(target_name: str, source_name: str, allow_cloud: bool) -> Path:
    load_pair(target_name, source_name, allow_cloud)
    stack, paths = load_up_stack(source_name, allow_cloud, RECOVER_NEEDS, cloud_ready=True)
    remote = Remote(stack, paths)
    groups = stack.groups()
    primary, backup = configured_primary(stack, paths), groups["backup"][0]
    media = groups.get("media", [])[:1]
    name, token = publisher(remote, groups["app"][0], stack.domain, "recover")
    with proxy_api(remote) as api:
        media_id = api.upload_png(token)
        sentinel = api.post(token, "recover sentinel: written before the manifest", [media_id])
    time.sleep(5)  # the worker stores the upload at the origin
    cutoff = remote.psql(primary, "SELECT now()")[0][0]
    (newest,), = remote.psql(primary, "SELECT extract(epoch FROM max(created_at)) FROM "
                                      "statuses")
    manifest = {"recorded_at": time.time(), "cutoff": cutoff, "newest": float(newest or 0),
                "db": db_manifest(remote, primary, cutoff),
                "media": origin_manifest(remote, media), "publisher": name, "token": token,
                "sentinel": sentinel}
    # The manifest is a point the offsite copy holds: WAL switched and archived, media pushed.
    remote.run(backup, f"sudo -u postgres pgbackrest --stanza={STANZA} check")
    for host in media:
        remote.run(host, "sudo systemctl start podium-media-copy.service", timeout=600)
    if has_bucket(stack):  # and from the backup host on to the bucket
        remote.run(backup, "sudo systemctl start podium-offsite-copy.service", timeout=900)
    (paths.state / LOST_FILE).unlink(missing_ok=True)  # from an earlier loss of A
    path = manifest_path(source_name)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    path.chmod(0o600)  # it holds a lab publisher's token
    for table, entry in manifest["db"].items():
        print(f"{table}: {entry['count']} rows, md5 {entry['md5'][:12]}")
    print(f"media: {manifest['media']['origin']['count']} files; sentinel post {sentinel}")
    print(f"manifest saved: {shown(path)}")
    return path


def origin_manifest(remote: Remote, media: list[str]) -> dict[str, dict]:
    """The first media origin's manifest under a name both stacks share."""
    return {"origin": next(iter(media_manifest(remote, media).values()),
                           {"count": 0, "sha256": "-"})}


def lose_source(target_name: str, source_name: str) -> list[str]:
    """Lab: destroy every host of A except its backup hosts, which stand for the offsite
    store; or every host, backup hosts too, when A's copies are in another stack's bucket."""
    for name in (source_name, target_name):
        if load_stack(name).provider != "local":
            raise PodiumError(
                f"--lab-lose-source destroys lab machines, and '{name}' is a cloud stack: a "
                "cloud stack is lost at its provider, not by the kit",
                "before recovering, fence the lost stack yourself: point DNS away from it and "
                "stop its servers in the provider's console if it still answers "
                "(docs/runbooks/cross-provider-recovery.md)")
    _, source = load_pair(target_name, source_name, allow_cloud=False)
    if labstore.store_of(source) is not None:
        stack, paths = lab._load_state(source_name), StackPaths(source_name)
        if stack is None:
            raise PodiumError(f"stack '{source_name}' is not up here: nothing to lose",
                              f"./podium up --stack {source_name} first")
        keep = []
    else:
        stack, paths, _ = source_backup(source_name)
        keep = stack.groups()["backup"]
    gone = [h.name for h in stack.hosts if h.name not in keep]
    lab.destroy(stack, paths, gone)
    (paths.state / LOST_FILE).write_text(json.dumps({"lost_at": time.time(), "destroyed": gone,
                                                     "kept": keep}) + "\n")
    print(f"{source_name}: destroyed {', '.join(gone)}; "
          + (f"kept {', '.join(keep)} (the offsite store)" if keep else
             f"its offsite copies are in the bucket {labstore.bucket(source)} of stack "
             f"{source.lab.offsite_store}" if source.lab else ""))
    return gone


# ---------------------------------------------------------------- B takes A's identity

def adopt_secrets(tar_bytes: bytes, target: StackPaths, stamp: str) -> list[str]:
    """A's secrets into B's folder; B keeps HOST_BOUND_SECRETS. B's previous folder is kept
    beside it as ``<folder>.before-recover-<stamp>``."""
    old = target.secrets.with_name(f"{target.secrets.name}.before-recover-{stamp}")
    if target.secrets.is_dir():
        target.secrets.rename(old)
    target.secrets.mkdir(parents=True, mode=0o700)
    taken = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if not member.isfile() or name.split("/")[0] in HOST_BOUND_SECRETS:
                continue
            data = tar.extractfile(member)
            dest = target.secrets / name
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            dest.write_bytes(data.read() if data else b"")
            dest.chmod(0o600)
            taken.append(name)
    kept = []
    for name in HOST_BOUND_SECRETS:
        if (old / name).exists():
            subprocess.run(["cp", "-a", str(old / name), str(target.secrets / name)], check=True)
            kept.append(name)
    return [f"took {len(taken)} secrets of the lost stack: {', '.join(sorted(taken))}",
            f"kept the stack's own {', '.join(kept) or '(none found)'}; its previous secrets "
            f"are in {shown(old)}"]


# ---------------------------------------------------------------- A's copies to B

def copy_tree(src: Remote, src_host: str, dst: Remote, dst_host: str, parent: str, name: str,
              stamp: str) -> int:
    """``parent/name`` from A's host to B's (through the controller, encrypted files stay
    encrypted); B's own ``parent/name`` is kept as ``name.before-recover-<stamp>``. Returns
    the bytes copied."""
    size = int(src.run(src_host, f"sudo du -sb {shlex.quote(f'{parent}/{name}')}")
               .split()[0])
    dst.run(dst_host, f"sudo sh -c 'if [ -e {parent}/{name} ]; then mv {parent}/{name} "
                      f"{parent}/{name}.before-recover-{stamp}; fi'")
    reader = [*src.ssh_command(src_host), f"sudo tar -C {parent} -cf - {name}"]
    writer = [*dst.ssh_command(dst_host), f"sudo tar -C {parent} -xpf -"]
    result = subprocess.run(["bash", "-o", "pipefail", "-c",
                             f"{shlex.join(reader)} | {shlex.join(writer)}"],
                            capture_output=True, text=True, timeout=3600, check=False)
    if result.returncode != 0:
        raise PodiumError(f"copying {parent}/{name} from {src_host} ({src.stack.name}) to "
                          f"{dst_host} ({dst.stack.name}) failed",
                          "both hosts must be running; retry the recovery",
                          detail=result.stderr[-2000:])
    return size


# ---------------------------------------------------------------- A's bucket (decision 0282)

def has_bucket(stack: Stack) -> bool:
    """Whether the stack keeps its offsite copies in a bucket: every cloud stack
    (``podium:offsite``), and a lab stack with a lab store."""
    return stack.provider != "local" or labstore.store_of(stack) is not None


def repo1_in_bucket(stack: Stack) -> bool:
    """Whether pgBackRest's repo1 is the stack's bucket (decision 0283)."""
    return stack.provider != "local" or labstore.repository(stack) == "bucket"


def stack_bucket(stack: Stack, paths: StackPaths, remote: str = REMOTE) -> Bucket:
    """A stack's bucket with its key pair. A lab stack's is in its lab store, with the pair
    in the controller's secrets: A's (in production the operator holds it apart from the
    lost provider, as the age identity), or B's own (one of the HOST_BOUND_SECRETS B
    keeps). A cloud stack's is ``podium_offsite`` of its inventory (written from Pulumi's
    outputs), with the pair in the environment variables the converge reads."""
    if stack.provider != "local":
        return cloud_bucket(stack, paths, remote)
    store = labstore.store_of(stack)
    assert store is not None
    keys = []
    for name in ("objectstore-key", "objectstore-secret"):
        path = paths.secrets / name
        if not path.is_file():
            raise PodiumError(f"{shown(path)} (the key of {stack.name}'s offsite bucket) is "
                              "missing: the bucket cannot be read",
                              "put it back from where the operator keeps it")
        keys.append(path.read_text().strip())
    return Bucket(store.endpoint, labstore.bucket(stack), labstore.REGION, keys[0], keys[1],
                  remote)


def cloud_bucket(stack: Stack, paths: StackPaths, remote: str) -> Bucket:
    offsite = _inventory_offsite(stack, paths)
    names = (offsite["key_env"], offsite["secret_env"])
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise PodiumError(
            f"{' and '.join(missing)} (the S3 key pair of '{stack.name}'s offsite bucket "
            f"{offsite['bucket']} at {offsite['company']}) not set in the environment",
            f"export {' '.join(f'{n}=...' for n in names)} with a key pair that reads and "
            "writes that bucket, then run the same command again")
    return Bucket(offsite["endpoint"], offsite["bucket"], offsite["region"],
                  os.environ[names[0]], os.environ[names[1]], remote, ca_file="")


def _inventory_offsite(stack: Stack, paths: StackPaths) -> dict:
    """``podium_offsite`` of a cloud stack's inventory (the bucket from Pulumi's outputs)."""
    try:
        offsite = yaml.safe_load(paths.inventory.read_text())["all"]["vars"]["podium_offsite"]
        if all(offsite.get(k) for k in ("bucket", "endpoint", "region", "company", "key_env",
                                         "secret_env")):
            return offsite
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        pass
    raise PodiumError(f"{shown(paths.inventory)} does not name the offsite bucket of "
                      f"'{stack.name}' (podium_offsite)",
                      f"write it again from Pulumi's outputs (the state backend keeps them when "
                      f"the provider is gone): ./podium inventory --stack {stack.name}")


def tar_member(tar_bytes: bytes, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            if member.name.removeprefix("./") == name and member.isfile():
                data = tar.extractfile(member)
                return data.read().decode() if data else ""
    raise PodiumError(f"the secrets copy has no {name}: the repository cannot be read")


def usable_backups(info: dict, where: str, target_time: dt.datetime | None) -> list[dict]:
    """The backups of ``pgbackrest info``; refused when there is none, or ``--to`` is
    before the oldest one's end."""
    backups = info.get("backup", [])
    if info["status"]["code"] != 0 or not backups:
        raise PodiumError(f"{where} has no usable backup ({info['status']['message']})")
    oldest = dt.datetime.fromtimestamp(backups[0]["timestamp"]["stop"], dt.UTC)
    if target_time is not None and target_time < oldest:
        raise PodiumError(f"--to {target_time.isoformat()} is before the oldest backup's "
                          f"end ({oldest.isoformat()}): nothing to restore it from",
                          f"choose a time after {oldest.isoformat()}")
    return backups


def _stop(backup: dict) -> str:
    return f"{dt.datetime.fromtimestamp(backup['timestamp']['stop'], dt.UTC):%H:%M:%S}"


def pause_media_pushes(remote: Remote, media: list[str]) -> None:
    """Stop the media hosts' push to the backup host (timer, and a push under way)."""
    for host in media:
        remote.run(host, "sudo systemctl stop podium-media-copy.timer "
                         "podium-media-copy.service")


def put_in_place(remote: Remote, host: str, staged: str, dest: str, stamp: str) -> None:
    """``staged`` becomes ``dest``; the old ``dest`` is kept as ``dest.before-recover-<stamp>``."""
    remote.run(host, f"sudo sh -c 'if [ -e {dest} ]; then mv {dest} "
                     f"{dest}.before-recover-{stamp}; fi && mv {staged} {dest}'")


# ---------------------------------------------------------------- the recovery

def recover(target_name: str, source_name: str, to: str | None, allow_cloud: bool) -> Result:
    target_time = parse_target(to) if to else None  # refused before anything is looked at
    target, source = load_pair(target_name, source_name, allow_cloud)
    manifest = read_manifest(source_name)
    from_bucket = has_bucket(source)
    paths_a = StackPaths(source_name)
    bucket = stack_bucket(source, paths_a) if from_bucket else None
    # B keeps repo1 in its own bucket, as a cloud stack does (decision 0283): A's repository
    # is staged there, not on B's disk.
    into_bucket = from_bucket and repo1_in_bucket(target)
    own_bucket = stack_bucket(target, StackPaths(target_name), OWN_REMOTE) if into_bucket \
        else None
    copy_from = None if from_bucket else source_backup(source_name)
    stack, paths = load_up_stack(target_name, allow_cloud, RECOVER_NEEDS, cloud_ready=True)
    remote = Remote(stack, paths)
    groups = stack.groups()
    primary = configured_primary(stack, paths)
    replicas = [h for h in groups["postgres"] if h != primary]
    media, backup = groups.get("media", []), groups["backup"][0]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    tl = Timeline(11)
    started = tl.started
    marks: dict[str, float] = {"recovery began": started}
    findings: list[str] = []

    if bucket is not None:
        staged = {"repo": f"{REPO_PARENT}/{REPO_DIR}.from-{source_name}-{stamp}",
                  "media": f"{MEDIA_PARENT}/{MEDIA_DIR}.from-{source_name}-{stamp}"}
        if own_bucket is not None:  # a prefix of B's bucket, beside B's own repository
            staged["repo"] = f"recover-from-{source_name}-{stamp}/{REPO_PREFIX}"
        with tl.step(f"Read {source_name}'s offsite bucket {bucket.bucket} from {backup} "
                     f"(into staging folders; nothing of {target_name}'s is replaced yet)"):
            try:
                with BucketReader(remote, backup, bucket, own_bucket) as reader:
                    copy_name, blob = reader.newest_secrets_copy()
                    secrets_tar = decrypt_copy(blob, f"{copy_name} in {bucket.bucket}",
                                               paths_a)
                    if own_bucket is not None:
                        repo_bytes = reader.copy_repository_to_own(staged["repo"])
                        location = own_bucket.repo_lines(f"/{staged['repo']}")
                    else:
                        repo_bytes = reader.copy_repository(staged["repo"])
                        location = posix_repo_lines(staged["repo"])
                    info = repository_info(remote, backup, location,
                                           tar_member(secrets_tar, "pgbackrest-cipher").strip())
                    media_bytes = reader.copy_media(staged["media"]) if media else 0
                backups = usable_backups(info, f"the repository in {bucket.bucket}",
                                         target_time)
            except BaseException:
                # Nothing of B's was replaced: take the staging copies away again, so that a
                # second attempt starts as clean as the first.
                if own_bucket is not None:
                    purge_prefix(remote, backup, f"{own_bucket.bucket}/{staged['repo']}",
                                 own_bucket.ca_file)
                    remote.run(backup, f"sudo rm -rf {staged['media']}", check=False)
                else:
                    remote.run(backup, f"sudo rm -rf {staged['repo']} {staged['media']}",
                               check=False)
                raise
            tl.note(f"{len(backups)} backup(s), newest ended {_stop(backups[-1])} UTC; "
                    f"secrets copy {copy_name} decrypts; repository {repo_bytes / 1e6:.1f} MB, "
                    f"media copy {media_bytes / 1e6:.2f} MB; manifest "
                    + ("recorded" if manifest else "NOT recorded (no verification)"))
    else:
        assert copy_from is not None
        stack_a, paths_a, backup_a = copy_from
        remote_a = Remote(stack_a, paths_a)
        with tl.step(f"Check {source_name}'s offsite copy on {backup_a} (nothing is touched "
                     "yet)"):
            info = json.loads(remote_a.run(
                backup_a, f"sudo -u postgres pgbackrest --stanza={STANZA} --output=json info"))[0]
            backups = usable_backups(info, f"the repository on {backup_a} ({source_name})",
                                     target_time)
            copy_name, secrets_tar = decrypt_secrets_copy(remote_a, backup_a, paths_a)
            tl.note(f"{len(backups)} backup(s), newest ended {_stop(backups[-1])} UTC; secrets "
                    f"copy {copy_name} decrypts; manifest "
                    + ("recorded" if manifest else "NOT recorded (no verification)"))

    with tl.step(f"Take {source_name}'s identity: its secrets into {target_name}'s folder"):
        findings += adopt_secrets(secrets_tar, paths, stamp)
        for note in findings[-2:]:
            tl.note(note)

    if own_bucket is not None:
        with tl.step(f"Put {source_name}'s repository in place in {target_name}'s bucket "
                     f"{own_bucket.bucket}"):
            own_repo, aside = (f"{own_bucket.bucket}/{REPO_PREFIX}",
                               f"{own_bucket.bucket}/before-recover-{stamp}/{REPO_PREFIX}")
            move_prefix(remote, backup, own_repo, aside, own_bucket.ca_file)
            move_prefix(remote, backup, f"{own_bucket.bucket}/{staged['repo']}", own_repo,
                        own_bucket.ca_file)
            tl.note(f"{target_name}'s own repository kept as before-recover-{stamp}/"
                    f"{REPO_PREFIX} in its bucket")
    elif bucket is not None:
        with tl.step(f"Put {source_name}'s repository in place on {backup}"):
            put_in_place(remote, backup, staged["repo"], f"{REPO_PARENT}/{REPO_DIR}", stamp)
            tl.note(f"{target_name}'s own kept as {REPO_PARENT}/{REPO_DIR}"
                    f".before-recover-{stamp}")
    else:
        with tl.step(f"Copy {source_name}'s encrypted repository to {backup}"):
            repo_bytes = copy_tree(remote_a, backup_a, remote, backup, REPO_PARENT, REPO_DIR,
                                   stamp)
            tl.note(f"repository {repo_bytes / 1e6:.1f} MB")

    with tl.step(f"Converge {target_name} with {source_name}'s secrets (repository left alone)"):
        run_playbook(paths, "playbooks/site.yml", "recover-converge",
                     ["-e", json.dumps({"backup_manage_repository": False})], echo=False)

    with tl.step(f"Restore the database on {primary} from {source_name}'s repository "
                 f"({'to ' + target_time.isoformat() if target_time else 'latest'})"):
        restore_database(remote, primary, target_time)
        own = labstore.inventory_vars(stack)
        if own and own_bucket is None:
            # B's bucket (its repo2) holds B's old database's backups: kept, out of the way.
            # (With repo1 in the bucket, A's repository took that place before the converge.)
            move_prefix(remote, backup, f"{own['bucket']}/{REPO_PREFIX}",
                        f"{own['bucket']}/before-recover-{stamp}/{REPO_PREFIX}")
            tl.note(f"{own['bucket']}/{REPO_PREFIX} in {target_name}'s bucket set aside as "
                    f"before-recover-{stamp}/")

    with tl.step(f"Rebuild the replica(s) {', '.join(replicas) or '(none)'}"):
        rebuild_replicas(paths, groups, replicas)
        # Between the converge with A's passwords and the restore, PgBouncer's logins to B's
        # old database failed. PgBouncer keeps that failure and answers the next client of an
        # idle pool with it, even many minutes later (seen on a replica nobody had read
        # from): it is started afresh now that the passwords match.
        for host in groups["postgres"]:
            remote.run(host, "sudo systemctl restart pgbouncer")
        tl.note(f"PgBouncer restarted on {', '.join(groups['postgres'])} (no stale login "
                "failure kept)")

    with tl.step(f"Restore media on {', '.join(media) or '(no media host)'} from "
                 f"{source_name}'s copy ({target_name}'s own media pushes paused)"):
        # B's media hosts push their origin to B's backup host on a timer, mirroring it: a
        # push between putting A's copy in place and the restore would replace A's copy
        # with B's media. Paused here, A's copy put in place, restored, pushes resumed.
        pause_media_pushes(remote, media)
        if bucket is not None and media:
            put_in_place(remote, backup, staged["media"], f"{MEDIA_PARENT}/{MEDIA_DIR}", stamp)
        else:
            media_bytes = copy_tree(remote_a, backup_a, remote, backup, MEDIA_PARENT,
                                    MEDIA_DIR, stamp) if media else 0
            tl.note(f"media copy {media_bytes / 1e6:.2f} MB")
        restore_media(remote, media, tl, exact=True)
        for host in media:
            remote.run(host, "sudo systemctl start podium-media-copy.timer")

    with tl.step("Verify against the manifest recorded on the lost stack"):
        rows, matched, rpo = verify(remote, primary, media, manifest, target_time)
        tl.note(f"manifest {'matches' if matched else 'DOES NOT MATCH'}" if rows
                else "no manifest to compare with")

    with tl.step(f"Smoke: post and read back through {target_name}'s proxy"):
        if manifest and target_time is None:
            token, sentinel = manifest["token"], manifest["sentinel"]
        else:
            _, token = publisher(remote, groups["app"][0], stack.domain, "smoke")
            sentinel = None
        with proxy_api(remote) as api:
            smoke_ok, smoke_text = smoke(api, token, sentinel)
        serving = time.time()
        marks["serving again"] = serving
        tl.note(smoke_text)

    with tl.step(f"Re-converge {target_name}: stanza checked, backup on the new timeline"):
        try:
            run_playbook(paths, "playbooks/site.yml", "recover-reconverge", [], echo=False)
            backup_after = backup_new_timeline(remote, backup, primary, "after the recovery")
            backup_ok = True
        except PodiumError as err:
            backup_after, backup_ok = f"**FAILED**: {err.message}", False
        tl.note(backup_after)

    lost = _read_lost(paths_a)
    if lost:
        marks = {"source lost": lost["lost_at"], **marks}
    rto = serving - started
    ok = smoke_ok and backup_ok and (matched or not rows)
    report = write_report("recover", stack, report_lines(
        stack, source_name, target_time, rto, rpo, rows, matched, smoke_ok, smoke_text,
        backup_after, findings, manifest, lost, tl, marks))
    return Result(ok, report, {"rto": rto, "rpo": rpo, "matched": matched, "smoke": smoke_ok,
                               "backup": backup_ok})


def verify(remote: Remote, primary: str, media: list[str], manifest: dict | None,
           target_time: dt.datetime | None) -> tuple[list[list[str]], bool, float | None]:
    """Manifest rows (data, before, after, same), the verdict, and the RPO: the newest post
    the lost stack had at the manifest minus the newest one back (None: not measured)."""
    if manifest is None:
        return [], False, None
    if target_time is not None and target_time.timestamp() < manifest["recorded_at"]:
        return [], False, None  # a time before the manifest: its rows are not all wanted back
    after = {"db": db_manifest(remote, primary, manifest["cutoff"]),
             "media": origin_manifest(remote, media[:1])}
    rows = compare(manifest["db"], after["db"]) + compare(manifest["media"], after["media"])
    (newest,), = remote.psql(primary, "SELECT extract(epoch FROM max(created_at)) FROM "
                                      f"statuses WHERE created_at <= '{manifest['cutoff']}'")
    rpo = max(0.0, manifest["newest"] - float(newest or 0))
    return rows, all(r[3] == "yes" for r in rows), rpo


def _read_lost(paths: StackPaths) -> dict | None:
    path = paths.state / LOST_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def report_lines(stack: Stack, source: str, target_time: dt.datetime | None, rto: float,
                 rpo: float | None, rows: list[list[str]], matched: bool, smoke_ok: bool,
                 smoke_text: str, backup_after: str, findings: list[str],
                 manifest: dict | None, lost: dict | None, tl: Timeline,
                 marks: dict[str, float]) -> list[str]:
    began = dt.datetime.fromtimestamp(tl.started, dt.UTC)
    return [
        f"# Cross-provider recovery into `{stack.name}` from `{source}`, "
        f"{began:%Y-%m-%d %H:%M} UTC", "",
        f"Command: `./podium recover --stack {stack.name} --from {source}"
        + (f" --to {target_time.isoformat()}`" if target_time else "`"), "",
        "| figure | value |", "|---|---|",
        f"| RTO (recovery began → platform serving again at `{stack.name}`) | "
        f"**{fmt_seconds(rto)}** |",
        ("| RPO (newest post at the manifest → newest post back) | "
         + (f"**{fmt_seconds(rpo)}** |" if rpo is not None else "not measured (no manifest, or "
            "--to before it) |")),
        f"| restored to | {'latest' if target_time is None else target_time.isoformat()} |",
        f"| manifest matches | {('yes' if matched else '**NO**') if rows else 'not checked'} |",
        f"| smoke through `{stack.name}`'s proxy | {'passed' if smoke_ok else '**FAILED**'} |",
        f"| repository check and backup on the new timeline | {backup_after} |",
        *([f"| `{source}` lost (hosts destroyed) | "
           f"{dt.datetime.fromtimestamp(lost['lost_at'], dt.UTC):%H:%M:%S} UTC: "
           f"{', '.join(lost['destroyed'])}; kept {', '.join(lost['kept']) or 'nothing'} |"]
          if lost else []),
        "", "## Timeline", "", *timeline_chart(tl, marks), "",
        "## Manifest", "",
        (f"Recorded on `{source}` while it was alive (`./podium recover --record-manifest`): "
         f"rows created at or before {manifest['cutoff']}, and the media origin's files with "
         "their sha256. WAL was switched and archived and media pushed right after, so the "
         "manifest is a point the offsite copy holds. RPO 0 here means nothing the manifest "
         "held was lost; writes made after the last archived WAL (at most `archive_timeout`, "
         "60 s, in a crash) and after the last media push (15 min timer) would be."
         if manifest else "No manifest was recorded: the data could not be compared."), "",
        *(["| data | before | after | same |", "|---|---|---|---|",
           *(f"| {' | '.join(r)} |" for r in rows), ""] if rows else []),
        "## Identity and copies", "", *(f"- {n}" for n in findings), "",
        f"Smoke: {smoke_text}", "",
        where_from(source, stack.name),
    ]


def where_from(source: str, target: str) -> str:
    """What stood for the offsite copy in this recovery, and where the repository went, said
    plainly."""
    lost, into = load_stack(source), load_stack(target)
    if lost.provider != "local":
        return (f"Read from `{source}`'s offsite bucket at "
                f"{lost.offsite.provider if lost.offsite else 'its offsite company'} "
                f"(`podium:offsite`); the repository went bucket to bucket into `{target}`'s "
                "own offsite bucket, its repo1, where its own repository was set aside as "
                "`before-recover-<stamp>/` (decision 0283).")
    store = labstore.store_of(lost)
    if store is not None:
        went = (f"The repository went bucket to bucket into `{labstore.bucket(into)}`, where "
                f"`{target}` keeps its repo1 as a cloud stack does (decision 0283). "
                if labstore.repository(into) == "bucket" else
                f"The repository went onto `{target}`'s backup host, where it keeps repo1. ")
        return (f"Read from the offsite bucket: every host of `{source}` was destroyed, its "
                f"backup host too, and the repository, media copy and secrets copy came from "
                f"its bucket `{labstore.bucket(lost)}` in the lab store "
                f"`{store.stack.name}`, a third stack standing for object storage at another "
                f"company (decision 0282). {went}The kit reached both stacks as it reaches "
                "cloud stacks: SSH from the inventory, the API through an SSH forward to the "
                "proxy (decision 0298). Not shown here: a provider's bucket, its keys "
                "and the network path between two companies (docs/runbooks/"
                "cross-provider-recovery.md).")
    return ("Lab only: the backup host of the lost stack stood for the offsite store and was "
            "copied from. Stacks with an offsite bucket (`lab.offsite_store` in the lab, "
            "`podium:offsite` in the cloud) are recovered from the bucket instead (decisions "
            "0282, 0298; docs/runbooks/cross-provider-recovery.md).")
