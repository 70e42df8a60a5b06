"""kit/cgroups.py: which hierarchies a lab machine gets its own cgroup in."""

from __future__ import annotations

from pathlib import Path

from kit import cgroups

HYBRID = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
29 30 0:26 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
"""

UNIFIED = """\
24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
29 30 0:26 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
"""


def test_hybrid_host_uses_the_unified_and_the_named_systemd_hierarchies():
    assert cgroups.hierarchies(HYBRID) == [Path("/sys/fs/cgroup/unified"),
                                           Path("/sys/fs/cgroup/systemd")]


def test_unified_host_uses_its_single_hierarchy():
    assert cgroups.hierarchies(UNIFIED) == [Path("/sys/fs/cgroup")]


def test_each_machine_gets_its_own_directory():
    a = cgroups.machine_dirs("local-app1", HYBRID)
    b = cgroups.machine_dirs("local-app2", HYBRID)
    assert a[0] == Path("/sys/fs/cgroup/unified/podium-lab/local-app1")
    assert not set(a) & set(b)


def test_remove_leaves_a_cgroup_that_cannot_be_removed(tmp_path, monkeypatch):
    """rmdir on a cgroup with processes fails: remove() must go on quietly (here a plain
    directory with a file stands in for a busy cgroup)."""
    machine = tmp_path / "podium-lab" / "m"
    (machine / "payload" / "system.slice").mkdir(parents=True)
    (machine / "supervisor").mkdir()
    (machine / "supervisor" / "busy").write_text("")
    monkeypatch.setattr(cgroups, "hierarchies", lambda mountinfo=None: [tmp_path])
    cgroups.remove("m")
    assert not (machine / "payload").exists()
    assert (machine / "supervisor" / "busy").exists()
