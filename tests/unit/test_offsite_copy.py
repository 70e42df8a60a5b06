"""The backup role's offsite copies and second S3 repository (decision 0281), rendered
without hosts: pgBackRest's configuration on the repository and PostgreSQL hosts, the push
script, rclone's configuration, and the age check's verdict on the push's stamps."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_ansible_tree import _playbook
from test_role_templates import _render, _template

from kit.paths import REPO

BACKUP = REPO / "roles" / "backup"
S3 = {"backup_s3_endpoint": "s3stub1", "backup_s3_bucket": "podium-offsite",
      "backup_s3_region": "us-east-1", "backup_s3_key": "KEY0123456789",
      "backup_s3_key_secret": "SECRET-never-on-a-command-line"}
COMMON = {"backup_repo_host": "localhost", "backup_postgres_hosts": ["db1", "db2"],
          "backup_cipher_pass": "x" * 32, "backup_media_hosts": ["store1"],
          "podium_private_address": "10.0.0.71", "ansible_managed": "managed"}


def _render_backup(tmp_path: Path, overrides: dict, names: list[str]) -> dict[str, str]:
    """The backup role's templates ``names`` (paths under templates/, without .j2) rendered
    with the role's defaults and vars, COMMON, S3 and ``overrides``."""
    _render(tmp_path, [BACKUP / "defaults" / "main.yml", BACKUP / "vars" / "main.yml"],
            {**COMMON, **S3, **overrides},
            [_template(BACKUP / "templates" / f"{n}.j2", tmp_path / Path(n).name) for n in names])
    return {n: (tmp_path / Path(n).name).read_text() for n in names}


CONF = "etc/pgbackrest/pgbackrest.conf"


def test_repository_host_keeps_repo1_on_disk_and_repo2_in_the_bucket(tmp_path):
    conf = _render_backup(tmp_path, {"backup_repo2_s3": True,
                                     "backup_s3_ca_file": "/ctl/objectstore-tls/ca.crt"},
                          [CONF])[CONF]
    assert "repo1-path=/var/lib/pgbackrest" in conf and "repo1-type" not in conf
    for line in ("repo2-type=s3", "repo2-s3-endpoint=s3stub1", "repo2-s3-bucket=podium-offsite",
                 "repo2-s3-uri-style=path", "repo2-storage-ca-file=/etc/pgbackrest/s3-ca.crt",
                 "repo2-cipher-type=aes-256-cbc", "repo1-cipher-type=aes-256-cbc",
                 "repo2-retention-full=2"):
        assert line in conf.splitlines(), line


def test_cloud_repository_host_has_one_s3_repository_checked_with_system_cas(tmp_path):
    conf = _render_backup(tmp_path, {"backup_repo_type": "s3"}, [CONF])[CONF]
    assert "repo1-type=s3" in conf.splitlines()
    assert "repo2-" not in conf and "storage-ca-file" not in conf


def test_postgresql_hosts_reach_both_repositories_through_the_repository_host(tmp_path):
    """WAL must reach repo2 too (a backup's archive check waits for it there); the PostgreSQL
    hosts get no S3 key: the repository host's TLS server holds the storage settings."""
    conf = _render_backup(tmp_path, {"backup_repo2_s3": True, "backup_repo_host": "backup1",
                                     "backup_postgres_hosts": ["localhost"]}, [CONF])[CONF]
    for n in (1, 2):
        assert f"repo{n}-host=backup1" in conf.splitlines()
        assert f"repo{n}-host-type=tls" in conf.splitlines()
    assert S3["backup_s3_key_secret"] not in conf and "s3-bucket" not in conf


@pytest.mark.parametrize("kind", ["full", "diff"])
def test_scheduled_backups_go_to_every_repository(tmp_path, kind):
    unit = f"etc/systemd/system/pgbackrest-{kind}.service"
    for repo2, expected in ((False, [1]), (True, [1, 2])):
        text = _render_backup(tmp_path, {"backup_repo2_s3": repo2}, [unit])[unit]
        starts = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        assert starts == [f"ExecStart=/usr/bin/pgbackrest --stanza=podium --repo={n} "
                          f"--type={kind} backup" for n in expected]


def test_weekly_verification_checks_every_repository(tmp_path):
    unit = "etc/systemd/system/pgbackrest-verify.service"
    text = _render_backup(tmp_path, {"backup_repo2_s3": True}, [unit])[unit]
    starts = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert len(starts) == 2
    for n, line in enumerate(starts, 1):
        assert f"pgbackrest --stanza=podium --repo={n} verify" in line
        assert 'grep -q "status: error"' in line


def test_push_keeps_the_key_pair_in_rclones_configuration_only(tmp_path):
    names = ["etc/podium-offsite/rclone.conf", "usr/local/sbin/podium-offsite-copy"]
    out = _render_backup(tmp_path, {"backup_offsite_copy": True,
                                    "backup_s3_ca_file": "/ctl/ca.crt"}, names)
    conf, script = out[names[0]], out[names[1]]
    assert "secret_access_key = SECRET-never-on-a-command-line" in conf
    assert "endpoint = https://s3stub1" in conf and "force_path_style = true" in conf
    assert S3["backup_s3_key_secret"] not in script and S3["backup_s3_key"] not in script
    assert "--config /etc/podium-offsite/rclone.conf" in script
    assert "--ca-cert /etc/pgbackrest/s3-ca.crt" in script
    assert "offsite:podium-offsite/podium-offsite/media/current/" in script
    assert "--max-delete 1000" in script
    subprocess.run(["bash", "-n", str(tmp_path / "podium-offsite-copy")], check=True)


def test_push_without_media_hosts_copies_only_the_secrets(tmp_path):
    name = "usr/local/sbin/podium-offsite-copy"
    script = _render_backup(tmp_path, {"backup_offsite_copy": True, "backup_media_hosts": []},
                            [name])[name]
    assert "media/current" not in script.split("set -euo pipefail", 1)[1]
    assert "/secrets/" in script and "--ca-cert" not in script


def _run_push(tmp_path: Path, fail_on: str, media_files: tuple[str, ...] = ("a.jpg",)):
    """The rendered push run with a stand-in rclone on PATH that fails (exit 8) when its
    command is ``fail_on`` ("sync": the media part, "copy": the secrets part); the process
    result and the state folder."""
    state, media = tmp_path / "state", tmp_path / "media"
    (media / "current").mkdir(parents=True)
    for name in media_files:
        (media / "current" / name).write_text("x")
    name = "usr/local/sbin/podium-offsite-copy"
    _render_backup(tmp_path, {"backup_offsite_copy": True, "backup_media_dest_dir": str(media),
                              "__backup_offsite_state_dir": str(state)}, [name])
    fake = tmp_path / "bin" / "rclone"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >>{tmp_path}/rclone.log\n'
                    f'case " $* " in *" {fail_on} "*) exit 8;; esac\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    result = subprocess.run(["bash", str(tmp_path / "podium-offsite-copy")], env=env,
                            capture_output=True, text=True, timeout=60)
    return result, state


def test_a_failed_media_part_still_pushes_the_secrets_and_is_stamped_alone(tmp_path):
    result, state = _run_push(tmp_path, "sync")
    assert result.returncode == 1
    assert "media: rclone sync of the media copy" in result.stderr
    assert "(exit 8)" in (state / "media" / "last-failure").read_text()
    assert not (state / "media" / "last-success").exists()
    assert "rclone copy of the secrets copies" in (state / "secrets" / "last-success").read_text()
    assert not (state / "secrets" / "last-failure").exists()
    assert "failed: media " in (state / "last-failure").read_text()
    assert not (state / "last-success").exists()


def test_a_failed_secrets_part_leaves_the_media_part_good(tmp_path):
    result, state = _run_push(tmp_path, "copy")
    assert result.returncode == 1
    assert (state / "media" / "last-success").exists()
    assert (state / "secrets" / "last-failure").exists()
    assert "failed: secrets " in (state / "last-failure").read_text()


def test_an_empty_media_copy_is_nothing_to_push_not_a_failure(tmp_path):
    result, state = _run_push(tmp_path, "sync", media_files=())
    assert result.returncode == 0, result.stderr
    assert "is empty: nothing to push" in (state / "media" / "last-success").read_text()
    assert " sync " not in f" {(tmp_path / 'rclone.log').read_text()} "
    assert (state / "last-success").exists() and (state / "secrets" / "last-success").exists()


@pytest.fixture
def check(tmp_path):
    """The rendered age check as a module, its offsite state folder in tmp_path/state."""
    name = "usr/local/sbin/podium-backup-check"
    # A weekly full: tasks/full_age.yml would find a 7-day gap on the repository host.
    _render_backup(tmp_path, {"backup_offsite_copy": True, "backup_repo2_s3": True,
                              "__backup_full_interval": 604800}, [name])
    spec = importlib.util.spec_from_loader(
        "podium_backup_check", importlib.machinery.SourceFileLoader(
            "podium_backup_check", str(tmp_path / "podium-backup-check")))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.REPOS == [1, 2] and module.OFFSITE_STATE == "/var/lib/podium-offsite"
    assert module.OFFSITE_PARTS == ["media", "secrets"]
    module.OFFSITE_STATE = str(tmp_path / "state")
    for part in module.OFFSITE_PARTS:
        (tmp_path / "state" / part).mkdir(parents=True)
    return module


def _stamp(check, part: str, name: str, age: int, message: str = "msg") -> None:
    Path(check.OFFSITE_STATE, part, name).write_text(f"{int(time.time()) - age} {message}\n")


def _pushed(check, age: int = 60, parts: tuple[str, ...] = ("media", "secrets")) -> None:
    for part in parts:
        _stamp(check, part, "last-success", age)


def test_check_fails_before_any_push(check):
    assert check.offsite_problems(time.time(), 3600) == [
        f"offsite copy ({part}): no push has succeeded yet (podium-offsite-copy.service)"
        for part in ("media", "secrets")]


def test_check_passes_after_a_recent_good_push(check):
    _pushed(check)
    _stamp(check, "media", "last-failure", 600, "an older failure")
    assert check.offsite_problems(time.time(), 3600) == []


def test_a_good_push_in_the_same_second_as_a_failed_one_wins(check):
    now = time.time()
    _pushed(check)
    Path(check.OFFSITE_STATE, "media", "last-failure").write_text(f"{now - 0.6:.9f} it failed\n")
    Path(check.OFFSITE_STATE, "media", "last-success").write_text(f"{now - 0.2:.9f} pushed\n")
    assert check.offsite_problems(now, 3600) == []


def test_check_names_the_part_whose_last_push_failed(check):
    _pushed(check, 600)
    _stamp(check, "media", "last-failure", 5, "rclone sync of the media copy failed (exit 8)")
    (problem,) = check.offsite_problems(time.time(), 3600)
    assert problem.startswith("offsite copy (media): the last push failed")
    assert "rclone sync of the media copy failed (exit 8)" in problem


def test_check_fails_when_a_parts_last_good_push_is_too_old(check):
    _pushed(check, 60, ("media",))
    _stamp(check, "secrets", "last-success", 7200)
    (problem,) = check.offsite_problems(time.time(), 3600)
    assert problem == "offsite copy (secrets): the last good push is 7200 s old (limit 3600 s)"


def test_push_without_media_hosts_has_the_secrets_part_only(tmp_path):
    name = "usr/local/sbin/podium-backup-check"
    script = _render_backup(tmp_path, {"backup_offsite_copy": True, "backup_media_hosts": [],
                                       "__backup_full_interval": 604800}, [name])[name]
    assert "OFFSITE_PARTS = ['secrets']" in script.splitlines()


def test_check_reports_each_repository(check, monkeypatch):
    info = [{"backup": [
        {"type": "full", "error": False, "timestamp": {"stop": 100}, "database": {"repo-key": 1}},
        {"type": "incr", "error": False, "timestamp": {"stop": 300}, "database": {"repo-key": 1}},
        {"type": "full", "error": True, "timestamp": {"stop": 400}, "database": {"repo-key": 2}},
    ]}]
    monkeypatch.setattr(check, "pgbackrest", lambda *args: info)
    assert check.last_backups() == {1: {"full": 100, "incr": 300}, 2: {}}


@pytest.mark.parametrize(("variables", "named"), [
    ({"objectstore_listen_address": "0.0.0.0", "objectstore_tls_dir": "/tmp/x"},
     "objectstore_listen_address"),
    ({"objectstore_listen_address": "10.0.0.81", "objectstore_tls_dir": "/tmp/x",
      "objectstore_buckets": ["Podium_Offsite"]}, "Podium_Offsite"),
])
def test_stand_in_rejects_bad_variables_before_changing_anything(tmp_path, variables, named):
    plays = [{"name": "Apply objectstore with a bad variable", "hosts": "all",
              "gather_facts": False, "vars": variables, "roles": ["objectstore"]}]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    (failure,) = report["failures"]
    assert named in failure["message"]
    assert report["changed"] == []


# --- the full backup's age limit (decision 0295) -------------------------------------------

# systemd 257 (Debian 13, the hosts) names the later runs "Iteration #N", 252 "Iter. #N".
SYSTEMD_257_WEEKLY = """  Original form: Sun *-*-* 01:00:00
Normalized form: Sun *-*-* 01:00:00
    Next elapse: Sun 2026-12-13 01:00:00 UTC
       From now: 5 days left
   Iteration #2: Sun 2026-12-20 01:00:00 UTC
       From now: 1 week 5 days left
   Iteration #3: Sun 2026-12-27 01:00:00 UTC
       From now: 2 weeks 5 days left
"""


def _full_age(tmp_path: Path, variables: dict, systemd_output: str | None = None):
    """tasks/full_age.yml on the controller with the role's defaults and vars and
    ``variables``: the play's result, its report and the derived limit (or None). With
    ``systemd_output``, a stand-in systemd-analyze prints it."""
    out = tmp_path / "limit.txt"
    # A vars file, last: play vars would lose to the role's defaults loaded as vars_files.
    (tmp_path / "overrides.yml").write_text(yaml.safe_dump(variables))
    plays = [{"name": "Derive the full backup's age limit", "hosts": "all",
              "gather_facts": False,
              "vars_files": [str(BACKUP / "defaults" / "main.yml"),
                             str(BACKUP / "vars" / "main.yml"), str(tmp_path / "overrides.yml")],
              "tasks": [{"ansible.builtin.import_tasks": str(BACKUP / "tasks" / "full_age.yml")},
                        {"name": "Write the limit", "ansible.builtin.copy": {
                            "content": "{{ __backup_max_full_age }}", "dest": str(out),
                            "mode": "0644"}}]}]
    env = None
    if systemd_output is not None:
        fake = tmp_path / "bin" / "systemd-analyze"
        fake.parent.mkdir()
        (tmp_path / "runs.txt").write_text(systemd_output)
        fake.write_text(f"#!/bin/sh\ncat {tmp_path}/runs.txt\n")
        fake.chmod(0o755)
        env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    result, report = _playbook(tmp_path, plays, extra_env=env)
    return result, report, int(out.read_text()) if out.is_file() else None


@pytest.mark.parametrize(("calendar", "limit"), [
    ("Sun *-*-* 01:00:00", 8 * 86400),        # weekly: a week plus a day
    ("Mon..Sat *-*-* 01:00:00", 3 * 86400),   # Saturday to Monday is the longest gap
    ("*-*-* 01:00:00", 2 * 86400),
    ("*-*-01 02:00:00", 32 * 86400),          # monthly: 31-day months plus a day
])
def test_full_age_limit_is_the_schedules_longest_gap_plus_a_day(tmp_path, calendar, limit):
    result, _, derived = _full_age(tmp_path, {"backup_full_calendar": calendar})
    assert result.returncode == 0, result.stdout[-2000:]
    assert derived == limit


def test_full_age_limit_reads_systemd_257s_iterations(tmp_path):
    result, _, derived = _full_age(tmp_path, {}, SYSTEMD_257_WEEKLY)
    assert result.returncode == 0, result.stdout[-2000:]
    assert derived == 8 * 86400


def test_a_set_full_age_limit_is_kept(tmp_path):
    result, _, derived = _full_age(tmp_path, {"backup_max_full_age": 700000})
    assert result.returncode == 0, result.stdout[-2000:]
    assert derived == 700000


@pytest.mark.parametrize(("variables", "named"), [
    ({"backup_full_calendar": "Sundays at one"}, "backup_full_calendar ('Sundays at one') is not"),
    ({"backup_full_calendar": "2020-01-01 00:00:00"}, "must repeat"),
    ({"backup_max_full_age": 86400}, "backup_max_full_age (86400 s) must exceed"),
])
def test_full_age_limit_rejects_bad_settings_naming_the_variable(tmp_path, variables, named):
    result, report, derived = _full_age(tmp_path, variables)
    assert result.returncode != 0 and derived is None
    (failure,) = report["failures"]
    assert named in failure["message"]


# --- the check's metrics (decision 0294) ---------------------------------------------------

def _series(lines: list[str]) -> dict[str, float]:
    """Sample lines of the textfile: series (name and labels) -> value."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines if line and not line.startswith("#")}


def test_metrics_have_one_series_per_repository_and_kind(check):
    series = _series(check.metrics({1: {"full": 100, "diff": 300}, 2: {}}, {1: 350, 2: None},
                                   691200, None))
    assert series == {
        'podium_backup_last_success_timestamp_seconds{kind="diff",repo="1",stanza="podium"}': 300,
        'podium_backup_last_success_timestamp_seconds{kind="full",repo="1",stanza="podium"}': 100,
        # No good backup in repo2: its full is 0, which the alert sees as too old.
        'podium_backup_last_success_timestamp_seconds{kind="full",repo="2",stanza="podium"}': 0,
        'podium_wal_last_archived_timestamp_seconds{repo="1",stanza="podium"}': 350,
        'podium_wal_last_archived_timestamp_seconds{repo="2",stanza="podium"}': 0,
        'podium_backup_full_max_age_seconds{stanza="podium"}': 691200,
    }


def _verdict(check, monkeypatch, capsys, full_age: int, *args: str) -> tuple[int, str]:
    """The check's exit code and stderr with fresh differentials, WAL and pushes in both
    repositories, and their newest full ``full_age`` seconds old."""
    now = time.time()
    backups = {repo: {"full": now - full_age, "diff": now - 60} for repo in (1, 2)}
    monkeypatch.setattr(check, "last_backups", lambda: backups)
    monkeypatch.setattr(check, "last_wal", lambda repo: now - 30)
    _pushed(check)
    monkeypatch.setattr("sys.argv", ["podium-backup-check", "--no-metrics", *args])
    code = check.main()
    return code, capsys.readouterr().err


def test_check_fails_on_a_full_older_than_the_derived_limit(check, monkeypatch, capsys):
    """A weekly full (a 7-day gap between two scheduled runs) may be 8 days old; fresh
    differentials do not hide an older one (decision 0295)."""
    assert _verdict(check, monkeypatch, capsys, 8 * 86400 - 600) == (0, "")
    code, err = _verdict(check, monkeypatch, capsys, 8 * 86400 + 600)
    assert code == 1
    assert err.splitlines() == [f"STALE: repo{repo}: newest full backup is {8 * 86400 + 600} s "
                                f"old (limit 691200 s)" for repo in (1, 2)]


def test_check_takes_a_one_off_full_age_limit(check, monkeypatch, capsys):
    code, err = _verdict(check, monkeypatch, capsys, 3600, "--max-full-age", "60")
    assert code == 1 and "newest full backup is 3600 s old (limit 60 s)" in err


@pytest.mark.parametrize(("success_age", "failure_age", "failed"), [
    (None, None, 0), (60, 600, 0), (600, 5, 1), (None, 5, 1)])
def test_metrics_export_each_part_of_the_offsite_push(check, success_age, failure_age, failed):
    """The media part's stamps as given; the secrets part pushed a minute ago, in every case."""
    if success_age is not None:
        _stamp(check, "media", "last-success", success_age)
    if failure_age is not None:
        _stamp(check, "media", "last-failure", failure_age, "rclone sync failed (exit 1)")
    _stamp(check, "secrets", "last-success", 60)
    now = int(time.time())
    series = _series(check.metrics({}, {}, 691200, check.offsite_stamps()))
    assert series['podium_offsite_copy_failed{part="media"}'] == failed
    assert series['podium_offsite_copy_failed{part="secrets"}'] == 0
    for name, age in (("success", success_age), ("failure", failure_age)):
        value = series[f'podium_offsite_copy_last_{name}_timestamp_seconds{{part="media"}}']
        assert value == 0 if age is None else abs(value - (now - age)) <= 1
    secrets = series['podium_offsite_copy_last_success_timestamp_seconds{part="secrets"}']
    assert abs(secrets - (now - 60)) <= 1
    assert [name for name in series if name.startswith("podium_offsite_copy_")
            and "part=" not in name] == []


def test_metrics_leave_the_offsite_push_out_without_one(check):
    assert not [line for line in check.metrics({}, {}, 691200, None) if "offsite" in line]


def test_metrics_file_passes_promtool(check, tmp_path, monkeypatch):
    """The file node_exporter reads: replaced whole, readable by all, valid exposition."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus")
    _pushed(check)
    monkeypatch.setattr(check, "TEXTFILE_DIR", str(tmp_path / "textfile"))
    check.write_metrics(check.metrics({1: {"full": 100}, 2: {"full": 90}}, {1: 350, 2: 340},
                                      691200, check.offsite_stamps()))
    path = tmp_path / "textfile" / "podium_backup.prom"
    assert [p.name for p in path.parent.iterdir()] == ["podium_backup.prom"]
    assert path.stat().st_mode & 0o777 == 0o644
    result = subprocess.run([promtool, "check", "metrics"], input=path.read_text(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
