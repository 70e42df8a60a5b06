"""Cross-provider recovery (`./podium recover`, issue 9) end to end on two lab stacks.

Records the manifest of the source stack (A, default lab-prova), destroys A, recovers into B
(default lab-provb) and checks that the manifest matches, the smoke test passed with a token
made at A, RPO is 0 for what the manifest held, and the report has RTO, RPO and the
timeline. lab-prova keeps its offsite copies in the bucket podium-lab-prova of the store
stack lab-offsite (decision 0282): every host of A is destroyed, its backup host too, and B
reads the bucket. A source without a store keeps its backup host, which stands for the
offsite store. Destructive for A and about 5 minutes after the stacks are up (lab-offsite
first, then 8 minutes each for A and B), so it runs only when asked, e.g.
`PODIUM_SLOW_DRILLS=1 .venv/bin/pytest tests/lab/test_recover.py`
(PODIUM_RECOVER_FROM / PODIUM_RECOVER_STACK name other stacks).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from kit import lab, labstore, recover
from kit.drillkit import MEDIA_ROOT, Remote, configured_primary
from kit.machines import Machine
from kit.paths import REPO, StackPaths

pytestmark = [pytest.mark.lab, pytest.mark.drill]

SOURCE = os.environ.get("PODIUM_RECOVER_FROM", "lab-prova")
TARGET = os.environ.get("PODIUM_RECOVER_STACK", "lab-provb")


def _not_up(name: str) -> str | None:
    stack = lab._load_state(name)
    if stack is None:
        return f"stack {name} is not up (./podium up --stack {name} --no-test)"
    down = [h.name for h in stack.hosts
            if Machine(stack, h, StackPaths(name)).pid() is None]
    return f"stack {name}: hosts not running: {', '.join(down)}" if down else None


@pytest.fixture(scope="module")
def run():
    if os.environ.get("PODIUM_SLOW_DRILLS") != "1":
        pytest.skip("cross-provider recovery destroys the source stack and takes minutes "
                    "after two stacks are up: set PODIUM_SLOW_DRILLS=1")
    for name in (SOURCE, TARGET):
        reason = _not_up(name)
        if reason:
            pytest.skip(reason)
    target, target_paths = lab._load_state(TARGET), StackPaths(TARGET)
    # B has served media of its own before (a rehearsal, a second recovery): the recovery
    # must set it aside, not serve it beside A's (decision 0291).
    media_host = target.groups()["media"][0]
    stray = f"{MEDIA_ROOT}/before-recover-{secrets.token_hex(6)}.bin"
    Remote(target, target_paths).run(media_host, f"echo b-only | sudo tee {stray} >/dev/null")
    recover.record_manifest(TARGET, SOURCE, allow_cloud=False)
    manifest = recover.read_manifest(SOURCE)
    destroyed = recover.lose_source(TARGET, SOURCE)
    began = time.time()
    result = recover.recover(TARGET, SOURCE, None, allow_cloud=False)
    stack = lab._load_state(TARGET)
    paths = StackPaths(TARGET)
    return {"result": result, "manifest": manifest, "destroyed": destroyed,
            "recovery_began": began,
            "remote": Remote(stack, paths), "primary": configured_primary(stack, paths),
            "media_host": media_host, "stray": stray}


def _bucket_source() -> bool:
    return labstore.store_of(lab._load_state(SOURCE)) is not None


def test_the_source_kept_nothing_or_only_its_backup_host(run):
    """With a bucket in another stack nothing of A survives, its backup host included."""
    source = lab._load_state(SOURCE)
    running = [h.name for h in source.hosts
               if Machine(source, h, StackPaths(SOURCE)).pid() is not None]
    assert running == ([] if _bucket_source() else source.groups()["backup"])
    assert set(run["destroyed"]) == {h.name for h in source.hosts} - set(running)


def test_the_report_says_where_the_copies_were_read(run):
    text = run["result"].report.read_text()
    if _bucket_source():
        assert "Read from the offsite bucket" in text and f"podium-{SOURCE}" in text
        assert "Read " in text and "offsite bucket podium-" in text  # the timeline's step
    else:
        assert "stood for the offsite store and was copied from" in text


def test_manifest_recorded_at_the_source_matches_after_recovery(run):
    result = run["result"]
    assert run["manifest"]["db"]["statuses"]["count"] > 0
    assert run["manifest"]["media"]["origin"]["count"] > 0
    assert result.figures["matched"], result.report


def test_the_sentinel_from_the_source_is_in_the_recovered_database(run):
    rows = run["remote"].psql(run["primary"], "SELECT count(*) FROM statuses WHERE text = "
                              "'recover sentinel: written before the manifest'")
    assert int(rows[0][0]) >= 1


def test_smoke_passes_with_a_token_made_at_the_source(run):
    result = run["result"]
    assert result.figures["smoke"], result.report
    assert "read sentinel" in result.report.read_text()


def test_rpo_is_zero_for_what_the_manifest_held(run):
    assert run["result"].figures["rpo"] == 0, run["result"].report


def test_recovery_passes_and_reports_rto_rpo_and_a_timeline(run):
    result = run["result"]
    assert result.figures["backup"], result.report
    assert result.ok, result.report
    text = result.report.read_text()
    assert "RTO (recovery began" in text and "RPO (newest post" in text
    assert "```mermaid" in text and "source lost" in text


def test_the_repository_went_into_the_target_s_bucket_when_it_keeps_repo1_there(run):
    """B with lab.repository: bucket (lab-provb; the cloud's shape, decision 0283): A's
    backups are in B's bucket at B's repository path, B's own repository is set aside in the
    bucket, no staging prefix is left, and B's repo1 is that bucket."""
    target = lab._load_state(TARGET)
    if labstore.repository(target) != "bucket" or not _bucket_source():
        pytest.skip(f"{TARGET} keeps repo1 on disk, or {SOURCE} has no bucket")
    remote, backup = run["remote"], target.groups()["backup"][0]
    bucket = labstore.bucket(target)
    top = remote.run(backup, "sudo rclone --config /etc/podium-offsite/rclone.conf --ca-cert "
                             f"/etc/pgbackrest/s3-ca.crt lsf offsite:{bucket}/").split()
    assert "var/" in top and any(n.startswith("before-recover-") for n in top), top
    assert not any(n.startswith("recover-from-") for n in top), top
    conf = remote.run(backup, "sudo cat /etc/pgbackrest/pgbackrest.conf")
    assert "repo1-type=s3" in conf and f"repo1-s3-bucket={bucket}" in conf
    assert "repo2-" not in conf
    info = json.loads(remote.run(backup, "sudo -u postgres pgbackrest --stanza=podium "
                                         "--output=json info"))[0]
    stops = [b["timestamp"]["stop"] for b in info["backup"]]
    # A's backups came along (made before the recovery), and the one on the new timeline.
    assert min(stops) < run["recovery_began"] <= max(stops), (stops, run["recovery_began"])


def test_pgbouncer_answers_the_first_client_on_every_postgres_host(run):
    """The first connection through each host's PgBouncer after the recovery succeeds with
    A's password: none answers with a login failure it kept from before the restore (the
    replica's did, until recover restarted it)."""
    target, remote = lab._load_state(TARGET), run["remote"]
    password = (StackPaths(TARGET).secrets / "postgres-app").read_text().strip()
    for host in target.groups()["postgres"]:
        out = remote.run(host, f"PGPASSWORD={password} psql -XAtq -h 127.0.0.1 -p 6432 "
                               "-U podium -d podium -c 'SELECT 41 + 1'", check=False)
        assert out.strip() == "42", (host, out)


def test_media_b_had_before_are_set_aside_not_served(run):
    remote, host = run["remote"], run["media_host"]
    name = run["stray"].removeprefix(MEDIA_ROOT + "/")
    assert remote.run(host, f"test -e {run['stray']} && echo present || echo gone") == "gone\n"
    kept = remote.run(host, "sudo sh -c 'cat /var/backups/podium-media-before-restore-*/"
                            f"{name}'")
    assert kept == "b-only\n"


def test_bringing_the_source_back_stops_until_its_repository_is_set_aside(run):
    """A's repository (its backup host's disk, or its bucket) still holds the lost
    database's backups. Converging a new A must not overwrite them: it stops with what to do,
    and converges once they are set aside. Last in this module: it rebuilds A (about 5 to 8
    minutes)."""
    up = [str(REPO / "podium"), "up", "--stack", SOURCE, "--no-test"]
    first = subprocess.run(up, capture_output=True, text=True, check=False, timeout=3600)
    assert first.returncode != 0
    said = first.stdout + first.stderr
    assert "holds the backups of another database" in said
    source = lab._load_state(SOURCE)
    backup = source.groups()["backup"][0]
    remote = Remote(source, StackPaths(SOURCE))
    if _bucket_source():
        # A new backup host has an empty disk; the bucket has the lost database's backups.
        assert f"In the bucket podium-{SOURCE}" in said and "rclone" in said
        bucket = f"podium-{SOURCE}"
        remote.run(backup, "sudo rclone --config /etc/podium-offsite/rclone.conf --ca-cert "
                           f"/etc/pgbackrest/s3-ca.crt move offsite:{bucket}/var/lib/pgbackrest "
                           f"offsite:{bucket}/lost-$(date +%s)/var/lib/pgbackrest", timeout=900)
    else:
        remote.run(backup, "sudo mv /var/lib/pgbackrest /var/lib/pgbackrest.lost-$(date +%s) && "
                           "sudo install -d -o postgres -g postgres -m 0750 /var/lib/pgbackrest")
    second = subprocess.run(up, capture_output=True, text=True, check=False, timeout=3600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
