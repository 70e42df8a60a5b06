"""The data-tier roles (postgres, redis, app) stop on bad input before changing anything."""

from __future__ import annotations

import pytest
from test_ansible_tree import _playbook

GOOD = {
    "postgres": {"postgres_primary_host": "localhost", "postgres_listen_address": "127.0.0.1",
                 "postgres_app_password": "a" * 40, "postgres_replication_password": "b" * 40,
                 "postgres_memory_mb": 4096, "postgres_cpus": 2, "postgres_version": "17"},
    "redis": {"redis_listen_address": "127.0.0.1", "redis_password": "c" * 40,
              "redis_maxmemory_mb": 512},
    "app": {"app_database_hosts": ["10.0.0.41"], "app_redis_host": "10.0.0.51",
            "app_database_password": "a" * 40, "app_redis_password": "c" * 40,
            "app_secret_key": "d" * 64, "app_bind_address": "127.0.0.1",
            "app_source_dir": "/nonexistent"},
}


@pytest.mark.parametrize(("role", "variable", "value", "message"), [
    ("postgres", "postgres_app_password", "short", "postgres_app_password"),
    ("postgres", "postgres_primary_host", "nosuchhost", "postgres_primary_host"),
    ("postgres", "postgres_pgbouncer_pool_mode", "sometimes", "postgres_pgbouncer_pool_mode"),
    ("redis", "redis_password", "has spaces and is long enough", "redis_password"),
    ("redis", "redis_maxmemory_policy", "drop-everything", "redis_maxmemory_policy"),
    ("app", "app_secret_key", "too-short", "app_secret_key"),
    ("app", "app_mode", "broadcast", "app_mode"),
    ("app", "app_web_healthcheck_timeout", 0, "app_web_healthcheck_timeout"),
    ("app", "app_web_healthcheck_timeout", "soon", "app_web_healthcheck_timeout"),
])
def test_data_role_rejects_bad_variables_naming_them(tmp_path, role, variable, value, message):
    plays = [{
        "name": f"Apply {role} with a bad variable", "hosts": "all", "gather_facts": False,
        "vars": {**GOOD[role], variable: value},
        "roles": [role],
    }]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    (failure,) = report["failures"]
    assert message in failure["message"]
    assert report["changed"] == []
