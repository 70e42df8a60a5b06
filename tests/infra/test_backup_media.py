"""The backup role's media copy: the media hosts push their origin to the rsync daemon on the
backup host, incrementally (decision 0110).

Runs on the media hosts; reaches the backup host through testinfra too.
"""

from __future__ import annotations

import secrets

import pytest
import testinfra

testinfra_hosts = ["ansible://media"]

ORIGIN = "/srv/media"
COPY = "/var/backups/podium-media"
METRICS = "/var/lib/prometheus/node-exporter/podium_media_copy.prom"


@pytest.fixture(scope="module")
def backup(pytestconfig, inventory):
    names = list((inventory["all"]["children"].get("backup") or {}).get("hosts") or {})
    if not names:
        pytest.skip("the stack has no backup host: media are not copied")
    return testinfra.get_host(f"ansible://{names[0]}",
                              ansible_inventory=pytestconfig.option.ansible_inventory)


def _push(host) -> int:
    """Run the copy once; return how many files it sent (its own metric)."""
    with host.sudo():
        # These tests start the unit many times a minute, faster than the unit's start
        # limit allows (a guard for the timer, not for them): clear the counter first.
        host.run("systemctl reset-failed podium-media-copy.service")
        result = host.run("systemctl start podium-media-copy.service")
        assert result.rc == 0, result.stderr + host.run(
            "journalctl -u podium-media-copy -n 20 --no-pager").stdout
        metrics = host.file(METRICS).content_string
    line = next(x for x in metrics.splitlines()
                if x.startswith("podium_media_copy_files_transferred "))
    return int(line.split()[1])


@pytest.fixture(scope="module")
def probe(host, backup):
    """A new file at the origin, removed again afterwards."""
    name = f"drilltest/{secrets.token_hex(8)}.bin"
    with host.sudo():
        host.run_test("install -d -o www-data -g www-data %s/drilltest", ORIGIN)
        host.run_test("head -c 65536 /dev/urandom > %s/%s && chown www-data: %s/%s",
                      ORIGIN, name, ORIGIN, name)
        digest = host.check_output("sha256sum %s/%s", ORIGIN, name).split()[0]
    yield name, digest
    with host.sudo():
        host.run("rm -rf %s/drilltest", ORIGIN)
    with backup.sudo():
        backup.run("rm -rf %s/current/drilltest", COPY)


def test_rsync_daemon_listens_on_the_private_address_only(backup, inventory):
    name = backup.backend.get_hostname()
    address = inventory["all"]["hosts"][name]["podium_private_address"]
    assert backup.socket(f"tcp://{address}:873").is_listening
    assert not backup.socket("tcp://0.0.0.0:873").is_listening


def test_the_module_refuses_hosts_that_are_not_media_hosts(backup, inventory):
    name = backup.backend.get_hostname()
    if name in (inventory["all"]["children"].get("media") or {}).get("hosts", {}):
        pytest.skip("the backup host is also a media host (one-host stack): no outsider to try")
    address = inventory["all"]["hosts"][name]["podium_private_address"]
    result = backup.run("rsync rsync://media@%s:873/media/ </dev/null", address)
    assert result.rc != 0
    assert "access denied" in result.stdout + result.stderr


def test_a_file_put_at_the_origin_lands_in_the_copy(host, backup, probe):
    name, digest = probe
    assert _push(host) >= 1
    with backup.sudo():
        copied = backup.check_output("sha256sum %s/current/%s", COPY, name).split()[0]
    assert copied == digest


def test_an_unchanged_origin_copies_nothing(host, probe):
    _push(host)
    assert _push(host) == 0


def test_a_file_deleted_at_the_origin_moves_to_deleted_in_the_copy(host, backup, probe):
    name, digest = probe
    _push(host)
    with host.sudo():
        host.run_test("rm %s/%s", ORIGIN, name)
    _push(host)
    with backup.sudo():
        assert not backup.file(f"{COPY}/current/{name}").exists
        kept = backup.check_output("find %s/deleted -path '*/%s' | head -1", COPY, name)
        assert kept
        assert backup.check_output("sha256sum %s", kept).split()[0] == digest


def test_the_copy_timer_is_enabled(host, backup):  # backup: skips when there is none
    timer = host.service("podium-media-copy.timer")
    assert timer.is_enabled
    assert timer.is_running


@pytest.fixture
def stray(host):
    """A file at the origin that the copy does not have (pushed nothing after it)."""
    name = f"drilltest/stray-{secrets.token_hex(8)}.bin"
    with host.sudo():
        host.run_test("install -d -o www-data -g www-data %s/drilltest", ORIGIN)
    yield name
    with host.sudo():
        host.run("rm -rf %s/drilltest /var/backups/podium-media-before-restore-*/drilltest",
                 ORIGIN)


def test_a_plain_restore_keeps_files_the_copy_lacks(host, backup, stray):
    _push(host)
    with host.sudo():
        host.run_test("echo stray > %s/%s", ORIGIN, stray)
        host.run_test("/usr/local/sbin/podium-media-restore")
        assert host.file(f"{ORIGIN}/{stray}").exists


def test_an_exact_restore_sets_files_the_copy_lacks_aside(host, backup, stray):
    # Pushed first, so the origin equals the copy except for the stray file: nothing the
    # lab's other tests wrote is moved aside.
    _push(host)
    with host.sudo():
        before = host.check_output("find %s -type f ! -path '*/.upload/*' | wc -l", ORIGIN)
        host.run_test("echo stray > %s/%s", ORIGIN, stray)
        out = host.check_output("/usr/local/sbin/podium-media-restore --exact")
        assert "exact mode" in out
        assert not host.file(f"{ORIGIN}/{stray}").exists
        aside = host.check_output(
            "ls -d /var/backups/podium-media-before-restore-*/%s", stray).splitlines()
        assert aside and host.file(aside[-1]).content_string == "stray\n"
        after = host.check_output("find %s -type f ! -path '*/.upload/*' | wc -l", ORIGIN)
    assert after == before


def test_a_restore_refuses_an_unknown_option(host, backup):
    with host.sudo():
        result = host.run("/usr/local/sbin/podium-media-restore --everything")
    assert result.rc == 2
    assert "unknown option '--everything'" in result.stderr
