"""./podium plan: what the Pulumi program would create for a cloud stack, offline.

Runs the program in infra/ under mocks (kit.pulumi_mocks): nothing is contacted, no Pulumi
CLI or token is needed. Prints resources by type, each server's firewall openings, the DNS
records and what the stack rents per month (kit.providers.bill). Addresses shown are
placeholders from documentation ranges. With a graph file, also draws the resources, their
parents (components, as boxes) and dependencies (arrows) with Graphviz's `dot`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pulumi

from kit import providers
from kit.console import table
from kit.errors import PodiumError
from kit.pulumi_mocks import Node, Recorder, install, settled
from kit.stack import Stack, load_stack

GRAPH_FORMATS = ("svg", "png")
GRAPH_PACKAGES = ["graphviz"]  # Debian package providing `dot`
# Fill colours by resource kind, so hosts, the load balancer and the data stand out.
GRAPH_FILL = {"Server": "#dbe9ff", "LoadBalancer": "#fff2c2", "Volume": "#e4f5e1",
              "S3Bucket": "#e4f5e1", "Bucket": "#e4f5e1"}


def run_program(stack: Stack) -> Recorder:
    """Run the Pulumi program for ``stack`` under mocks; return what it declared."""
    recorder = install(stack.name)
    from topology import build

    @pulumi.runtime.test
    def run():
        return settled(build(stack), lambda: None)

    run()
    return recorder


def firewall_rows(stack: Stack, recorder: Recorder) -> list[list[str]]:
    """[server, proto/port, sources, why] for every inbound rule declared."""
    rows = []
    if stack.provider == "hcloud":
        for name, fw in recorder.of_type("hcloud:index/firewall:Firewall"):
            for rule in fw["rules"]:
                rows.append([name.removesuffix("-fw"),
                             f"{rule['protocol']}/{rule.get('port') or '-'}",
                             ", ".join(rule["sourceIps"]), rule.get("description", "")])
    else:
        for name, group in recorder.of_type("scaleway:instance/securityGroup:SecurityGroup"):
            merged: dict[str, list[str]] = {}
            for rule in group["inboundRules"]:
                port = f"{rule['protocol'].lower()}/{int(rule['port']) if 'port' in rule else '-'}"
                merged.setdefault(port, []).append(rule["ipRange"])
            rows += [[name.removesuffix("-fw"), port, ", ".join(sources), ""]
                     for port, sources in merged.items()]
    return rows


def dns_rows(stack: Stack, recorder: Recorder) -> list[list[str]]:
    if stack.provider == "hcloud":
        return [[i["name"], i["type"], " ".join(v["value"] for v in i["records"])]
                for _, i in recorder.of_type("hcloud:index/zoneRrset:ZoneRrset")]
    rows = []
    for _, r in recorder.of_type("scaleway:domain/record:Record"):
        value = f"{int(r['priority'])} {r['data']}" if r["type"] == "MX" else r["data"]
        rows.append([r["name"] or "@", r["type"], value])
    return rows


def bill_rows(stack: Stack) -> tuple[list[list[str]], str]:
    lines = providers.bill(stack)
    rows = [[line.item, str(line.quantity), line.unit_text,
             "-" if line.eur is None else f"{line.eur:.2f}"] for line in lines]
    total = providers.total(lines)
    source = providers.PRICE_SOURCES[stack.provider]
    if total is None:
        summary = ("total: unknown, some prices are not verified (kit/providers.py; check "
                   f"{source.page})")
    else:
        summary = (f"total: EUR {total:.2f} per month excl. VAT, list prices of "
                   f"{source.taken} ({source.page})")
    return rows, summary


def plan(stack_name: str, graph: Path | None = None) -> None:
    stack = load_stack(stack_name)
    if stack.provider == "local":
        raise PodiumError(
            f"stack '{stack_name}' is a lab stack: plan is for cloud stacks",
            "see the lab's hosts with ./podium up, or plan a cloud stack: "
            "./podium plan --stack hetzner",
        )
    if graph is not None:
        _check_graph_target(graph)
    recorder = run_program(stack)
    print(f"Plan for stack '{stack_name}' ({stack.provider}, {stack.domain}), "
          "computed offline under mocks:\n")
    counts = Counter(typ for typ, _, _ in recorder.resources)
    print(table([[typ, str(n)] for typ, n in sorted(counts.items())], ["resource type", "count"]))
    print("\nFirewall openings per server (inbound):")
    print(table(firewall_rows(stack, recorder), ["server", "port", "from", "why"]))
    print(f"\nDNS records in zone {stack.domain}:")
    print(table(dns_rows(stack, recorder), ["name", "type", "value"]))
    rows, summary = bill_rows(stack)
    print("\nRented per month (object storage is billed by use and left out):")
    print(table(rows, ["item", "quantity", "EUR each", "EUR"]))
    print(summary)
    if graph is not None:
        render(stack, recorder, graph)
        print(f"\nwrote the resource graph to {graph}")


# --- Graph ------------------------------------------------------------------------------

def _check_graph_target(path: Path) -> None:
    if path.suffix.lstrip(".") not in GRAPH_FORMATS:
        raise PodiumError(f"--graph {path}: unknown format '{path.suffix}'",
                          f"name the file .{' or .'.join(GRAPH_FORMATS)}")
    if not path.parent.is_dir():
        raise PodiumError(f"--graph {path}: folder {path.parent} does not exist",
                          "create it first or choose another path")


def _quote(text: str) -> str:
    """A DOT string; newlines become DOT's line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _label(node: Node, stack: Stack) -> str:
    kind = node.typ.split(":")[-1]
    text = f"{node.name}\n{kind}"
    hosts = {h.name: h for h in stack.hosts}
    if node.custom and node.name in hosts and kind == "Server":
        text += "\nroles: " + ", ".join(hosts[node.name].roles)
    return text


def to_dot(stack: Stack, recorder: Recorder) -> str:
    """Graphviz DOT: components as clusters holding their children, arrows for dependencies
    (from the dependent resource to what it needs). Provider resources are left out."""
    nodes = {urn: n for urn, n in recorder.nodes.items()
             if not n.typ.startswith("pulumi:providers:")}
    children: dict[str | None, list[Node]] = {}
    for node in nodes.values():
        parent = node.parent if node.parent in nodes else None
        children.setdefault(parent, []).append(node)
    ids = {urn: f"r{index}" for index, urn in enumerate(nodes)}
    lines = [f"digraph {_quote('podium-' + stack.name)} {{",
             "  rankdir=LR; compound=true;",
             "  node [shape=box, style=rounded, fontname=Helvetica, fontsize=10];",
             f"  label={_quote(f'stack {stack.name} at {stack.provider} (offline plan)')};"]

    def emit(parent: str | None, indent: str) -> None:
        for node in children.get(parent, []):
            if node.custom:
                fill = GRAPH_FILL.get(node.typ.split(":")[-1])
                style = f', style="rounded,filled", fillcolor="{fill}"' if fill else ""
                lines.append(f"{indent}{ids[node.urn]} [label={_quote(_label(node, stack))}"
                             f"{style}];")
            else:
                lines.append(f"{indent}subgraph cluster_{ids[node.urn]} {{")
                lines.append(f"{indent}  label={_quote(node.name + ' (' + node.typ + ')')};"
                             " style=dashed;")
                emit(node.urn, indent + "  ")
                lines.append(f"{indent}}}")

    emit(None, "  ")
    for node in nodes.values():
        if not node.custom:
            continue
        for dep in node.depends_on:
            if dep in nodes and nodes[dep].custom:
                lines.append(f"  {ids[node.urn]} -> {ids[dep]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_binary() -> str:
    found = shutil.which("dot")
    if found:
        return found
    import os

    if os.geteuid() == 0:
        from kit import host

        host.ensure_packages(GRAPH_PACKAGES, lambda msg: print(f"==> {msg}", flush=True))
        found = shutil.which("dot")
    if not found:
        raise PodiumError("drawing the graph needs Graphviz's `dot`, which is not installed",
                          "install the Debian package: apt-get install graphviz")
    return found


def render(stack: Stack, recorder: Recorder, path: Path) -> None:
    """Write the plan's graph to ``path`` (.svg or .png) with `dot`."""
    fmt = path.suffix.lstrip(".")
    result = subprocess.run([_dot_binary(), f"-T{fmt}", "-o", str(path)],
                            input=to_dot(stack, recorder), text=True, capture_output=True)
    if result.returncode != 0:
        raise PodiumError(f"dot could not draw {path}: {result.stderr.strip()}",
                          "report this with the stack file; the plan above is unaffected")
