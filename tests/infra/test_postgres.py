"""The postgres role: primary + streaming replica, PgBouncer, authentication and tuning.

The primary is the first host of the postgres group (the kit's default); every other host
is a replica. Expected values come from the inventory.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest
import yaml
from exporter_checks import listening_addresses, metrics_port, samples, scrape, value

from kit.drillkit import PRIMARY_VARS

testinfra_hosts = ["ansible://postgres"]

VERSION = "17"
UNIT = f"postgresql@{VERSION}-main"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def primary(inventory, pytestconfig) -> str:
    """The first postgres host, or the one ./podium drill failover recorded."""
    recorded = Path(pytestconfig.option.ansible_inventory).parent / PRIMARY_VARS
    if recorded.is_file():
        return yaml.safe_load(recorded.read_text())["podium_postgres_primary"]
    return next(iter(inventory["all"]["children"]["postgres"]["hosts"]))


@pytest.fixture(scope="session")
def replicas(inventory, primary) -> list[str]:
    return [name for name in inventory["all"]["children"]["postgres"]["hosts"]
            if name != primary]


@pytest.fixture()
def role(host, primary) -> str:
    return "primary" if host.backend.get_hostname() == primary else "replica"


def _sql(host, query: str, database: str = "postgres") -> str:
    with host.sudo("postgres"):
        result = host.run("psql -XAtq -d %s -c %s", database, query)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def _secret(stack_vars: dict, name: str) -> str:
    return (Path(stack_vars["podium_secrets_dir"]) / name).read_text().split()[0]


def _listening(host, port: int) -> set[str]:
    return {s.split("://", 1)[1].rsplit(":", 1)[0]
            for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")
            and s.startswith("tcp")}


def test_postgresql_running_and_enabled(host):
    unit = host.service(UNIT)
    assert unit.is_running
    assert unit.is_enabled


def test_postgresql_listens_only_on_private_address_and_localhost(host, host_vars):
    assert _listening(host, 5432) == {host_vars["podium_private_address"], "127.0.0.1", "::1"}


def test_primary_streams_to_every_replica_with_lag_reported(host, role, inventory, replicas):
    if role != "primary":
        pytest.skip("pg_stat_replication is read on the primary")
    if not replicas:
        pytest.skip("one PostgreSQL host: the stack has no replica")
    rows = _sql(host, "SELECT client_addr, state, pg_wal_lsn_diff(sent_lsn, replay_lsn) "
                      "FROM pg_stat_replication")
    streaming = {line.split("|")[0]: line.split("|")[1:] for line in rows.splitlines()}
    hosts = inventory["all"]["hosts"]
    for name in replicas:
        state, lag_bytes = streaming[hosts[name]["podium_private_address"]]
        assert state == "streaming"
        assert float(lag_bytes) >= 0


def test_replica_slot_is_active_on_the_primary(host, role, replicas):
    if role != "primary":
        pytest.skip("slots live on the primary")
    slots = dict(line.split("|") for line in _sql(
        host, "SELECT slot_name, active FROM pg_replication_slots").splitlines())
    for name in replicas:
        assert slots[name.replace("-", "_")] == "t"


def test_recovery_mode_matches_the_role(host, role):
    assert _sql(host, "SELECT pg_is_in_recovery()") == ("t" if role == "replica" else "f")


def test_replica_reports_its_lag_to_the_app(host, role):
    """podium_ops.replica_lag_seconds(): a number (NULL would mean not streaming)."""
    lag = _sql(host, "SELECT podium_ops.replica_lag_seconds()", "podium")
    assert lag != ""
    assert 0 <= float(lag) < 60


def test_replica_replays_what_the_primary_writes(host, role, primary):
    if role != "replica":
        pytest.skip("checked from each replica")
    primary_host = host.get_host(f"ansible://{primary}",
                                 ansible_inventory=host.backend.ansible_inventory)
    # A WAL record that touches no table: the replica must replay past its position.
    lsn = _sql(primary_host, "SELECT pg_current_wal_insert_lsn() FROM "
                        "pg_logical_emit_message(false, 'podium-test', 'probe')")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _sql(host, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t":
            return
        time.sleep(0.5)
    pytest.fail(f"the replica did not replay up to {lsn} within 20 s")


def test_replica_refuses_writes(host, role):
    if role != "replica":
        pytest.skip("replicas only")
    with host.sudo("postgres"):
        result = host.run("psql -XAtq -d podium -c 'CREATE TABLE podium_ops.probe (x int)'")
    assert result.rc != 0
    assert "read-only transaction" in result.stderr


def test_every_password_is_scram(host, role):
    if role != "primary":
        pytest.skip("roles are read on the primary")
    assert _sql(host, "SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL "
                      "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'") == "0"
    assert _sql(host, "SHOW password_encryption") == "scram-sha-256"


def test_shared_buffers_follow_the_host_memory(host):
    mem_mb = int(host.file("/proc/meminfo").content_string.split()[1]) // 1024
    expected = min(mem_mb // 4, 16384)
    with host.sudo("postgres"):
        value = host.run("psql -XAtq -c \"SELECT setting::bigint * 8 / 1024 FROM pg_settings "
                         "WHERE name = 'shared_buffers'\"").stdout.strip()
    assert abs(int(value) - expected) <= 1


def test_pg_hba_refuses_hosts_that_are_not_app_hosts(host_vars):
    """From the controller (on the private network, not an app host): no pg_hba entry."""
    user, database = b"podium", b"podium"
    body = struct.pack("!i", 196608) + b"user\0" + user + b"\0database\0" + database + b"\0\0"
    with socket.create_connection((host_vars["podium_private_address"], 5432), timeout=5) as s:
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        reply = s.recv(4096)
    assert reply[:1] == b"E"
    assert b"no pg_hba.conf entry" in reply


def test_pgbouncer_runs_on_every_host(host, host_vars):
    """On the replicas too: the app lists every host and a promoted replica takes writes at
    once (decision 0160)."""
    assert host.service("pgbouncer").is_running
    assert host.service("pgbouncer").is_enabled
    assert _listening(host, 6432) == {host_vars["podium_private_address"], "127.0.0.1"}


def test_pgbouncer_answers_in_transaction_mode(host, role, stack_vars):
    password = _secret(stack_vars, "postgres-app")
    query = host.run(
        "PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p 6432 -U podium -d podium "
        "-c 'SELECT 41 + 1' -c 'SHOW transaction_read_only'", password)
    assert query.rc == 0, query.stderr
    # What the app's target_session_attrs=read-write asks: only the primary's sessions write.
    assert query.stdout.split() == ["42", "off" if role == "primary" else "on"]
    pools = host.run("PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p 6432 -U podium -d pgbouncer "
                     "-c 'SHOW POOLS'", password)
    assert pools.rc == 0, pools.stderr
    assert any(line.startswith("podium|podium|") and "|transaction" in line
               for line in pools.stdout.splitlines())


# --- Exporters (roles/monitoring/README.md) ------------------------------------------------

def test_postgres_exporter_listens_on_the_private_address_only(host, host_vars, stack_vars):
    port = metrics_port(stack_vars, "postgres", "postgres")
    assert host.service("prometheus-postgres-exporter").is_enabled
    assert listening_addresses(host, port) == {host_vars["podium_private_address"]}


def test_postgres_exporter_reaches_postgresql(host, host_vars, stack_vars):
    """pg_up is 1. The exporter keeps one connection: the first scrape after PostgreSQL
    restarted (a restore, a rebuilt replica) finds it broken, reports 0 and reconnects, so
    the figure is read up to three times (seen on a stack without a monitoring host, where
    nothing had scraped since the restart). A wrong password stays 0."""
    for _ in range(3):
        text = scrape(host, host_vars["podium_private_address"],
                      metrics_port(stack_vars, "postgres", "postgres"))
        if value(text, "pg_up") == 1:
            break
        time.sleep(1)
    assert value(text, "pg_up") == 1


def test_postgres_exporter_reports_replication_for_the_alerts(host, role, host_vars,
                                                              stack_vars, replicas):
    """The series PostgresReplicaLagging / PostgresReplicationBroken read."""
    text = scrape(host, host_vars["podium_private_address"],
                  metrics_port(stack_vars, "postgres", "postgres"))
    assert value(text, "pg_replication_is_replica") == (1 if role == "replica" else 0)
    assert 0 <= value(text, "pg_replication_lag_seconds") < 60
    if role == "primary":
        active = samples(text, "pg_replication_slot_slot_is_active")
        for name in replicas:
            slot = name.replace("-", "_")
            assert [v for labels, v in active.items() if f'slot_name="{slot}"' in labels] == [1]


def test_postgres_exporter_reports_wal_archiving_for_the_alerts(host, role, host_vars,
                                                               stack_vars, inventory):
    """The series WalArchiveTooOld and WalArchiveFailing read, on the primary (the only host
    that archives, and only with a backup host in the stack): present, and the last archive
    younger than the alert's limit."""
    if role != "primary":
        pytest.skip("only the primary archives WAL")
    if not (inventory["all"]["children"].get("backup") or {}).get("hosts"):
        pytest.skip("no backup host in the stack: WAL archiving is off")
    defaults = yaml.safe_load((REPO / "roles/monitoring/defaults/main.yml").read_text())
    limit = defaults["monitoring_alert_wal_archive_max_age_minutes"] * 60
    text = scrape(host, host_vars["podium_private_address"],
                  metrics_port(stack_vars, "postgres", "postgres"))
    age = value(text, "pg_stat_archiver_last_archive_age")
    assert 0 <= age < limit, f"last WAL archived {age:.0f}s ago (WalArchiveTooOld at {limit}s)"
    # WalArchiveFailing's counters.
    assert value(text, "pg_stat_archiver_archived_count") >= 1
    assert value(text, "pg_stat_archiver_failed_count") >= 0


def test_monitoring_role_reads_statistics_but_no_data(host, role):
    if role != "primary":
        pytest.skip("roles are read on the primary")
    assert _sql(host, "SELECT pg_has_role('podium_monitor', 'pg_monitor', 'MEMBER')") == "t"
    assert _sql(host, "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles "
                      "WHERE rolname = 'podium_monitor'") == "f"
    assert _sql(host, "SELECT has_database_privilege('podium_monitor', 'podium', 'CREATE')") == "f"


def test_exporter_credentials_are_readable_by_root_only(host):
    files = ["/etc/default/prometheus-postgres-exporter",
             "/etc/default/prometheus-pgbouncer-exporter"]
    with host.sudo():
        for path in files:
            assert (host.file(path).user, host.file(path).mode) == ("root", 0o600), path


def test_pgbouncer_exporter_runs_on_the_private_address(host, host_vars, stack_vars):
    port = metrics_port(stack_vars, "postgres", "pgbouncer")
    assert listening_addresses(host, port) == {host_vars["podium_private_address"]}
    text = scrape(host, host_vars["podium_private_address"], port)
    assert value(text, "pgbouncer_up") == 1
    assert any('name="podium"' in labels
               for labels in samples(text, "pgbouncer_databases_pool_size"))
