"""./podium bench resources: parsing of /proc figures."""

from __future__ import annotations

import os

from kit.bench_resources import TICKS, Usage, cpu_percent, cpu_ticks, namespace_pids, pss_bytes

STAT = ("1234 (postgres: 17/main: walreceiver) S 1 1234 1234 0 -1 4194560 500 0 0 0 "
        "170 30 0 0 20 0 1 0 100 1000 10 18446744073709551615")


def test_cpu_ticks_reads_utime_and_stime_past_a_command_with_spaces_and_parens():
    assert cpu_ticks(STAT) == 200


def test_pss_is_read_in_bytes():
    rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 2048 kB\nPss: 1024 kB\n"
    assert pss_bytes(rollup) == 1024 * 1024


def test_cpu_counts_only_what_each_process_used_within_the_window():
    before = Usage(2, 0, {1: 100, 2: 50}, [])
    after = Usage(2, 0, {1: 100 + TICKS, 3: TICKS}, [])  # 2 ended, 3 started
    assert cpu_percent(before, after, seconds=2) == 100.0


def test_this_process_is_in_its_own_pid_namespace():
    assert os.getpid() in namespace_pids(os.getpid())
