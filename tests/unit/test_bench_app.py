"""kit/bench_app.py's own accounting and set-up: the load generator's CPU apart from the
app's, the web workers uvicorn replaced during a round, waiting for every worker before the
load, and --pin's split of the cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kit import bench_app
from kit.errors import PodiumError

REPO = Path(__file__).resolve().parents[2]

BURN = ("import time\nend = time.process_time() + {seconds}\n"
        "while time.process_time() < end: pass\nprint('done')")


@pytest.mark.parametrize("seconds", [0.1, 0.4])
def test_the_load_generators_cpu_is_measured_apart(seconds):
    out, cpu = bench_app._run_with_cpu([sys.executable, "-c", BURN.format(seconds=seconds)])
    assert out.strip() == "done"
    assert seconds <= cpu < seconds + 0.5


def test_a_failing_load_generator_stops_with_its_output():
    with pytest.raises(PodiumError, match=r"exit 3\).*no server"):
        bench_app._run_with_cpu([sys.executable, "-c",
                                 "import sys; print('no server'); sys.exit(3)"])


def test_worker_restarts_are_counted_from_the_rounds_part_of_the_log(tmp_path):
    log = tmp_path / "bench.log"
    log.write_bytes(b"INFO: Child process [10] died\n")
    start = log.stat().st_size
    with log.open("ab") as handle:
        handle.write(b"INFO: Started server process [11]\nINFO: Child process [11] died\n"
                     b"INFO: Child process [12] died\nINFO: Waiting for child process [13]\n")
    assert bench_app._worker_restarts(log, start) == 2
    assert bench_app._worker_restarts(log, 0) == 3


def test_baseline_settings_are_podium_settings_for_a_comparison():
    assert bench_app.baseline_env(["PODIUM_TOKEN_CACHE_ENTRIES=0", "PODIUM_X=a=b"],
                                  "app/src") == {"PODIUM_TOKEN_CACHE_ENTRIES": "0",
                                                 "PODIUM_X": "a=b"}
    assert bench_app.baseline_env([], None) == {}


@pytest.mark.parametrize(("items", "compare_with", "message"), [
    (["PODIUM_TOKEN_CACHE_ENTRIES=0"], None, "give --compare-with SRC"),
    (["PODIUM_TOKEN_CACHE_ENTRIES"], "app/src", "'PODIUM_TOKEN_CACHE_ENTRIES': give"),
    (["PATH=/tmp"], "app/src", "'PATH=/tmp': give PODIUM_SETTING=VALUE"),
])
def test_a_bad_baseline_setting_is_refused_with_what_to_give(items, compare_with, message):
    with pytest.raises(PodiumError, match=message):
        bench_app.baseline_env(items, compare_with)


FAKE_SERVE = '''#!{python}
import http.server, sys, threading, time
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", {port}), Answer)
threading.Thread(target=server.serve_forever, daemon=True).start()
# The app answers as soon as one worker is up; the second takes a while longer.
print("INFO:     Application startup complete.", flush=True)
time.sleep(1.5)
print("INFO:     Application startup complete.", flush=True)
time.sleep(60)
'''


def test_serve_waits_for_every_worker_not_only_the_first_answer(tmp_path):
    from kit.appservices import free_port

    port = free_port()
    fake = tmp_path / "python"
    fake.write_text(FAKE_SERVE.format(python=sys.executable, port=port))
    fake.chmod(0o755)
    procs: list = []
    with (tmp_path / "serve.log").open("w") as log:
        log.write("INFO:     Application startup complete.\n")  # an earlier round's line
        try:
            bench_app._serve(str(fake), {"PODIUM_BIND_PORT": str(port)}, 2, log, procs)
            assert bench_app._workers_started(tmp_path / "serve.log", 0) == 3
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


def test_serve_reports_a_server_that_exits(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable}\nimport sys; print('bad settings'); sys.exit(3)\n")
    fake.chmod(0o755)
    with (tmp_path / "serve.log").open("w") as log, \
            pytest.raises(PodiumError, match=r"exited \(3\)"):
        bench_app._serve(str(fake), {"PODIUM_BIND_PORT": "1"}, 2, log, [])


def test_pinning_needs_a_core_left_for_the_services(monkeypatch):
    monkeypatch.setattr(bench_app.os, "sched_getaffinity", lambda pid: {0, 1})
    with pytest.raises(PodiumError, match=r"--pin: 2 web worker\(s\) need at least 3 cores"):
        bench_app.pin_cores(2)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_pinning_splits_the_cores_between_workers_and_the_rest():
    # In a child process: pinning changes the affinity of the process that asks.
    import subprocess

    cores = sorted(os.sched_getaffinity(0))
    done = subprocess.run(
        [sys.executable, "-c", "import os; from kit import bench_app; "
         "print(bench_app.pin_cores(1)); print(sorted(os.sched_getaffinity(0)))"],
        capture_output=True, text=True, check=True, cwd=REPO)
    lines = done.stdout.splitlines()
    assert lines[-2] == str(("taskset", "--cpu-list", str(cores[0])))
    assert lines[-1] == str(cores[1:])
