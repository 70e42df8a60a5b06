"""./podium plan: the offline plan per provider, its graph and the monthly bill of items."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kit import providers
from kit.paths import REPO
from kit.stack import load_stack


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "kit", "plan", *args],
        capture_output=True, text=True, cwd=REPO, timeout=180,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )


def test_scaleway_plan_lists_security_group_openings_and_records():
    result = _plan("--stack", "scaleway-mini")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "scaleway:instance/server:Server" in out
    assert "solo    tcp/22" in out and "203.0.113.0/24" in out
    assert "_dmarc" in out and "10 solo.example.org." in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (Debian: graphviz) missing")
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_plan_graph_is_written_and_names_the_resources(tmp_path, suffix):
    path = tmp_path / f"plan.{suffix}"
    result = _plan("--stack", "hetzner", "--graph", str(path))
    assert result.returncode == 0, result.stderr
    assert path.stat().st_size > 1000
    if suffix == "svg":
        svg = path.read_text().replace("&#45;", "-")
        for name in ("db1", "mail1", "app-lb", "offsite-backups", "private", "db1-data"):
            assert f">{name}<" in svg, name
        assert "roles: postgres" in svg
    else:
        assert path.read_bytes().startswith(b"\x89PNG")


def test_graph_dot_has_components_as_clusters_and_dependency_edges():
    from kit.plan import run_program, to_dot

    stack = load_stack("scaleway-mini")
    dot = to_dot(stack, run_program(stack))
    assert "subgraph cluster_" in dot and 'label="servers (podium:scaleway:Servers)"' in dot
    assert '"solo\\nServer\\nroles: edge, proxy' in dot
    assert " -> " in dot  # e.g. the server needs its security group and IP


def test_graph_refuses_an_unknown_format_before_running_anything(capsys, tmp_path):
    from kit.cli import main

    assert main(["plan", "--stack", "hetzner", "--graph", str(tmp_path / "g.gif")]) == 2
    assert "unknown format '.gif'" in capsys.readouterr().err


@pytest.mark.parametrize("stack_name", ["hetzner", "scaleway", "hetzner-mini", "scaleway-mini"])
def test_bill_counts_what_the_stack_rents(stack_name):
    stack = load_stack(stack_name)
    lines = {line.item: line.quantity for line in providers.bill(stack)}
    sizes = providers.SIZES[stack.provider]
    assert sum(lines.get(sizes[s], 0) for s in ("small", "medium", "large")) == len(stack.hosts)
    assert lines.get(providers.LOAD_BALANCER_TYPE[stack.provider], 0) == (
        1 if stack.load_balancer == "provider" else 0)
    data = [h for h in stack.hosts if {"postgres", "media", "backup"} & set(h.roles)]
    assert lines["volume-gb"] == sum(providers.VOLUME_GB[h.size] for h in data)


def test_total_is_unknown_while_any_price_is_unverified():
    lines = [providers.BillLine("a", 2, 1.5), providers.BillLine("b", 1, None)]
    assert providers.total(lines) is None
    assert providers.total(lines[:1]) == 3.0


@pytest.mark.parametrize("stack_name", ["hetzner", "hetzner-mini", "scaleway", "scaleway-mini"])
def test_production_doc_cost_tables_are_the_price_tables(stack_name):
    doc = (REPO / "docs" / "production.md").read_text()
    assert providers.bill_markdown(load_stack(stack_name)) in doc
    for page in providers.PRICE_PAGES.values():
        assert page in doc
