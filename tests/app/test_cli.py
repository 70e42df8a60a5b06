"""podium-app on servers: migrate (idempotent), create-user, set-role, tokens."""

import os
import subprocess
import sys


def cli(settings, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PODIUM_ENV_FILE": "/dev/null",
           "PODIUM_DATABASE_URL": settings.database_url, "PODIUM_REDIS_URL": settings.redis_url,
           "PODIUM_DATABASE_PGBOUNCER": "false"}
    return subprocess.run([sys.executable, "-m", "podium_app", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_migrate_is_idempotent(base_settings):
    done = cli(base_settings, "migrate")
    assert done.returncode == 0, done.stderr
    assert "head" in done.stdout


def test_create_user_set_role_and_token(base_settings, client):
    made = cli(base_settings, "create-user", "admin1", "admin1@example.org", "--password-stdin",
               stdin="a long password\n")
    assert made.returncode == 0, made.stderr
    assert cli(base_settings, "set-role", "admin1", "admin").returncode == 0
    token = cli(base_settings, "tokens", "create", "admin1").stdout.split("token: ")[1].strip()
    me = client.get("/api/v1/accounts/verify_credentials",
                    headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "admin1" and me["role"]["name"] == "admin"
    assert len(cli(base_settings, "tokens", "list", "admin1").stdout.splitlines()) == 1
    assert cli(base_settings, "tokens", "revoke", "admin1").returncode == 0
    assert client.get("/api/v1/accounts/verify_credentials",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_create_user_refuses_a_taken_name_with_a_message(base_settings):
    cli(base_settings, "create-user", "dup", "dup@example.org", "--password-stdin",
        stdin="a long password\n")
    again = cli(base_settings, "create-user", "dup", "dup2@example.org", "--password-stdin",
                stdin="a long password\n")
    assert again.returncode == 1
    assert "already taken" in again.stderr


def test_serve_gives_uvicorn_the_configured_worker_healthcheck_timeout(monkeypatch):
    import uvicorn
    from podium_app import cli as app_cli
    from podium_app import worker_sockets
    from podium_app.settings import get_settings

    passed: list[uvicorn.Config] = []
    monkeypatch.setattr(worker_sockets, "run", passed.append)
    monkeypatch.setenv("PODIUM_ENV_FILE", "/dev/null")
    monkeypatch.setenv("PODIUM_WEB_HEALTHCHECK_TIMEOUT", "45")
    get_settings.cache_clear()
    try:
        app_cli.main(["serve", "--workers", "2"])
    finally:
        get_settings.cache_clear()
    [config] = passed  # more than one worker: a socket per worker (decision 0301)
    assert config.timeout_worker_healthcheck == 45
    assert config.workers == 2
    # Served through the factory that freezes the worker's startup objects (decision 0300).
    assert config.app == "podium_app.serving:create_served_app" and config.factory


def test_the_served_app_leaves_its_startup_objects_out_of_the_collections(monkeypatch):
    import gc

    from fastapi import FastAPI
    from podium_app import serving
    from podium_app.settings import get_settings

    monkeypatch.setenv("PODIUM_ENV_FILE", "/dev/null")
    get_settings.cache_clear()
    assert gc.get_freeze_count() == 0
    try:
        app = serving.create_served_app()
        assert isinstance(app, FastAPI)
        frozen = gc.get_freeze_count()
        # The modules, routes and models alive at start: tens of thousands of objects.
        assert frozen > 20_000, frozen
        gc.collect()
        assert gc.get_freeze_count() == frozen  # a full collection leaves them frozen
    finally:
        gc.unfreeze()  # the rest of this test process collects as before
        get_settings.cache_clear()
