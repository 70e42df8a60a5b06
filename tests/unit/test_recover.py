"""./podium recover: bad input is refused with a clear message before anything changes, B
takes A's secrets but keeps its own host-bound ones, and the report carries RTO and RPO."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from kit import cli, drillkit, lab, paths, recover
from kit.drillkit import Timeline
from kit.errors import PodiumError
from kit.paths import StackPaths


@pytest.fixture(autouse=True)
def nothing_changes(monkeypatch, tmp_path):
    """State under a temporary folder; any step that would touch a host fails the test."""
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path / ".podium")

    def touched(*args, **kwargs):
        raise AssertionError("a host or the stack would have been changed")

    monkeypatch.setattr(lab, "destroy", touched)
    monkeypatch.setattr(recover, "run_playbook", touched)
    monkeypatch.setattr(recover, "copy_tree", touched)
    monkeypatch.setattr(drillkit.Remote, "run", touched)
    return tmp_path


def _err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize("extra", [[], ["--record-manifest"], ["--lab-lose-source"]])
def test_same_stack_for_from_and_stack_is_refused(capsys, extra):
    assert cli.main(["recover", "--stack", "lab-provb", "--from", "lab-provb", *extra]) == 2
    err = _err(capsys)
    assert "--stack and --from are both 'lab-provb'" in err and "another stack" in err


@pytest.mark.parametrize("args, says", [
    # An unknown stack is named with its file.
    (["--stack", "lab-provb", "--from", "no-such-stack"],
     ["no stack file for stack 'no-such-stack'", "Pulumi.no-such-stack.yaml"]),
    (["--stack", "hetzner", "--from", "lab-prova"],
     ["'hetzner' is a hcloud stack", "--allow-cloud"]),
    (["--stack", "lab-provb", "--from", "scaleway", "--allow-cloud"],
     ["'scaleway' is a cloud stack and 'lab-provb' a lab stack", "two cloud stacks"]),
    # lab-data has PostgreSQL but no app, proxy or backup host to recover into.
    (["--stack", "lab-data", "--from", "lab-prova"], ["lacks what the drill needs", "backup host"]),
    (["--stack", "lab-provb", "--from", "lab-data"],
     ["'lab-data' lacks what the drill needs: 1 backup host"]),
    # The time is checked before the stack files are read.
    (["--stack", "lab-provb", "--from", "no-such-stack", "--to", "soon"],
     ["--to 'soon' is not a time"]),
    # lab-prova keeps its copies in lab-offsite's bucket: its key must be on the controller.
    (["--stack", "lab-provb", "--from", "lab-prova"],
     ["objectstore-key (the key of lab-prova's offsite bucket) is missing"]),
    (["--stack", "lab-provb", "--from", "lab-prova", "--lab-lose-source"],
     ["stack 'lab-prova' is not up here", "./podium up --stack lab-prova"]),
    # lab-backup's copies are on its own backup host and S3 stand-in: copied from there.
    (["--stack", "lab-provb", "--from", "lab-backup"],
     ["'lab-backup' was never brought up here", "./podium up --stack lab-backup"]),
    # B must reach the store that holds A's bucket.
    (["--stack", "lab-backup", "--from", "lab-prova"],
     ["'lab-prova' keeps its offsite copies in stack 'lab-offsite'",
      "which 'lab-backup' does not reach", "lab.offsite_store: lab-offsite"]),
])
def test_bad_input_is_refused_with_what_to_do(capsys, args, says):
    assert cli.main(["recover", *args]) == 2
    err = _err(capsys)
    assert all(text in err for text in says), err


@pytest.mark.parametrize("extra, says", [
    (["--record-manifest", "--lab-lose-source"], "separate steps"),
    (["--record-manifest", "--to", "2026-01-01T00:00Z"], "--to belongs to the recovery"),
    (["--lab-lose-source", "--to", "2026-01-01T00:00Z"], "--to belongs to the recovery"),
])
def test_steps_that_do_not_go_together_are_refused(capsys, extra, says):
    assert cli.main(["recover", "--stack", "lab-provb", "--from", "lab-prova", *extra]) == 2
    assert says in _err(capsys)


def test_stack_is_required_not_defaulted_to_local(capsys):
    with pytest.raises(SystemExit):
        cli.main(["recover", "--from", "lab-prova"])
    assert "--stack" in _err(capsys)


def test_a_broken_manifest_is_named_with_what_to_do():
    path = recover.manifest_path("lab-prova")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(PodiumError, match="is not valid JSON"):
        recover.read_manifest("lab-prova")
    path.write_text(json.dumps({"cutoff": "x", "db": {}}))
    with pytest.raises(PodiumError, match="lacks recorded_at") as err:
        recover.read_manifest("lab-prova")
    assert "--record-manifest" in err.value.hint


def test_no_manifest_is_not_an_error_but_nothing_to_verify():
    assert recover.read_manifest("lab-prova") is None
    assert recover.verify(None, "db1", ["web1"], None, None) == ([], False, None)


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_b_takes_a_secrets_but_keeps_its_own_pgbackrest_tls():
    target = StackPaths("lab-provb")
    (target.secrets / "pgbackrest-tls").mkdir(parents=True)
    (target.secrets / "pgbackrest-tls" / "ca.crt").write_bytes(b"B's CA")
    (target.secrets / "app-secret-key").write_bytes(b"B's key")
    (target.secrets / "only-in-b").write_bytes(b"B")
    notes = recover.adopt_secrets(_tar({
        "app-secret-key": b"A's key", "dkim/podium.test.private": b"A's DKIM",
        "pgbackrest-tls/ca.crt": b"A's CA"}), target, "20261206-180000")
    assert (target.secrets / "app-secret-key").read_bytes() == b"A's key"
    assert (target.secrets / "dkim" / "podium.test.private").read_bytes() == b"A's DKIM"
    assert (target.secrets / "pgbackrest-tls" / "ca.crt").read_bytes() == b"B's CA"
    assert not (target.secrets / "only-in-b").exists()
    old = target.secrets.with_name("lab-provb.before-recover-20261206-180000")
    assert (old / "app-secret-key").read_bytes() == b"B's key"
    assert "took 2 secrets" in notes[0] and "pgbackrest-tls" in notes[1]


def test_report_has_rto_rpo_and_the_honest_cloud_note():
    tl = Timeline(1)
    tl.started = 1000.0
    tl.phases = [("Restore", 1000.0, 1100.0)]
    lines = recover.report_lines(
        recover.load_stack("lab-provb"), "lab-prova", None, 155.0, 0.0,
        [["statuses", "3", "3", "yes"]], True, True, "posted", "backup taken", ["took 9"],
        {"cutoff": "2026-12-06 18:00:00+00"}, {"lost_at": 990.0, "destroyed": ["db1"],
                                                "kept": ["backup1"]}, tl, {"serving": 1100.0})
    text = "\n".join(lines)
    assert "**2m35s**" in text and "RPO" in text and "**0.0s**" in text
    assert "| statuses | 3 | 3 | yes |" in text
    # lab-prova keeps its copies in lab-offsite's bucket: the report says it read that bucket
    assert "every host of `lab-prova` was destroyed, its backup host too" in text
    assert "`podium-lab-prova` in the lab store `lab-offsite`" in text
    # lab-provb keeps repo1 in its bucket (decision 0283): the report says where it went
    assert "bucket to bucket into `podium-lab-provb`" in text


def test_report_says_when_a_backup_host_stood_for_the_offsite_store():
    text = recover.where_from("lab-backup", "lab-provb")
    assert "the backup host of the lost stack stood for the offsite store" in text
    assert "lab-offsite" not in text


def test_bucket_helpers_read_a_tar_member_and_refuse_unusable_repositories():
    tar = _tar({"pgbackrest-cipher": b"s3cret\n", "dkim/x": b"k"})
    assert recover.tar_member(tar, "pgbackrest-cipher") == "s3cret\n"
    with pytest.raises(PodiumError, match="has no objectstore-key"):
        recover.tar_member(tar, "objectstore-key")
    with pytest.raises(PodiumError, match="in the bucket has no usable backup"):
        recover.usable_backups({"status": {"code": 2, "message": "no valid backups"}},
                               "in the bucket", None)
    info = {"status": {"code": 0, "message": "ok"},
            "backup": [{"timestamp": {"stop": 1_790_000_000}},
                       {"timestamp": {"stop": 1_790_000_900}}]}
    assert len(recover.usable_backups(info, "x", None)) == 2
    from kit.drillkit import parse_target
    with pytest.raises(PodiumError, match="before the oldest backup's end"):
        recover.usable_backups(info, "x", parse_target("2026-01-01T00:00:00Z"))


def test_stack_bucket_takes_the_stack_s_own_key_pair():
    secrets = StackPaths("lab-prova").secrets
    secrets.mkdir(parents=True)
    (secrets / "objectstore-key").write_text("AKEY\n")
    (secrets / "objectstore-secret").write_text("asecret\n")
    bucket = recover.stack_bucket(recover.load_stack("lab-prova"), StackPaths("lab-prova"))
    assert (bucket.bucket, bucket.endpoint, bucket.key, bucket.secret) == \
        ("podium-lab-prova", "offsite1", "AKEY", "asecret")
    conf = bucket.rclone_conf()
    assert "access_key_id = AKEY" in conf and "endpoint = https://offsite1" in conf
    assert bucket.path("podium-offsite", "secrets") == \
        "lost:podium-lab-prova/podium-offsite/secrets"


def test_own_bucket_is_a_second_remote_and_a_pgbackrest_repository():
    """Recovering into a stack whose repo1 is its bucket (decision 0283): the reader's
    rclone configuration names both buckets, and the staged copy is checked as an S3
    repository of B's bucket."""
    from kit.offsitefetch import OWN_REMOTE, S3_CA, posix_repo_lines

    secrets = StackPaths("lab-provb").secrets
    secrets.mkdir(parents=True)
    (secrets / "objectstore-key").write_text("BKEY\n")
    (secrets / "objectstore-secret").write_text("bsecret\n")
    own = recover.stack_bucket(recover.load_stack("lab-provb"), StackPaths("lab-provb"),
                               OWN_REMOTE)
    assert own.rclone_conf().startswith("[own]\n") and own.path("x") == "own:podium-lab-provb/x"
    lines = own.repo_lines("/recover-from-a/var/lib/pgbackrest")
    assert "repo1-type=s3" in lines and "repo1-path=/recover-from-a/var/lib/pgbackrest" in lines
    assert "repo1-s3-bucket=podium-lab-provb" in lines and "repo1-s3-key=BKEY" in lines
    assert f"repo1-storage-ca-file={S3_CA}" in lines and "repo1-s3-uri-style=path" in lines
    assert posix_repo_lines("/var/lib/x") == ["repo1-path=/var/lib/x"]
