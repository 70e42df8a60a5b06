"""./podium drill: what it refuses before touching anything, and the report's chart."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kit import cli, drill
from kit.drillkit import (
    Timeline,
    backup_new_timeline,
    check_drill_stack,
    parse_target,
    pgbackrest_time,
    timeline_chart,
    write_outage,
)
from kit.errors import PodiumError
from kit.stack import load_stack

NOW = dt.datetime(2026, 11, 21, 17, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T16:30:00Z", dt.datetime(2026, 11, 21, 16, 30, tzinfo=dt.UTC)),
    ("2026-11-21 17:30:00+01:00", dt.datetime(2026, 11, 21, 16, 30, tzinfo=dt.UTC)),
    ("2026-11-21T16:30:00.250+00:00", dt.datetime(2026, 11, 21, 16, 30, 0, 250000,
                                                  tzinfo=dt.UTC)),
    ("2026-11-21T16:30:00.250999+00:00", dt.datetime(2026, 11, 21, 16, 30, 0, 250000,
                                                     tzinfo=dt.UTC)),
])
def test_target_times_with_a_zone_are_read_in_utc(text, expected):
    assert parse_target(text, NOW) == expected


@pytest.mark.parametrize("text, says", [
    ("yesterday", "is not a time"),
    ("2026-13-01T00:00:00Z", "is not a time"),
    ("2026-11-21T16:30:00", "has no time zone"),
    ("2026-11-21T17:00:01Z", "is in the future"),
])
def test_bad_target_times_are_refused_with_the_reason(text, says):
    with pytest.raises(PodiumError, match=says) as err:
        parse_target(text, NOW)
    assert "--to" in err.value.message


def test_cloud_stack_is_refused_without_the_flag():
    with pytest.raises(PodiumError, match="hcloud stack") as err:
        check_drill_stack(load_stack("hetzner"), allow_cloud=False, needs={})
    assert "--allow-cloud" in err.value.hint


def test_cloud_stack_with_the_flag_says_it_is_not_implemented():
    with pytest.raises(PodiumError, match="not implemented"):
        check_drill_stack(load_stack("hetzner"), allow_cloud=True, needs={})


def test_stack_lacking_a_role_is_refused_by_name():
    with pytest.raises(PodiumError, match="2 postgres hosts"):
        check_drill_stack(load_stack("local-mini"), allow_cloud=False, needs={"postgres": 2})


def test_cli_refuses_a_bad_target_before_loading_the_stack(capsys):
    # The stack does not exist: the --to check must come first and be the error shown.
    code = cli.main(["drill", "restore", "--stack", "no-such-stack", "--to", "soon"])
    assert code == 2
    assert "--to 'soon' is not a time" in capsys.readouterr().err


def test_cli_refuses_to_for_failover(capsys):
    assert cli.main(["drill", "failover", "--stack", "local", "--to", "2026-01-01T00:00Z"]) == 2
    assert "--to belongs to drill restore" in capsys.readouterr().err


def test_timeline_chart_has_a_gantt_and_a_text_bar_per_step():
    tl = Timeline(2)
    tl.started = 1000.0
    tl.phases = [("Destroy: db1", 1000.0, 1010.0), ("Restore", 1010.0, 1100.0)]
    chart = timeline_chart(tl, {"serving again": 1100.0})
    text = "\n".join(chart)
    assert "gantt" in text and "dateFormat X" in text
    assert "Destroy  db1 :p0, 0, 10" in text  # ':' would end mermaid's task name
    bars = [line for line in chart if line.startswith("Restore")]
    assert bars and "#" in bars[0] and "1m30s" in bars[0]


@pytest.mark.parametrize(("acks", "outage"), [
    # One pause: from the last write before it to the first after it.
    ([1.0, 2.0, 3.0, 8.0, 9.0], (3.0, 8.0)),
    # A write slips through between two pauses: the outage spans both.
    ([1.0, 2.0, 3.0, 7.0, 7.2, 15.0, 15.5], (3.0, 15.0)),
    # Writes the stopping primary still acknowledged come before the outage.
    ([1.0, 2.0, 2.4, 2.6, 9.0, 9.2], (2.6, 9.0)),
    # No pause over 2 s: the longest gap ending after the stop.
    ([1.0, 2.0, 3.5, 4.0], (2.0, 3.5)),
    # Nothing acknowledged after the stop.
    ([1.0, 2.0], None),
])
def test_write_outage_spans_every_pause_around_the_stop(acks, outage):
    assert write_outage(acks, stopped=2.1) == outage


class _FakeRemote:
    """psql answers the primary's current WAL file; run answers pgBackRest's info and
    records every command."""

    def __init__(self, walfile: str, backup_starts: list[str]):
        self.walfile, self.starts, self.commands = walfile, backup_starts, []
        self.info = None  # pgBackRest's info entry, when a test gives the whole of it

    def psql(self, name, sql):
        return [[self.walfile]]

    def run(self, name, command, timeout=300):
        self.commands.append(command)
        if self.info is not None:
            return json.dumps([self.info])
        return json.dumps([{"backup": [{"archive": {"start": s}} for s in self.starts]}])


def test_a_backup_is_taken_when_the_newest_is_on_an_older_timeline():
    remote = _FakeRemote("0000000B000000000000002A", ["000000010000000000000003",
                                                      "0000000A0000000000000020"])
    note = backup_new_timeline(remote, "backup1", "db2", "after the promotion")
    assert any("--type=incr backup" in c for c in remote.commands)
    assert "timeline 11" in note and "was on repo1: timeline 10" in note


def test_each_repository_behind_gets_its_own_backup():
    # repo2 (the bucket) missed the new timeline; repo1 has it already.
    remote = _FakeRemote("0000000B000000000000002A", [])
    remote.info = {"repo": [{"key": 1}, {"key": 2}], "backup": [
        {"archive": {"start": "0000000A0000000000000020"}, "database": {"repo-key": 2}},
        {"archive": {"start": "0000000B0000000000000029"}, "database": {"repo-key": 1}}]}
    note = backup_new_timeline(remote, "backup1", "db2", "after the promotion")
    backups = [c for c in remote.commands if "--type=incr backup" in c]
    assert len(backups) == 1 and "--repo=2 " in backups[0]
    assert "repo2: timeline 10" in note and "repo1" not in note


def test_a_repository_without_a_backup_gets_one():
    remote = _FakeRemote("0000000B000000000000002A", [])
    remote.info = {"repo": [{"key": 1}, {"key": 2}], "backup": [
        {"archive": {"start": "0000000B0000000000000029"}, "database": {"repo-key": 1}}]}
    backup_new_timeline(remote, "backup1", "db2", "after the promotion")
    assert [c for c in remote.commands if "--type=incr backup" in c] == [
        "sudo -u postgres pgbackrest --stanza=podium --repo=2 --type=incr backup"]


def test_no_backup_is_taken_when_the_newest_is_on_the_current_timeline():
    remote = _FakeRemote("0000000B000000000000002A", ["0000000B0000000000000029"])
    note = backup_new_timeline(remote, "backup1", "db2", "after the promotion")
    assert not any("backup" in c and "info" not in c for c in remote.commands)
    assert "already" in note


def test_posts_after_the_target_are_listed_by_id_or_flagged_when_present():
    target = dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.UTC)
    rows = [("111", "2026-11-21 23:00:01+00"), ("222", "2026-11-21 23:00:02+00")]
    text = "\n".join(drill.after_target_section(target, rows, []))
    assert "`111`" in text and "`222`" in text and "absent after the restore" in text
    flagged = "\n".join(drill.after_target_section(target, rows, ["222"]))
    assert "went past the" in flagged and "222" in flagged


def test_pgbackrest_target_has_no_t_and_milliseconds_in_utc():
    # pgBackRest 2.55 refuses '2026-11-22T00:13:26.997548+00:00' (error 029, found in the lab).
    when = dt.datetime(2026, 11, 22, 1, 13, 26, 997548, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert pgbackrest_time(when) == "2026-11-22 00:13:26.997+00"
