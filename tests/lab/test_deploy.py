"""Rolling deploy under load, and reads from the replica where lag allows (issue 6).

- A changed release (a copy of app/ with one new file) is deployed with playbooks/deploy.yml
  while client threads send steady GETs through the proxy's frontend: every answer must be a
  2xx (each one is counted), and both app hosts must end on the new release. The original
  release is then deployed back the same way, under the same load.
- With replay paused on the replica (pg_wal_replay_pause()), a post made on the primary is
  missing on the replica, yet a reader who did not write gets it: reads moved to the primary
  once the replica's lag passed the allowed maximum. The writer itself gets its post at once
  (read-your-writes). After replay resumes, reads go back to the replica.

Requests go from the controller to the stack's proxy only (lab addresses), bounded in time.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import pytest

from kit import labapi, loadgen
from kit.ansible import run_playbook
from kit.paths import REPO
from kit.stack import role_ports

MARKER = "src/podium_app/_deploy_marker.py"
PG = "sudo -u postgres psql -d podium -XAtc"


def _hosts(stack, role):
    return [h for h in stack.hosts if role in h.roles]


@pytest.fixture(scope="module")
def proxy(stack):
    proxies, apps = _hosts(stack, "proxy"), _hosts(stack, "app")
    if not proxies or len(apps) < 2:
        pytest.skip("the stack needs a proxy host and two app hosts")
    port = next(p["port"] for p in role_ports()["proxy"] if p["proto"] == "tcp")
    return str(proxies[0].address), port


def _on(stack, paths, address: str, command: str) -> str:
    return labapi.on(stack, paths, address, command)


def _current_release(stack, paths, host) -> str:
    return _on(stack, paths, str(host.address), "readlink /opt/podium/app/current")


def _timeline_paths(publisher_id: str):
    """Uncached reads that need the database: timelines, a profile's posts, the instance."""
    choices = ["/api/v1/timelines/public?limit=20",
               f"/api/v1/accounts/{publisher_id}/statuses?limit=20",
               "/api/v1/instance"]
    counter = iter(range(10**9))
    return lambda: choices[next(counter) % len(choices)]


@pytest.fixture(scope="module")
def publisher(stack, paths, proxy):
    """A publisher with a token and a few posts (so the reads touch real rows)."""
    app = str(_hosts(stack, "app")[0].address)
    account = labapi.account(stack, paths, proxy, app, "dep", publisher=True)
    for number in range(5):
        _api(stack, proxy, "POST", "/api/v1/statuses", account["token"],
             {"status": f"post {number}"})
    return account


def _api(stack, proxy, method, path, token=None, body=None, headers=None, status=200):
    return labapi.call(stack, proxy, method, path, token, body, headers, status)


def _changed_release(tmp_path: Path) -> tuple[Path, str]:
    """A copy of app/ with one more file: a different release id, the same behaviour."""
    copy = tmp_path / "app"
    shutil.copytree(REPO / "app", copy, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".venv"))
    token = secrets.token_hex(8)
    (copy / MARKER).write_text(f'"""Written by tests/lab/test_deploy.py."""\nRELEASE = "{token}"\n')
    return copy, token


def _deploy_under_load(stack, paths, proxy, publisher, source: Path):
    load = loadgen.Load(proxy[0], proxy[1], stack.domain, _timeline_paths(publisher["id"]),
                        clients=4, pause=0.05)
    with load:
        time.sleep(3)  # steady load before the first host leaves
        started = time.monotonic()
        run_playbook(paths, "playbooks/deploy.yml", "deploy",
                     ["-e", f"app_source_dir={source}"], echo=False)
        took = time.monotonic() - started
        time.sleep(3)  # and after the last host is back
    result = load.result
    print(f"\ndeploy of {source}: {took:.0f}s; load: {result.summary()}")
    return result, took


@pytest.fixture(scope="module")
def releases(stack, paths):
    """Each app host's release before the deploy tests (the repository's)."""
    return {h.name: _current_release(stack, paths, h) for h in _hosts(stack, "app")}


def test_rolling_deploy_under_load_fails_no_request(stack, paths, proxy, publisher, releases,
                                                    tmp_path):
    apps = _hosts(stack, "app")
    source, token = _changed_release(tmp_path)
    result, _ = _deploy_under_load(stack, paths, proxy, publisher, source)
    after = {h.name: _current_release(stack, paths, h) for h in apps}
    markers = {h.name: _on(stack, paths, str(h.address),
                           "cat /opt/podium/app/current/venv/lib/python3*/site-packages/"
                           "podium_app/_deploy_marker.py") for h in apps}
    assert result.failed == 0, result.summary()
    assert result.ok >= 200, f"too little load to prove anything: {result.summary()}"
    assert len(set(after.values())) == 1, after
    assert set(after.values()).isdisjoint(releases.values()), (releases, after)
    assert all(token in text for text in markers.values()), markers


def test_rolling_back_to_the_repositorys_release_fails_no_request(stack, paths, proxy,
                                                                 publisher, releases):
    """Also what puts the stack back on the repository's app after the test above."""
    result, _ = _deploy_under_load(stack, paths, proxy, publisher, REPO / "app")
    assert result.failed == 0, result.summary()
    assert {h.name: _current_release(stack, paths, h) for h in _hosts(stack, "app")} == releases


# --- reads from the replica ---------------------------------------------------------------

@pytest.fixture
def replica(stack, paths):
    dbs = _hosts(stack, "postgres")
    if len(dbs) < 2:
        pytest.skip("the stack has no replica")
    primary, standby = str(dbs[0].address), str(dbs[1].address)
    yield primary, standby
    _on(stack, paths, standby, f"{PG} 'SELECT pg_wal_replay_resume()'")


def _visible_on(stack, paths, address, status_id: str) -> bool:
    # The API's id is the row's UUID (32 hex digits in the feed; the API shows it as text).
    out = _on(stack, paths, address,
              f"{PG} \"SELECT count(*) FROM statuses WHERE id::text = '{status_id}'\"")
    return out == "1"


def _replica_commits(stack, paths, standby) -> int:
    return int(_on(stack, paths, standby, f"{PG} \"SELECT xact_commit + xact_rollback FROM "
                                          "pg_stat_database WHERE datname = 'podium'\""))


def test_reads_go_to_the_replica_while_it_keeps_up(stack, paths, proxy, publisher, replica):
    _, standby = replica
    before = _replica_commits(stack, paths, standby)
    for _ in range(40):
        _api(stack, proxy, "GET", f"/api/v1/accounts/{publisher['id']}/statuses",
             headers={"X-Forwarded-For": "192.0.2.10"})
    # Each read is a transaction on the replica (plus each process's lag check, once a second).
    assert _replica_commits(stack, paths, standby) - before >= 40


def test_reads_move_to_the_primary_while_replay_is_paused(stack, paths, proxy, publisher,
                                                          replica):
    primary, standby = replica
    _on(stack, paths, standby, f"{PG} 'SELECT pg_wal_replay_pause()'")
    # The writer: its own post is there at once (it reads from the primary for a while).
    writer = {"X-Forwarded-For": "192.0.2.20"}
    post = _api(stack, proxy, "POST", "/api/v1/statuses", publisher["token"],
                {"status": "while the replica is paused"}, headers=writer)
    mine = _api(stack, proxy, "GET", f"/api/v1/statuses/{post['id']}", publisher["token"],
                headers=writer)
    assert mine["id"] == post["id"]
    assert _visible_on(stack, paths, primary, _uuid(post["id"]))
    assert not _visible_on(stack, paths, standby, _uuid(post["id"]))
    # Another reader, once the lag is over the allowed maximum (2 s) plus a check (1 s):
    # the replica does not have the post, so an answer can only come from the primary.
    time.sleep(4)
    other = {"X-Forwarded-For": "192.0.2.30"}
    for _ in range(6):  # every process of both app hosts (round robin)
        seen = _api(stack, proxy, "GET", f"/api/v1/statuses/{post['id']}", headers=other)
        assert seen["id"] == post["id"]
    _on(stack, paths, standby, f"{PG} 'SELECT pg_wal_replay_resume()'")
    time.sleep(3)
    assert _visible_on(stack, paths, standby, _uuid(post["id"]))
    before = _replica_commits(stack, paths, standby)
    for _ in range(20):
        _api(stack, proxy, "GET", f"/api/v1/statuses/{post['id']}", headers=other)
    assert _replica_commits(stack, paths, standby) - before >= 20


def _uuid(api_id: str) -> str:
    """The row id (UUID text) of an API id, through the app's own codec."""
    from podium_app import ids  # the app package is installed in the kit's venv for tests

    return str(ids.parse(api_id))

