"""The failover drill end to end on the lab stack (kit/drill.py, issue 9): a steady writer
posts through the proxy while the primary's host stops; the replica is promoted and the app's
next connections find it with no repointing (decision 0160); the old primary comes back fenced
and is rebuilt as a replica.

Slow (about 3 minutes measured on the shared 2-core machine) and it changes which host is the
primary (recorded in .podium/<stack>/group_vars/all/): select or skip it with -m drill or
-m "not drill".
The restore drill is in tests/lab/test_drill_restore.py (the latest-point restore runs in the
same drill tier, after this file; the --to restore only with PODIUM_SLOW_DRILLS=1).

The whole-host disaster variant (`--crash`: SIGKILL to the primary's guest) is a second
failover of 2.5-4.5 minutes: it runs only when PODIUM_SLOW_DRILLS=1, so the CI drill tier
stays one failover long (select it alone with -k crash).
"""

from __future__ import annotations

import os

import pytest

from kit import drill

pytestmark = [pytest.mark.lab, pytest.mark.drill]


@pytest.fixture(scope="module")
def result(stack):
    groups = stack.groups()
    if len(groups.get("postgres", [])) < 2 or not groups.get("app") or not groups.get("proxy"):
        pytest.skip("the stack lacks two postgres hosts, an app host or a proxy host")
    return drill.failover(stack.name, allow_cloud=False, warmup=10)


def test_failover_loses_no_acknowledged_write(result):
    assert result.figures["acked"] > 0
    assert result.figures["lost"] == []


def test_failover_keeps_the_manifest_on_both_hosts(result):
    # Counts and checksums of accounts, posts, follows and media rows made before the
    # disaster: the same on the promoted primary and on the old primary rebuilt as replica.
    assert result.figures["matched"], result.report
    assert "## Manifest" in result.report.read_text()


def test_writes_resume_within_the_target_window(result):
    # Issue 9's target: write-unavailability under 30 s (median 4.8 s in the lab: docs/perf.md).
    assert result.figures["window"] < 30, result.report


def test_old_primary_streams_from_the_new_one(result):
    assert result.figures["streaming"] >= 1


def test_report_is_saved_with_a_timeline(result):
    text = result.report.read_text()
    assert "```mermaid" in text and "gantt" in text
    assert "write-unavailability" in text


@pytest.fixture(scope="module")
def crash_result(stack):
    if os.environ.get("PODIUM_SLOW_DRILLS") != "1":
        pytest.skip("a second failover (the primary's host killed, 2.5-4.5 minutes) runs "
                    "only with PODIUM_SLOW_DRILLS=1: the CI drill tier has one failover")
    groups = stack.groups()
    if len(groups.get("postgres", [])) < 2 or not groups.get("app") or not groups.get("proxy"):
        pytest.skip("the stack lacks two postgres hosts, an app host or a proxy host")
    return drill.failover(stack.name, allow_cloud=False, warmup=10, crash=True)


def test_crash_failover_resumes_writes_within_the_target_window(crash_result):
    assert crash_result.figures["window"] < 30, crash_result.report
    assert crash_result.figures["streaming"] >= 1
    assert "SIGKILL" in crash_result.report.read_text()


def test_crash_failover_reports_every_lost_acknowledged_write(crash_result):
    # Replication is asynchronous (decision 0020): a crash may lose what the replica had not
    # received. Whatever was lost must be in the report by ID; in the lab none was so far.
    text = crash_result.report.read_text()
    for status_id in crash_result.figures["lost"]:
        assert f"`{status_id}`" in text
    assert crash_result.figures["acked"] > 0


def test_crash_failover_leaves_a_backup_on_the_new_timeline(crash_result, stack):
    if not stack.groups().get("backup"):
        pytest.skip("the stack has no backup host")
    text = crash_result.report.read_text()
    assert "backup on the new timeline" in text
    assert "not taken" not in text
