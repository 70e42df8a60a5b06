"""Database URLs with several hosts (podium_app/db.py HostList, decision 0160): writes go to
the host that accepts them, reads prefer a hot standby, a silent host costs only its own
timeout, and the host chosen last is tried first.

SIMULATED HOSTS: the harness has one PostgreSQL. The names "primary" and "standby" are
mapped by ``connect_fn`` onto its app database and onto a database set read-only by default
(as a hot standby's sessions are); "silent" is a socket that accepts and never answers (a
server whose address drops packets), "gone" a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import asyncpg
import pytest
from podium_app import migrate
from podium_app.db import HostList, make_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url
from test_replica_reads import _run


@pytest.fixture(scope="module")
def silent() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def hosts(base_settings, silent) -> dict[str, dict]:
    url = make_url(base_settings.database_url)
    _run(["DROP DATABASE IF EXISTS podium_standby", "CREATE DATABASE podium_standby",
          "ALTER DATABASE podium_standby SET default_transaction_read_only = on"],
         base_settings.database_url, autocommit=True)
    real = {"host": url.host, "port": url.port or 5432, "user": url.username,
            "password": url.password}
    return {"primary": {**real, "database": url.database},
            "standby": {**real, "database": "podium_standby"},
            "silent": {"host": "127.0.0.1", "port": silent},
            "gone": {"host": "127.0.0.1", "port": 9}}


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def host_list(hosts, calls) -> HostList:
    async def connect_fn(*, host: str, port: int, timeout: float, **options):
        calls.append(host)
        return await asyncpg.connect(**{**options, **hosts[host]}, timeout=timeout)

    return HostList(timeout=0.5, connect_fn=connect_fn)


async def _database(hosts: HostList, names: list[str], kind: str) -> str:
    conn = await hosts.connect(host=names, port=[0] * len(names), target_session_attrs=kind)
    try:
        return await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()


def test_writes_go_to_the_first_host_that_accepts_them(host_list, calls):
    database = asyncio.run(_database(host_list, ["gone", "standby", "primary"], "read-write"))
    assert database != "podium_standby"
    assert calls == ["gone", "standby", "primary"]


def test_the_host_chosen_last_is_tried_first(host_list, calls):
    asyncio.run(_database(host_list, ["standby", "primary"], "read-write"))
    calls.clear()
    asyncio.run(_database(host_list, ["standby", "primary"], "read-write"))
    assert calls == ["primary"]


def test_a_host_that_did_not_answer_is_tried_last(host_list, calls):
    asyncio.run(_database(host_list, ["gone", "primary"], "read-write"))
    calls.clear()
    assert asyncio.run(_database(host_list, ["gone", "standby"],
                                 "prefer-standby")) == "podium_standby"
    assert calls == ["standby"]


def test_reads_prefer_the_standby(host_list):
    assert asyncio.run(_database(host_list, ["primary", "standby"],
                                 "prefer-standby")) == "podium_standby"


def test_reads_fall_back_to_the_primary_without_a_standby(host_list):
    assert asyncio.run(_database(host_list, ["gone", "primary"],
                                 "prefer-standby")) != "podium_standby"


def test_a_silent_host_costs_only_its_own_timeout(host_list):
    began = time.monotonic()
    database = asyncio.run(_database(host_list, ["silent", "primary"], "read-write"))
    assert database != "podium_standby"
    assert time.monotonic() - began < 2.0  # timeout 0.5 s, then the primary


def test_no_host_for_the_kind_asked_names_each_host_and_why(host_list):
    with pytest.raises(ConnectionError) as caught:
        asyncio.run(_database(host_list, ["gone", "standby"], "read-write"))
    assert "gone:0: ConnectionRefusedError" in str(caught.value)
    assert "standby:0: read-only" in str(caught.value)


def test_an_unknown_session_kind_is_refused(host_list):
    with pytest.raises(ValueError, match="target_session_attrs"):
        asyncio.run(_database(host_list, ["primary"], "sometimes"))


def test_an_engine_on_a_host_list_writes_through_the_pgbouncer_settings(base_settings, silent):
    """The URL the app role writes (libpq's host list), with PgBouncer's connection settings:
    the silent host is skipped and the session accepts writes."""
    url = make_url(base_settings.database_url)
    listed = (f"postgresql+asyncpg://{url.username}:{url.password or ''}@/{url.database}"
              f"?host=127.0.0.1:{silent}&host={url.host}:{url.port or 5432}"
              "&target_session_attrs=read-write")
    settings = base_settings.model_copy(update={"database_connect_timeout": 0.5})

    async def check() -> str:
        engine = make_engine(listed, settings, pgbouncer=True)
        try:
            async with engine.connect() as conn:
                return await conn.scalar(text("SHOW transaction_read_only"))
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == "off"


def test_migrations_use_the_host_list_too(base_settings, silent):
    """Alembic's engine passes the silent host by after its own timeout (asyncpg's host list
    would spend its whole 60 s timeout on it): the first lab drill failed at `migrate`."""
    url = make_url(base_settings.database_url)
    listed = (f"postgresql+asyncpg://{url.username}:{url.password or ''}@/{url.database}"
              f"?host=127.0.0.1:{silent}&host={url.host}:{url.port or 5432}"
              "&target_session_attrs=read-write")
    began = time.monotonic()
    migrate.upgrade(base_settings.model_copy(update={"database_url": listed,
                                                     "database_connect_timeout": 0.5}))
    assert time.monotonic() - began < 10
