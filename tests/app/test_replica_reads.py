"""Reads from the replica where lag allows, read-your-writes, fallbacks (podium_app/db.py,
podium_app/readrouting.py).

SIMULATED REPLICA: a second database (`podium_replica`) on the harness's PostgreSQL, with the
schema and no rows, read-only by default (as a hot standby refuses writes), and a stand-in
`podium_ops.replica_lag_seconds()` returning what the test puts in a table. A post made
through the app exists only in the primary: an answer of 404 for it shows the read went to
the "replica", 200 that it went to the primary. The real replica (streaming, replay paused)
is exercised by tests/lab/test_deploy.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from podium_app import migrate
from podium_app.app import create_app
from podium_app.db import ReplicaMonitor, make_engine
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

CHECK = 0.1  # seconds between lag checks in these tests
STICKY = 1.0


def _run(statements: list[str], url: str, autocommit: bool = False) -> None:
    async def go() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT" if autocommit else None)
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(go())


@pytest.fixture(scope="module")
def replica_url(base_settings) -> str:
    url = base_settings.database_url.rsplit("/", 1)[0] + "/podium_replica"
    _run(["DROP DATABASE IF EXISTS podium_replica", "CREATE DATABASE podium_replica"],
         base_settings.database_url, autocommit=True)
    migrate.upgrade(base_settings.model_copy(update={"database_url": url}))
    _run(["CREATE SCHEMA podium_ops",
          "CREATE TABLE podium_ops.lag (seconds double precision)",
          "INSERT INTO podium_ops.lag VALUES (0)",
          "CREATE FUNCTION podium_ops.replica_lag_seconds() RETURNS double precision "
          "LANGUAGE sql AS 'SELECT seconds FROM podium_ops.lag'",
          "ALTER DATABASE podium_replica SET default_transaction_read_only = on"], url)
    return url


def set_lag(url: str, seconds: float | None) -> None:
    value = "NULL" if seconds is None else str(seconds)
    _run(["SET TRANSACTION READ WRITE", f"UPDATE podium_ops.lag SET seconds = {value}"], url)
    time.sleep(CHECK * 4)  # the app's monitor has seen it


@pytest.fixture(scope="module")
def replica_app(base_settings, replica_url) -> Iterator[TestClient]:
    settings = base_settings.model_copy(update={
        "database_read_url": replica_url, "database_read_max_lag": 2.0,
        "database_read_check_interval": CHECK, "database_read_sticky_seconds": STICKY})
    # X-Forwarded-For sets the client's address, as behind the lab's proxy.
    app = ProxyHeadersMiddleware(create_app(settings), trusted_hosts="*")
    with TestClient(app) as client:
        yield client


@pytest.fixture
def reads(replica_app, replica_url) -> TestClient:
    set_lag(replica_url, 0)
    return replica_app


def _from(address: str, headers: dict | None = None) -> dict:
    return {"X-Forwarded-For": address, **(headers or {})}


def _posted(client, user, address="198.51.100.1") -> str:
    answer = client.post("/api/v1/statuses", headers=_from(address, user.headers),
                         json={"status": "hello"})
    assert answer.status_code == 200, answer.text  # a write never goes to the replica
    time.sleep(STICKY + 0.2)  # the writer's read-your-writes window is over
    return answer.json()["id"]


def test_reads_go_to_the_replica_while_its_lag_is_within_the_limit(reads, make_user):
    status_id = _posted(reads, make_user("alice", publisher=True))
    # The simulated replica has no rows: 404 means the read was served there.
    assert reads.get(f"/api/v1/statuses/{status_id}", headers=_from("198.51.100.2")
                     ).status_code == 404


@pytest.mark.parametrize("lag", [5.0, None], ids=["lag-over-the-limit", "not-streaming"])
def test_reads_go_to_the_primary_when_the_replica_lags_or_does_not_stream(reads, replica_url,
                                                                          make_user, lag):
    status_id = _posted(reads, make_user("alice", publisher=True))
    set_lag(replica_url, lag)
    answer = reads.get(f"/api/v1/statuses/{status_id}", headers=_from("198.51.100.2"))
    assert answer.status_code == 200
    set_lag(replica_url, 0)
    assert reads.get(f"/api/v1/statuses/{status_id}", headers=_from("198.51.100.2")
                     ).status_code == 404


def test_the_writer_reads_its_own_write_at_once(reads, make_user):
    alice = make_user("alice", publisher=True)
    answer = reads.post("/api/v1/statuses", headers=_from("198.51.100.3", alice.headers),
                        json={"status": "mine"})
    status_id = answer.json()["id"]
    # Same token from another address (a phone changing networks): still the primary.
    assert reads.get(f"/api/v1/statuses/{status_id}", headers=_from("198.51.100.9",
                                                                    alice.headers)
                     ).status_code == 200
    # Same address without the token (the sign-up or login that made a new one): too.
    assert reads.get(f"/api/v1/statuses/{status_id}", headers=_from("198.51.100.3")
                     ).status_code == 200
    # Someone else: the replica (which has not got it).
    assert reads.get(f"/api/v1/statuses/{status_id}", headers=_from("198.51.100.4")
                     ).status_code == 404


def test_endpoints_not_listed_as_read_only_use_the_primary(reads, make_user):
    alice = make_user("alice")
    # The account exists only in the primary: a replica read would answer 401.
    answer = reads.get("/api/v1/accounts/verify_credentials",
                       headers=_from("198.51.100.5", alice.headers))
    assert answer.status_code == 200


def test_an_unreachable_replica_is_not_used(base_settings):
    async def check() -> tuple[float | None, bool]:
        engine = make_engine("postgresql+asyncpg://podium@127.0.0.1:9/podium", base_settings,
                             pgbouncer=False)
        monitor = ReplicaMonitor(engine, max_lag=2.0, interval=0.5)
        lag = await monitor.check()
        await engine.dispose()
        return lag, monitor.usable

    assert asyncio.run(check()) == (None, False)


def test_a_stale_lag_answer_stops_replica_reads(base_settings, replica_url):
    now = [100.0]

    async def check() -> tuple[bool, bool]:
        engine = make_engine(replica_url, base_settings, pgbouncer=False)
        monitor = ReplicaMonitor(engine, max_lag=2.0, interval=1.0, clock=lambda: now[0])
        await monitor.check()
        fresh = monitor.usable
        now[0] += 3.5  # no good answer for more than three intervals
        await engine.dispose()
        return fresh, monitor.usable

    set_lag(replica_url, 0)
    assert asyncio.run(check()) == (True, False)


@pytest.mark.parametrize(("current", "ready"), [
    (migrate.head_revision(), True),
    ("9999_a_later_release", True),  # a rolling deploy migrated ahead of this release
    ("0001", False),                 # behind what this release needs
    (None, False),
])
def test_readiness_accepts_the_schema_of_a_later_release(current, ready):
    assert (migrate.schema_state(current) == "ok") is ready
