"""App tier fixtures: a throwaway PostgreSQL and Redis (kit/appservices.py), an SMTP sink
(aiosmtpd), the app served by uvicorn on a free port in a thread, and a queue drain.

One set of services per session; every test starts from empty tables and an empty Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as Message

import httpx
import pytest

if os.geteuid() != 0:  # the harness starts PostgreSQL as the postgres user
    pytest.skip("the app tier runs as root (./podium test)", allow_module_level=True)

import uvicorn
from aiosmtpd.controller import Controller
from arq.worker import Worker
from podium_app import instance_settings, migrate
from podium_app.app import create_app
from podium_app.settings import Settings
from podium_app.tasks import worker_settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from kit.appservices import AppServices, free_port

SECRET = "test-secret-key-" + "x" * 32


def _interrupt(*_):
    raise KeyboardInterrupt


def pytest_configure(config):
    # arq calls redis-py's deprecated close() on shutdown; nothing of ours.
    config.addinivalue_line("filterwarnings",
                            "ignore:Call to deprecated close:DeprecationWarning")
    # A SIGTERM (CI cancel, timeout) tears the session down like Ctrl-C: the throwaway
    # PostgreSQL and Redis are stopped and their directory removed.
    signal.signal(signal.SIGTERM, _interrupt)


@dataclass
class Sink:
    """Messages received by the SMTP sink, oldest first."""

    messages: list[Message] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def wait_for(self, to: str, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in reversed(self.messages):
                if to in message["To"]:
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} within {timeout}s")


@pytest.fixture(scope="session")
def services() -> Iterator[AppServices]:
    with AppServices() as started:
        yield started


@pytest.fixture(scope="session")
def sink() -> Iterator[Sink]:
    handler = Sink()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="session")
def base_settings(services: AppServices, sink: Sink) -> Settings:
    settings = Settings(
        _env_file=None,
        database_url=services.database_url, redis_url=services.redis_url,
        database_pgbouncer=False, database_pool_size=10, secret_key=SECRET,
        smtp_host="127.0.0.1", smtp_port=sink.port, smtp_starttls=False,
        rate_signup_ip="1000/60", rate_login_ip="1000/60", rate_post_account="1000/60",
        rate_post_ip="1000/60",
    )
    migrate.upgrade(settings)
    return settings


class _ServerThread(threading.Thread):
    def __init__(self, app, port: int):
        super().__init__(daemon=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="on"))

    def run(self) -> None:
        self.server.run()


@pytest.fixture(scope="session")
def app(base_settings: Settings):
    return create_app(base_settings)


@pytest.fixture(scope="session")
def server(app) -> Iterator[str]:
    port = free_port()
    thread = _ServerThread(app, port)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not thread.server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    yield url
    thread.server.should_exit = True
    thread.join(10)


TABLES = ("audit_log", "reports", "notifications", "favourites", "status_tags", "tags",
          "mentions", "status_edits", "statuses", "follows", "oauth_tokens", "oauth_codes",
          "oauth_apps", "email_tokens", "accounts", "invites", "instance_settings")


@pytest.fixture(autouse=True)
def clean(base_settings: Settings, app, sink: Sink) -> Iterator[None]:
    """Empty tables and Redis before each test; restore the app's settings after it."""

    async def wipe() -> None:
        engine = create_async_engine(base_settings.database_url)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        await engine.dispose()
        from redis.asyncio import Redis

        redis = Redis.from_url(base_settings.redis_url)
        await redis.flushdb()
        await redis.aclose()

    asyncio.run(wipe())
    instance_settings.forget()
    sink.messages.clear()
    app.state.settings = base_settings
    yield
    app.state.settings = base_settings


@pytest.fixture
def configure(app):
    """configure(mode="desk", ...) changes the running app's settings for this test."""

    def apply(**changes) -> Settings:
        app.state.settings = app.state.settings.model_copy(update=changes)
        return app.state.settings

    return apply


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


@pytest.fixture
def oauth_app(client) -> dict:
    """A registered OAuth app (POST /api/v1/apps): client_id, client_secret, ..."""
    answer = client.post("/api/v1/apps", json={
        "client_name": "tests",
        "redirect_uris": "https://client.example/cb urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read write follow"})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def drain(app):
    """drain() runs the queue worker until the queue is empty (burst mode)."""

    def run() -> None:
        async def burst() -> None:
            worker = Worker(**{**worker_settings(app.state.settings), "handle_signals": False},
                            burst=True, poll_delay=0.05)
            with contextlib.suppress(Exception):
                await worker.async_run()
            await worker.close()

        asyncio.run(burst())

    return run


@dataclass
class User:
    id: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_user(base_settings: Settings):
    """make_user("alice", role="admin", publisher=True) -> User with a token (confirmed,
    approved account; scopes read write follow plus admin ones for staff)."""

    async def create(username: str, role: str, publisher: bool, scopes: str) -> User:
        from podium_app.db import Database
        from podium_app.services import accounts, oauth

        db = Database.from_settings(base_settings)
        try:
            async with db.sessions() as session, session.begin():
                account = await accounts.create_account(
                    session, username=username, email=f"{username}@example.org",
                    password="correct horse battery", role=role, confirmed=True,
                    publisher=publisher)
                raw, _ = await oauth.issue(session, None, account, scopes.split())
                return User(str(account.id.int), username, raw)
        finally:
            await db.dispose()

    def make(username: str, role: str = "member", publisher: bool = False,
             scopes: str | None = None) -> User:
        if scopes is None:
            scopes = "read write follow" + (" admin:read admin:write" if role != "member"
                                            else "")
        return asyncio.run(create(username, role, publisher, scopes))

    return make


@pytest.fixture
def post(client):
    """post(user, "text", **params) -> the created status (asserts 200)."""

    def create(user: User, text: str, **params) -> dict:
        answer = client.post("/api/v1/statuses", headers=user.headers,
                             json={"status": text, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()

    return create
