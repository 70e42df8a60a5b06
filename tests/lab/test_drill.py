"""The failover drill end to end on the lab stack (kit/drill.py, issue 9): a steady writer
posts through the proxy while the primary's host stops; the replica is promoted and the app's
next connections find it with no repointing (decision 0160); the old primary comes back fenced
and is rebuilt as a replica.

Slow (about 3 minutes measured on the shared 2-core machine) and it changes which host is the
primary (recorded in .podium/<stack>/group_vars/all/): select or skip it with -m drill or
-m "not drill".
The restore drill (./podium drill restore) takes 10-15 minutes and is run by hand; its reports
are in docs/drills/.
"""

from __future__ import annotations

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


def test_writes_resume_within_the_target_window(result):
    # Issue 9's target: write-unavailability under 30 s (median 4.8 s in the lab: docs/perf.md).
    assert result.figures["window"] < 30, result.report


def test_old_primary_streams_from_the_new_one(result):
    assert result.figures["streaming"] >= 1


def test_report_is_saved_with_a_timeline(result):
    text = result.report.read_text()
    assert "```mermaid" in text and "gantt" in text
    assert "write-unavailability" in text
