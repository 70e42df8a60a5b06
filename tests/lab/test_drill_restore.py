"""The restore drill to a chosen time (`./podium drill restore --to TIME`, issue 9) end to end
on the lab stack: posts are written before and after TIME, the database and media hosts are
destroyed and rebuilt, the database comes back to TIME. Posts from before TIME are back, posts
from after it are absent and the report lists them by ID (lost by design of --to), the
manifest (rows created up to TIME) matches, and the platform serves.

It destroys hosts and takes about 8-10 minutes on the shared 2-core machine (8m10s measured:
docs/perf.md, "Restore to a chosen time"), over the ~6 minutes the CI drill tier allows: it
runs only when PODIUM_SLOW_DRILLS=1 is set, e.g.
`PODIUM_SLOW_DRILLS=1 PODIUM_STACK=lab-backup .venv/bin/pytest tests/lab/test_drill_restore.py`.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from kit import drill
from kit.drillkit import STANZA, Api, Remote, configured_primary, present_ids, publisher

pytestmark = [
    pytest.mark.lab,
    pytest.mark.drill,
    pytest.mark.skipif(
        os.environ.get("PODIUM_SLOW_DRILLS") != "1",
        reason="the --to restore drill destroys the database and media hosts and takes about "
        "10 minutes (docs/perf.md), over the CI drill tier's budget: set PODIUM_SLOW_DRILLS=1",
    ),
]


@pytest.fixture(scope="module")
def run(stack, paths):
    groups = stack.groups()
    if not all(groups.get(role) for role in ("postgres", "backup", "app", "proxy")):
        pytest.skip("the stack lacks a postgres, backup, app or proxy host")
    remote = Remote(stack, paths)
    api = Api(str(stack.host(groups["proxy"][0]).address), stack.domain)
    _, token = publisher(remote, groups["app"][0], stack.domain, "pitr")
    before = [api.post(token, f"written before the target, {i}") for i in range(5)]
    time.sleep(2)  # a quiet gap on each side: no transaction straddles the target
    target = dt.datetime.now(dt.UTC)
    time.sleep(2)
    after = [api.post(token, f"written after the target, {i}") for i in range(5)]
    result = drill.restore(stack.name, target.isoformat(), allow_cloud=False, write_seconds=10)
    primary = configured_primary(stack, paths)
    present = present_ids(remote, primary, "statuses", before + after)
    return {"result": result, "before": before, "after": after, "present": present,
            "remote": remote, "primary": primary, "backup": groups["backup"][0]}


def test_posts_written_before_the_target_are_back(run):
    assert set(run["before"]) <= run["present"], run["result"].report


def test_posts_written_after_the_target_are_absent(run):
    assert not set(run["after"]) & run["present"], run["result"].report
    assert run["result"].figures["overshoot"] == []


def test_posts_after_the_target_are_listed_by_id_in_the_report(run):
    figures, text = run["result"].figures, run["result"].report.read_text()
    assert set(run["after"]) <= set(figures["after_target"])
    assert "lost by design of --to" in text
    for status_id in run["after"]:
        assert f"`{status_id}`" in text


def test_manifest_up_to_the_target_matches_and_the_platform_serves(run):
    figures = run["result"].figures
    assert figures["matched"], run["result"].report
    assert figures["smoke"], run["result"].report
    assert run["result"].ok


def test_newest_backup_is_on_the_restored_timeline(run):
    remote, backup = run["remote"], run["backup"]
    name, = remote.psql(run["primary"], "SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
    newest = remote.run(backup, f"sudo -u postgres pgbackrest --stanza={STANZA} --output=json "
                                "info | python3 -c 'import json,sys; "
                                "print(json.load(sys.stdin)[0][\"backup\"][-1][\"archive\"]"
                                "[\"start\"])'").strip()
    assert newest[:8] == name[:8], (newest, name)
