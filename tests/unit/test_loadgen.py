"""kit/loadgen.py run the way ./podium bench proxy runs it on an edge host: the file alone
(standard library only) with a JSON spec on stdin, against a local server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from kit import loadgen


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def do_GET(self):
        _Recorder.seen.append((self.path, self.headers.get("Host"),
                               self.headers.get("Authorization")))
        status = 503 if self.path.endswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _run(spec: dict) -> loadgen.Result:
    answer = subprocess.run([sys.executable, "-I", loadgen.__file__], input=json.dumps(spec),
                            capture_output=True, text=True, timeout=60, check=True)
    return loadgen.from_json(answer.stdout)


def test_standalone_run_counts_answers_and_sends_each_request_a_new_url(server):
    result = _run({"address": "127.0.0.1", "port": server, "host": "podium.test",
                   "path": "/t?_={n}", "seconds": 0.5, "clients": 2,
                   "headers": {"Authorization": "Bearer x"}})
    assert result.ok > 0 and result.failed == 0
    assert result.ok == len(_Recorder.seen)
    paths = [path for path, _, _ in _Recorder.seen]
    assert len(set(paths)) == len(paths)
    assert {(host, auth) for _, host, auth in _Recorder.seen} == {("podium.test", "Bearer x")}
    assert len(result.latencies) == result.ok and result.rate > 0


def test_standalone_run_counts_non_2xx_as_failures(server):
    result = _run({"address": "127.0.0.1", "port": server, "host": "podium.test",
                   "path": "/fail", "seconds": 0.3, "clients": 1})
    assert result.ok == 0 and result.failed > 0
    assert set(result.reasons) == {"HTTP 503"}


def test_counted_paths_are_unique_across_threads():
    path_of = loadgen.counted("/p/{n}")
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.extend(path_of() for _ in range(500)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 2000
