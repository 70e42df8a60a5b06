"""./podium drill restore|failover: recovery as a routine, measured operation (issue 9).

restore: manifest of the platform's data -> destroy the database and media hosts -> new
machines -> converge -> pgBackRest restore on the primary (latest or --to), replica rebuilt
from it, media and secrets back from the backup host -> verify against the manifest -> post
and read back through the proxy. Reports RTO and RPO, and every lost write by ID.

failover: a steady writer posts through the proxy; the primary's host stops; the replica is
promoted, and the app's next connections find it on their own (its URL lists every
PostgreSQL host with target_session_attrs=read-write, PgBouncer runs on each: decision 0160);
the old primary comes back fenced (PostgreSQL not started at boot) and site.yml rebuilds it as
the new replica and moves what follows the primary (backups, monitoring, the app's host
order), off the write path. Reports the write-unavailability window and every lost
acknowledged write.

Both save a Markdown report with a timeline chart in docs/drills/ (decision 0111).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import shlex
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kit import lab
from kit.ansible import run_playbook
from kit.console import fmt_seconds
from kit.drillkit import (
    MEDIA_ROOT,
    PG_CLUSTER,
    PG_DATA,
    PG_START_CONF,
    STANZA,
    Api,
    Remote,
    Timeline,
    Writer,
    backup_new_timeline,
    check_drill_stack,
    configured_primary,
    decrypt_secrets_copy,
    lost_writes_section,
    parse_target,
    pgbackrest_time,
    present_ids,
    proxy_api,
    publisher,
    record_primary,
    timeline_chart,
    write_outage,
    write_report,
)
from kit.errors import PodiumError
from kit.machines import Machine
from kit.paths import StackPaths
from kit.stack import Stack, load_stack

# Stable columns per table: counters (followers_count...) change with every later write.
MANIFEST_TABLES = {
    "accounts": "id, username, email, password_hash, created_at",
    "statuses": "id, account_id, text, created_at",
    "follows": "id, account_id, target_account_id, created_at",
    "media_attachments": "id, account_id, file_name, created_at",
}


@dataclass
class Result:
    """What a drill found: ``ok`` is the verdict (the CLI's exit status), ``figures`` the
    measured values (seconds, counts), ``report`` the saved Markdown."""

    ok: bool
    report: Path
    figures: dict


RESTORE_NEEDS = {"postgres": 1, "backup": 1, "app": 1, "proxy": 1}
FAILOVER_NEEDS = {"postgres": 2, "app": 1, "proxy": 1}


def load_up_stack(stack_name: str, allow_cloud: bool, needs: dict[str, int],
                  cloud_ready: bool = False) -> tuple[Stack, StackPaths]:
    """The stack checked for the roles ``needs`` and up, every host running: a lab host's
    machine process alive; a cloud host answering SSH (``cloud_ready``: the command drives
    cloud stacks)."""
    stack = load_stack(stack_name)
    check_drill_stack(stack, allow_cloud, needs, cloud_ready)
    paths = StackPaths(stack_name)
    if stack.provider != "local":
        remote = Remote(stack, paths)  # reads the inventory; says how to write a missing one
        down = [h.name for h in stack.hosts if not remote.answers(h.name)]
        if down:
            raise PodiumError(
                f"stack '{stack_name}': hosts not answering SSH as {remote.reach.user}: "
                f"{', '.join(f'{h} ({remote.reach.address(h)})' for h in down)}",
                f"check them in the provider's console and that your SSH key is loaded; "
                f"./podium up --stack {stack_name} converges them again")
        return stack, paths
    saved = lab._load_state(stack_name)
    if saved is None or not paths.inventory.is_file():
        raise PodiumError(f"stack '{stack_name}' is not up",
                          f"bring it up first: ./podium up --stack {stack_name}")
    down = [h.name for h in saved.hosts if Machine(saved, h, paths).pid() is None]
    if down:
        raise PodiumError(f"stack '{stack_name}': hosts not running: {', '.join(down)}",
                          f"start them with ./podium up --stack {stack_name}")
    return saved, paths


# ---------------------------------------------------------------- manifest

def db_manifest(remote: Remote, primary: str, cutoff: str) -> dict[str, dict]:
    """Count and checksum of each table's rows created at or before ``cutoff``."""
    out = {}
    for table, columns in MANIFEST_TABLES.items():
        (count, digest), = remote.psql(
            primary, f"SELECT count(*), coalesce(md5(string_agg(md5(row({columns})::text), '' "
                     f"ORDER BY id)), '-') FROM {table} WHERE created_at <= '{cutoff}'")
        out[table] = {"count": int(count), "md5": digest}
    return out


def media_manifest(remote: Remote, hosts: list[str]) -> dict[str, dict]:
    """Count and a checksum over the sorted sha256 list of the origin's files, per host."""
    out = {}
    for host in hosts:
        listing = remote.run(host, f"cd {MEDIA_ROOT} && sudo find . -type f ! -path './.upload/*'"
                             " -print0 | sort -z | sudo xargs -0 -r sha256sum", timeout=600)
        lines = [line for line in listing.splitlines() if line]
        out[host] = {"count": len(lines),
                     "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest()}
    return out


def compare(expected: dict[str, dict], actual: dict[str, dict]) -> list[list[str]]:
    rows = []
    for name, want in expected.items():
        got = actual.get(name, {})
        same = want == got
        rows.append([name, str(want.get("count")), str(got.get("count")),
                     "yes" if same else "**NO**"])
    return rows


# ---------------------------------------------------------------- secrets copy

def check_secrets_copy(remote: Remote, backup: str, paths: StackPaths) -> list[str]:
    """Decrypt the newest secrets copy on the backup host with the lab identity and compare
    it with the controller's folder; restore the folder from it if the folder is gone."""
    newest, tar_bytes = decrypt_secrets_copy(remote, backup, paths)
    notes, files = [], {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member)
                files[member.name.removeprefix("./")] = data.read() if data else b""
        if not paths.secrets.is_dir():
            paths.secrets.mkdir(parents=True, mode=0o700)
            tar.extractall(paths.secrets, **(
                {"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            notes.append(f"the controller's secrets folder was missing: restored "
                         f"{len(files)} files from {newest}")
    differ = [n for n, data in files.items()
              if (paths.secrets / n).is_file() and (paths.secrets / n).read_bytes() != data]
    missing = [n for n in files if not (paths.secrets / n).is_file()]
    newer = sorted(str(p.relative_to(paths.secrets)) for p in paths.secrets.rglob("*")
                   if p.is_file() and str(p.relative_to(paths.secrets)) not in files)
    notes.append(f"secrets copy `{Path(newest).name}`: {len(files)} files decrypted; "
                 f"{len(files) - len(differ) - len(missing)} identical to the controller's")
    if differ or missing:
        notes.append(f"**differ**: {', '.join(differ + missing)}")
    if newer:
        notes.append(f"not in the copy yet (made after it; copied at the next converge): "
                     f"{', '.join(newer)}")
    return notes


# ---------------------------------------------------------------- restore

def restore(stack_name: str, to: str | None, allow_cloud: bool,
            write_seconds: float) -> Result:
    target = parse_target(to) if to else None  # refused before anything is looked at
    stack, paths = load_up_stack(stack_name, allow_cloud, RESTORE_NEEDS)
    remote = Remote(stack, paths)
    groups = stack.groups()
    primary = configured_primary(stack, paths)
    replicas = [h for h in groups["postgres"] if h != primary]
    media = groups.get("media", [])
    backup = groups["backup"][0]
    app = groups["app"][0]
    api = Api(str(stack.host(groups["proxy"][0]).address), stack.domain)
    destroyed = [*groups["postgres"], *[m for m in media if m not in groups["postgres"]]]
    tl = Timeline(13)
    marks: dict[str, float] = {}
    findings: list[str] = []

    with tl.step("Check the repository and the target time (nothing is touched yet)"):
        info = json.loads(remote.run(
            backup, f"sudo -u postgres pgbackrest --stanza={STANZA} --output=json info"))[0]
        backups = info.get("backup", [])
        if info["status"]["code"] != 0 or not backups:
            raise PodiumError(f"the repository on {backup} has no usable backup "
                              f"({info['status']['message']})",
                              "converge the stack (it takes the first backup), then retry")
        oldest = dt.datetime.fromtimestamp(backups[0]["timestamp"]["stop"], dt.UTC)
        if target is not None and target < oldest:
            raise PodiumError(
                f"--to {target.isoformat()} is before the oldest backup's end "
                f"({oldest.isoformat()}): nothing to restore it from",
                f"choose a time after {oldest.isoformat()}")
        actual_primary = [h for h in groups["postgres"] if remote.in_recovery(h) is False]
        if actual_primary != [primary]:
            raise PodiumError(f"the primary should be {primary} but PostgreSQL says "
                              f"{actual_primary or 'none'}",
                              "converge the stack first (./podium converge)")
        tl.note(f"{len(backups)} backup(s), oldest ended {oldest:%Y-%m-%d %H:%M:%S} UTC; "
                f"primary {primary}; will destroy {', '.join(destroyed)}")

    with tl.step("Make data: a publisher, a reader who follows, a post with an image"):
        name, token = publisher(remote, app, stack.domain, "drill")
        _, reader_token = publisher(remote, app, stack.domain, "reader")
        status, account = api.call("GET", f"/api/v1/accounts/lookup?acct={name}")
        if status != 200 or not isinstance(account, dict):
            raise PodiumError(f"looking up {name} through the proxy answered {status}")
        api.call("POST", f"/api/v1/accounts/{account['id']}/follow", reader_token)
        media_id = api.upload_png(token)
        sentinel = api.post(token, "drill sentinel: written before the manifest", [media_id])
        tl.note(f"publisher {name}, post {sentinel} with media {media_id}")
        time.sleep(5)  # the worker stores the upload at the origin

    with tl.step("Record the manifest and make sure the backups have it"):
        bound = f"least(now(), '{target.isoformat()}'::timestamptz)" if target else "now()"
        db_cut = remote.psql(primary, f"SELECT {bound}")[0][0]
        manifest = {"db": db_manifest(remote, primary, db_cut),
                    "media": media_manifest(remote, media[:1])}
        # The manifest is a point the backups hold: archive the WAL now and push media.
        remote.run(backup, f"sudo -u postgres pgbackrest --stanza={STANZA} check")
        for host in media[:1]:
            remote.run(host, "sudo systemctl start podium-media-copy.service", timeout=600)
        for table, entry in manifest["db"].items():
            tl.note(f"{table}: {entry['count']} rows, md5 {entry['md5'][:12]}")
        before_sentinel = None
        if target:
            newest = remote.psql(primary, "SELECT id FROM statuses WHERE visibility = 'public' "
                                          f"AND created_at <= '{db_cut}' ORDER BY id DESC "
                                          "LIMIT 1")
            before_sentinel = str(uuid.UUID(newest[0][0]).int) if newest else None
            tl.note(f"the smoke will read {before_sentinel or 'no post (none before the target)'}"
                    ", the newest public post before the target")
        for host, entry in manifest["media"].items():
            tl.note(f"media on {host}: {entry['count']} files", host)

    manifest_held = time.time()  # every write up to here is in the backups (checked above)
    writer = Writer(api, token, interval=0.5)
    with tl.step(f"Write for {write_seconds:.0f}s after the manifest (what RPO measures)"):
        writer.start()
        time.sleep(write_seconds)
        writer.stop()
        tl.note(f"{len(writer.acked)} posts acknowledged, {len(writer.failures)} failed")
        # --to goes back in time on purpose: every post made after the target (the drill's
        # own above included) is gone afterwards. Listed now, while they exist, by ID.
        after_target = statuses_after(remote, primary, target) if target else []
        if target:
            tl.note(f"{len(after_target)} posts were created after the target "
                    f"{target.isoformat()}: absent after the restore by design")

    disaster = time.time()
    marks["disaster"] = disaster
    with tl.step(f"Disaster: destroy {', '.join(destroyed)} (machines and disks)"):
        lab.destroy(stack, paths, destroyed)

    with tl.step("Provision fresh machines"):
        lab.rebuild(stack, paths, destroyed, tl.progress)

    with tl.step("Converge the new hosts (site.yml --limit)"):
        run_playbook(paths, "playbooks/site.yml", "drill-converge",
                     ["--limit", ",".join(destroyed)], echo=False)

    with tl.step(f"Restore the database on {primary} with pgBackRest "
                 f"({'to ' + target.isoformat() if target else 'latest'})"):
        restore_database(remote, primary, target)

    with tl.step(f"Rebuild the replica(s) {', '.join(replicas) or '(none)'} from the restored "
                 "primary"):
        rebuild_replicas(paths, groups, replicas)

    with tl.step("Restore media and check the secrets copy"):
        restore_media(remote, media, tl)
        findings += check_secrets_copy(remote, backup, paths)

    with tl.step("Verify against the manifest; find lost writes"):
        after = {"db": db_manifest(remote, primary, db_cut),
                 "media": media_manifest(remote, media[:1])}
        rows = compare(manifest["db"], after["db"]) + compare(manifest["media"],
                                                               after["media"])
        matched = all(r[3] == "yes" for r in rows)
        acked_ids = [w.id for w in writer.acked]
        present = present_ids(remote, primary, "statuses", acked_ids)
        expected = [w for w in writer.acked if target is None or w.at <= target.timestamp()]
        lost = [w for w in expected if w.id not in present]
        survived = [w for w in writer.acked if w.id in present]
        # A restore to --to that kept a post made after the target went past it.
        overshoot = sorted(present_ids(remote, primary, "statuses",
                                       [i for i, _ in after_target]))
        if target:
            (newer,), = remote.psql(primary, "SELECT count(*) FROM statuses WHERE created_at "
                                             f"> '{target.isoformat()}'")
            if int(newer) and not overshoot:
                overshoot = [f"{newer} row(s)"]
        tl.note(f"manifest {'matches' if matched else 'DOES NOT MATCH'}; "
                f"{len(survived)}/{len(writer.acked)} writes survived, {len(lost)} lost"
                + (f"; {len(after_target) - len(overshoot)}/{len(after_target)} posts after "
                   f"the target absent as intended" if target else ""))

    with tl.step("Smoke: post and read back through the proxy; read the sentinel"):
        if target:
            # The drill's publisher and sentinel were made after the target: gone. A new
            # publisher posts, and reads the newest post made before the target.
            _, token = publisher(remote, app, stack.domain, "smoke")
            sentinel = before_sentinel
        # Through an SSH forward, as ./podium recover reaches a cloud stack's proxy: the lab's
        # drills exercise that path (decision 0298).
        with proxy_api(remote) as forwarded:
            smoke_ok, smoke_text = smoke(forwarded, token, sentinel)
        serving = time.time()
        marks["serving again"] = serving
        tl.note(smoke_text)

    with tl.step("Check the repository takes the restored primary's WAL; back up the new "
                 "timeline"):
        # The restore promoted a new timeline. Until a backup is taken on it, the newest
        # backup belongs to the old one (for --to, to a branch the database has left), and
        # a later restore of "the newest backup" would follow a history that is not ours.
        # A failure here fails the drill but still leaves its report.
        try:
            remote.run(backup, f"sudo -u postgres pgbackrest --stanza={STANZA} check")
            backup_after = backup_new_timeline(remote, backup, primary, "after the restore")
            backup_ok = True
        except PodiumError as err:
            backup_after, backup_ok = f"**FAILED**: {err.message}", False
        tl.note(backup_after)

    last_made = writer.acked[-1].at if writer.acked else None
    newest_kept = max((w.at for w in survived), default=None)
    # RPO: the last write made against the newest that survived. If none of the writer's
    # posts survived, the newest data known to be back is the manifest's point.
    rpo = (last_made - (newest_kept or manifest_held)) if last_made else 0.0
    rto = serving - disaster
    ok = matched and smoke_ok and not overshoot and backup_ok
    lines = [
        f"# Restore drill on stack `{stack.name}`, "
        f"{dt.datetime.fromtimestamp(tl.started, dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `./podium drill restore --stack {stack.name}"
        + (f" --to {target.isoformat()}" if target else "") + f" --write-seconds "
        f"{write_seconds:.0f}`",
        "",
        "| figure | value |", "|---|---|",
        f"| RTO (disaster → platform serving again) | **{fmt_seconds(rto)}** |",
        (f"| RPO (last write made → newest write that survived) | **{fmt_seconds(rpo)}** |"
         if target is None else "| RPO | not applicable: restored to a chosen time (--to) |"),
        f"| restored to | {'latest' if target is None else target.isoformat()} |",
        *([f"| posts created after the target | {len(after_target)}, "
           f"{len(after_target) - len(overshoot)} absent as intended"
           + (f", **{len(overshoot)} still present**" if overshoot else "") + " |"]
          if target else []),
        f"| manifest matches | {'yes' if matched else '**NO**'} |",
        f"| writes after the manifest | {len(writer.acked)} acknowledged, "
        f"{len(survived)} survived, {len(lost)} lost |",
        f"| smoke (post + read back through the proxy) | {'passed' if smoke_ok else '**FAILED**'}"
        " |",
        f"| destroyed and rebuilt | {', '.join(destroyed)} |",
        f"| repository check and backup on the new timeline | {backup_after} |",
        "",
        "## Timeline", "", *timeline_chart(tl, marks), "",
        "## Manifest", "",
        f"Rows created at or before {db_cut}; media files at the origin with their sha256.",
        *(["", "With --to the manifest counts only rows created at or before the target: "
           "what comes back. Rows made after it are not in the manifest; the posts among them "
           "are listed by ID below and checked absent. (A row is dated when its transaction "
           "began and recovery stops at commits, so a post begun before the target and "
           "committed after it would be a manifest mismatch: reported, not hidden.)"]
          if target else []),
        "", "| data | before | after | same |", "|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in rows), "",
        *(after_target_section(target, after_target, overshoot) if target else []),
        "## Lost writes", "",
        "The manifest is taken at a point the backups hold (WAL switched and archived, media "
        "pushed); the writer then posts for the time above and the hosts are destroyed without "
        "another switch. The lab's disaster stops each machine cleanly (SIGTERM) before "
        "deleting its disk; a crash would also lose what was not archived yet, up to "
        "`archive_timeout` (60 s).", "",
        *lost_writes_section(lost, last_made), "",
        "## Secrets and media", "", *(f"- {n}" for n in findings), "",
        f"Smoke: {smoke_text}",
    ]
    report = write_report("restore", stack, lines)
    return Result(ok, report, {
        "rto": rto, "rpo": rpo, "matched": matched, "smoke": smoke_ok,
        "acked": len(writer.acked), "lost": [w.id for w in lost],
        "after_target": [i for i, _ in after_target], "overshoot": overshoot})


def statuses_after(remote: Remote, primary: str, target: dt.datetime) -> list[tuple[str, str]]:
    """(API ID, created_at) of every post created after ``target``, oldest first."""
    rows = remote.psql(primary, "SELECT id, created_at FROM statuses WHERE created_at > "
                                f"'{target.isoformat()}' ORDER BY id")
    return [(str(uuid.UUID(r[0]).int), r[1]) for r in rows]


def after_target_section(target: dt.datetime, after: list[tuple[str, str]],
                         overshoot: list[str]) -> list[str]:
    out = ["## Posts after the target: lost by design of --to", "",
           f"{len(after)} post(s) were created after {target.isoformat()} (listed before the "
           "disaster); a restore to that time does not bring them back."]
    if overshoot:
        out += ["", f"**{len(overshoot)} of them are still present: the restore went past the "
                f"target**: {', '.join(overshoot)}"]
    else:
        out += ["", "All of them are absent after the restore, as intended."]
    if after:
        out += ["", "| status ID | created at |", "|---|---|",
                *(f"| `{i}` | {at} |" for i, at in after)]
    return [*out, ""]


# ---------------------------------------------------------------- steps restore and recover share

def restore_database(remote: Remote, primary: str, target: dt.datetime | None) -> None:
    """pgBackRest restore on the primary (latest, or to ``target``), promoted and serving."""
    options = (f"--type=time --target={shlex.quote(pgbackrest_time(target))} "
               "--target-action=promote" if target else "")
    remote.run(primary, f"sudo systemctl stop postgresql@{PG_CLUSTER} && sudo -u postgres "
               f"pgbackrest --stanza={STANZA} --delta {options} restore && "
               f"sudo systemctl start postgresql@{PG_CLUSTER}", timeout=1800)
    remote.wait_primary(primary, 1800)
    if target:
        # pgBackRest wrote the target into postgresql.auto.conf; the replica's base
        # backup copies that file, and a standby with a recovery target in its past stops
        # at its first commit and promotes itself: two primaries (found in the lab).
        remote.psql(primary, "ALTER SYSTEM RESET recovery_target_time")
        remote.psql(primary, "ALTER SYSTEM RESET recovery_target_action")
    remote.run(primary, "sudo systemctl restart pgbouncer")


def rebuild_replicas(paths: StackPaths, groups: dict[str, list[str]],
                     replicas: list[str]) -> None:
    """Replicas from a fresh base backup of the (restored) primary."""
    if replicas:
        run_playbook(paths, "playbooks/site.yml", "drill-replica",
                     ["--limit", ",".join(groups["postgres"]),
                      "-e", json.dumps({"postgres_replica_force_rebuild": True})], echo=False)


def restore_media(remote: Remote, media: list[str], tl: Timeline, exact: bool = False) -> None:
    """Each media origin back from the backup host's copy (podium-media-restore). ``exact``:
    the origin becomes equal to the copy, its other files set aside (decision 0291)."""
    command = "sudo /usr/local/sbin/podium-media-restore" + (" --exact" if exact else "")
    for host in media:
        out = remote.run(host, command, timeout=1800)
        sent = [line for line in out.splitlines() if "files transferred" in line]
        aside = [line for line in out.splitlines() if "move to" in line]
        tl.note((sent[0].strip() if sent else "restored")
                + (f"; {aside[0].split('; ', 1)[-1]}" if aside else ""), host)


def smoke(api: Api, token: str, sentinel: str | None) -> tuple[bool, str]:
    """Post and read back through the proxy (retrying while the app reconnects), and read a
    post made before the disaster (``sentinel``; None: there is none to read)."""
    deadline, last = time.monotonic() + 300, ""
    while time.monotonic() < deadline:
        try:
            new = api.post(token, "drill smoke: written after the restore")
            if api.read(token, new) and (sentinel is None or api.read(token, sentinel)):
                return True, (f"posted {new} and read it back; "
                              + (f"read sentinel {sentinel}" if sentinel else "no sentinel"))
            last = "a post could not be read back"
        except (PodiumError, OSError) as err:
            last = str(err)
        time.sleep(2)
    return False, f"the platform did not serve within 300s: {last}"


# ---------------------------------------------------------------- failover

def failover(stack_name: str, allow_cloud: bool, warmup: float, crash: bool = False) -> Result:
    stack, paths = load_up_stack(stack_name, allow_cloud, FAILOVER_NEEDS)
    remote = Remote(stack, paths)
    groups = stack.groups()
    app = groups["app"][0]
    api = Api(str(stack.host(groups["proxy"][0]).address), stack.domain)
    old = configured_primary(stack, paths)
    tl = Timeline(10)
    marks: dict[str, float] = {}

    with tl.step("Find the primary and a streaming replica"):
        states = {h: remote.in_recovery(h) for h in groups["postgres"]}
        if states.get(old) is not False:
            raise PodiumError(f"{old} should be the primary but PostgreSQL there says "
                              f"{'replica' if states.get(old) else 'nothing'}",
                              "converge the stack first (./podium converge)")
        streaming = remote.psql(old, "SELECT application_name FROM pg_stat_replication "
                                     "WHERE state = 'streaming'")
        candidates = [h for h in groups["postgres"] if h != old and states[h]]
        new = next((h for h in candidates if [h] in streaming), candidates[0] if candidates
                   else None)
        if new is None:
            raise PodiumError("no replica to promote", "converge the stack first")
        tl.note(f"primary {old}, promoting {new}; streaming: "
                f"{', '.join(r[0] for r in streaming) or 'none'}")

    with tl.step(f"Record the manifest on {old} (rows that exist before the disaster)"):
        db_cut = remote.psql(old, "SELECT now()")[0][0]
        manifest = db_manifest(remote, old, db_cut)
        for table, entry in manifest.items():
            tl.note(f"{table}: {entry['count']} rows, md5 {entry['md5'][:12]}")

    with tl.step(f"Start a steady writer through the proxy ({warmup:.0f}s warm-up)"):
        _, token = publisher(remote, app, stack.domain, "writer")
        writer = Writer(api, token, interval=0.2)
        writer.start()
        time.sleep(warmup)
        tl.note(f"{len(writer.acked)} posts acknowledged so far")

    stopped = time.time()
    marks["primary crashed" if crash else "primary stopped"] = stopped
    with tl.step(f"{'Crash (SIGKILL)' if crash else 'Stop'} the primary's host {old}"):
        if crash:
            # Whole-host disaster: every process of the guest is killed at once, PostgreSQL
            # gets no shutdown checkpoint and its archiver no last push.
            Machine(stack, stack.host(old), paths).kill()
        else:
            Machine(stack, stack.host(old), paths).stop()
    # A clean shutdown still answers requests sent in its first moments (they are real,
    # acknowledged writes): the outage is the gap around the moment the host is gone.
    gone = time.time()

    with tl.step(f"Promote {new}"):
        remote.run(new, f"sudo pg_ctlcluster {PG_CLUSTER.replace('-', ' ')} promote")
        remote.wait_primary(new, 120)
        record_primary(paths, new)

    with tl.step(f"Wait for writes to resume (the app finds {new} by itself: no repointing)"):
        deadline = time.monotonic() + 120
        while writer.first_ok_after(gone) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        resumed = writer.first_ok_after(gone)
        if resumed:
            marks["first write after"] = resumed
            tl.note(f"first write acknowledged {resumed - stopped:.1f}s after the stop")

    with tl.step("Keep writing 10s on the new primary"):
        time.sleep(10)

    # The writer goes on through the rebuild: what the converge does to the new primary and
    # the app (reloads, an app restart for its new host order) shows as pauses of its own.
    rebuild_began = time.time()
    # One post a second from here: the rebuild takes minutes, and at five a second the writer
    # would reach the app's post limit (rate_post_account, 300 per account in 3 hours).
    writer.interval = 1.0
    with tl.step(f"Rebuild {old} as the new replica (site.yml), still writing"):
        machine = Machine(stack, stack.host(old), paths)
        # Fence: the old primary must not come back accepting writes, or the app (which lists
        # every PostgreSQL host) could write there. Its cluster is disabled before it boots
        # (pg_ctlcluster and the unit refuse to start it); the postgres role sets start.conf
        # back to "auto" in the converge that makes it a replica.
        (machine.root / PG_START_CONF.lstrip("/")).write_text("disabled\n")
        machine.boot()
        lab.wait_all(stack, paths, [machine], tl.progress)
        # Keep what the old primary had (it may hold writes that never reached the replica)
        # beside the data directory; the role then takes a fresh base backup.
        remote.run(old, f"sudo systemctl stop postgresql@{PG_CLUSTER} && sudo mv {PG_DATA} "
                   f"{PG_DATA}.before-failover-{int(stopped)} && sudo install -d -o postgres "
                   f"-g postgres -m 0700 {PG_DATA}")
        run_playbook(paths, "playbooks/site.yml", "drill-rebuild",
                     ["--limit", ",".join([*groups["postgres"], *groups.get("backup", []),
                                           *groups["app"], *groups.get("monitoring", [])])],
                     echo=False)
        if remote.in_recovery(old) is not True:
            raise PodiumError(f"{old} did not come back as a replica")
        writer.stop()
        # The converge's backup role backs up the new timeline (roles/backup/tasks/
        # repository.yml); this confirms it, or takes the backup if the role did not.
        backup_note = (backup_new_timeline(remote, groups["backup"][0], new, "after the "
                                           "promotion") if groups.get("backup") else
                       "no backup host in this stack")
        tl.note(backup_note)

    with tl.step(f"Verify the manifest on {new} (primary) and {old} (rebuilt replica)"):
        on_new, on_old = db_manifest(remote, new, db_cut), db_manifest(remote, old, db_cut)
        manifest_rows = [[f"{r[0]} on {new}", *r[1:]] for r in compare(manifest, on_new)] + [
            [f"{r[0]} on {old}", *r[1:]] for r in compare(manifest, on_old)]
        matched = all(r[3] == "yes" for r in manifest_rows)
        tl.note(f"manifest {'matches' if matched else 'DOES NOT MATCH'} on both hosts")

    with tl.step("Count lost writes; check the replica streams"):
        present = present_ids(remote, new, "statuses", [w.id for w in writer.acked])
        lost = [w for w in writer.acked if w.id not in present]
        streaming = remote.psql(new, "SELECT application_name FROM pg_stat_replication "
                                     "WHERE state = 'streaming'")
        tl.note(f"{len(lost)} of {len(writer.acked)} acknowledged writes lost; streaming: "
                f"{', '.join(r[0] for r in streaming) or 'none'}")

    # Writes the stopping primary still acknowledged are real; the outage is measured from the
    # acknowledgements themselves (drillkit.write_outage), up to when they flow steadily again.
    outage = write_outage([w.at for w in writer.acked if w.at < rebuild_began], stopped)
    last_ok, steady = outage if outage else (writer.last_ok_before(stopped) or stopped, None)
    window = (steady - last_ok) if steady else float("nan")
    if steady:
        marks["writes flow again"] = steady
    acks = sorted(w.at for w in writer.acked)
    pauses = [(b - a, a) for a, b in itertools.pairwise(acks)
              if b - a > 2 and last_ok <= a and (steady is None or b <= steady)]
    failed_in_window = [f for f in writer.failures if last_ok <= f[0] < rebuild_began]
    rebuild_pauses = [(b - a, a) for a, b in itertools.pairwise(acks)
                      if b - a > 2 and a >= rebuild_began]
    lines = [
        f"# Failover drill on stack `{stack.name}`, "
        f"{dt.datetime.fromtimestamp(tl.started, dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `./podium drill failover --stack {stack.name} --warmup {warmup:.0f}"
        + (" --crash`" if crash else "`"),
        "",
        "Disaster: " + ("the primary's host was **killed** (SIGKILL to every process of the "
                        "guest: no shutdown, no last WAL push)" if crash else
                        "the primary's host was **stopped** cleanly (SIGTERM, shutdown)"),
        "",
        "| figure | value |", "|---|---|",
        "| write-unavailability (last write acknowledged before the outage → writes flowing "
        f"again, no gap over 2 s) | **{fmt_seconds(window) if steady else 'writes never resumed'}**"
        " |",
        "| first write acknowledged after the old primary's host was gone | "
        + (f"{fmt_seconds(resumed - stopped)} after the stop began" if resumed else "none")
        + " |",
        f"| failed write requests | {len(writer.failures)} "
        f"({len(failed_in_window)} in the window) |",
        f"| acknowledged writes | {len(writer.acked)}, **{len(lost)} lost** |",
        "| pauses over 2 s inside the outage | " + _pauses(pauses, tl.started) + " |",
        f"| pauses over 2 s while {old} was rebuilt (writes went on, one a second) | "
        + _pauses(rebuild_pauses, tl.started) + " |",
        f"| old primary → new primary | {old} → {new} |",
        f"| manifest (rows before the disaster) on both hosts | "
        f"{'matches' if matched else '**DOES NOT MATCH**'} |",
        f"| replicas streaming afterwards | {', '.join(r[0] for r in streaming) or 'none'} |",
        f"| backup on the new timeline | {backup_note} |",
        "",
        "## Timeline", "", *timeline_chart(tl, marks), "",
        "## Manifest", "",
        f"Rows created at or before {db_cut} (before the writer started), counted and "
        f"checksummed on {old} before the disaster, then on the promoted {new} and on {old} "
        "rebuilt as its replica.", "",
        "| data | before | after | same |", "|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in manifest_rows), "",
        "## Lost writes", "",
        "PostgreSQL replication is asynchronous (decision 0020): writes the primary "
        "acknowledged but had not sent before its host stopped are lost. The old primary's "
        f"data directory is kept on {old} as `{PG_DATA}.before-failover-{int(stopped)}`.", "",
        *lost_writes_section(lost, writer.acked[-1].at if writer.acked else None), "",
        f"The writer posted every 0.2 s through the proxy {api.address}:{api.port}; failures "
        "by kind: " + (", ".join(f"{k}: {v}" for k, v in _kinds(writer).items()) or "none")
        + ".",
        "",
        f"The kit recorded `podium_postgres_primary: {new}` in "
        f".podium/{stack.name}/group_vars/all/: later converges keep {new} as the primary.",
    ]
    report = write_report("failover", stack, lines)
    return Result(bool(steady and not lost and streaming and matched), report, {
        "matched": matched, "window": window, "failed": len(writer.failures),
        "acked": len(writer.acked),
        "lost": [w.id for w in lost], "new_primary": new, "streaming": len(streaming)})


def _pauses(pauses: list[tuple[float, float]], t0: float) -> str:
    return ", ".join(f"{fmt_seconds(g)} at +{fmt_seconds(a - t0)}" for g, a in pauses) or "none"


def _kinds(writer: Writer) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for _, kind in writer.failures:
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds

