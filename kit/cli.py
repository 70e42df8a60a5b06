"""./podium: the operator's entry point. Every subcommand wraps a standard tool and says so."""

from __future__ import annotations

import argparse
import sys

from kit.errors import PodiumError

DEFAULT_STACK = "local"


def _stack_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", default=DEFAULT_STACK, metavar="NAME",
        help=f"stack file infra/stacks/Pulumi.NAME.yaml (default: {DEFAULT_STACK})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./podium",
        description="Run Podium: boot the local lab, converge it with Ansible, test it.",
        epilog="The standard tools stay usable directly: ansible-playbook playbooks/site.yml "
               "-i .podium/<stack>/inventory.yml, pytest tests/infra, pulumi up.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("up", help="bring the stack up (lab machines or cloud), converge, check",
                       description="Validate the stack file, then: for a lab stack, prepare "
                       "this host and boot one systemd-nspawn machine per host; for a cloud "
                       "stack (hcloud, scaleway), run pulumi up (needs the Pulumi CLI and the "
                       "provider's credentials) and write the inventory from its outputs. "
                       "Then run playbooks/site.yml and the testinfra checks. Re-running "
                       "converges again; an interrupted up is resumed by running up again.")
    _stack_arg(p)
    p.add_argument("--no-test", action="store_true",
                   help="skip the testinfra checks at the end")

    p = sub.add_parser("down", help="remove the stack (lab machines, or cloud servers)",
                       description="Lab stacks: stop and remove everything of the stack "
                       "(machines, bridge, .podium/<stack>/); shared caches are kept. Cloud "
                       "stacks: after confirmation, pulumi destroy --exclude-protected (data "
                       "volumes and the offsite bucket are protected and kept).")
    _stack_arg(p)
    p.add_argument("--yes", action="store_true",
                   help="cloud stacks: destroy without asking for the stack name (CI)")

    p = sub.add_parser("status", help="hosts, roles, addresses and whether they run",
                       description="Show every lab stack that is up, or only --stack NAME. "
                       "With --health: the alerts firing and each host's key figures, read "
                       "from the stack's Prometheus (exit status 1 when one is critical).")
    p.add_argument("--stack", default=None, metavar="NAME",
                   help=f"only this stack (--health: default {DEFAULT_STACK})")
    p.add_argument("--health", action="store_true",
                   help="firing alerts and per-host figures from Prometheus")
    p.add_argument("--prometheus", metavar="URL", default=None,
                   help="with --health: ask this Prometheus instead of the monitoring host's "
                   "private address (e.g. http://127.0.0.1:9090 through an SSH tunnel)")

    p = sub.add_parser("ssh", help="a shell (or a command) on a lab host as the admin user",
                       usage="./podium ssh [--stack NAME] HOST [-- COMMAND ...]",
                       description="ssh to HOST with the stack's lab key. Anything after -- "
                       "is run instead of a shell, e.g. ./podium ssh db1 -- sudo journalctl -u ssh")
    _stack_arg(p)
    p.add_argument("host", metavar="HOST", help="host name from the stack file")

    p = sub.add_parser("converge", help="run ansible-playbook playbooks/site.yml on the stack",
                       description="Run site.yml against .podium/<stack>/inventory.yml (the "
                       "stack must be up). Anything after -- goes to ansible-playbook, e.g. "
                       "./podium converge -- --check --diff",
                       usage="./podium converge [--stack NAME] [-- ANSIBLE-PLAYBOOK ARGS ...]")
    _stack_arg(p)

    p = sub.add_parser("deploy", help="rolling deploy of the app: one app host at a time",
                       description="Run playbooks/deploy.yml against .podium/<stack>/inventory.yml"
                       ": each app host in turn is drained in HAProxy (its requests finish), "
                       "updated to the app in app/ (migrations once, from the first host), "
                       "checked on /readyz and put back. Anything after -- goes to "
                       "ansible-playbook.",
                       usage="./podium deploy [--stack NAME] [-- ANSIBLE-PLAYBOOK ARGS ...]")
    _stack_arg(p)

    p = sub.add_parser("inventory", help="write a cloud stack's inventory from Pulumi outputs",
                       description="Write .podium/<stack>/inventory.yml (the lab's shape) from "
                       "the JSON of `pulumi stack output --json --stack NAME`, which it runs "
                       "unless --pulumi-outputs names a saved copy. Only the state backend is "
                       "read: it works when the stack's provider is gone.")
    _stack_arg(p)
    p.add_argument("--pulumi-outputs", metavar="FILE", default=None,
                   help="file holding `pulumi stack output --json` (default: run it)")

    p = sub.add_parser("plan", help="what Pulumi would create for a cloud stack (offline)",
                       description="Run the Pulumi program in infra/ under mocks, offline: "
                       "resources by type, firewall openings per server, DNS records, what it "
                       "rents per month; --graph draws the resources with Graphviz.")
    _stack_arg(p)
    p.add_argument("--graph", metavar="FILE.svg|png", default=None,
                   help="also draw the resources, their components and dependencies")

    p = sub.add_parser("bench", help="measure: e.g. bench converge (median of no-op runs)",
                       description="Benchmarks whose figures go to docs/perf.md.")
    p.add_argument("what", choices=["converge", "edge", "app", "proxy", "resources"],
                   help="converge: time site.yml runs on a stack that is up; edge: cached "
                   "page and media on one edge against a same-size static file; app: the "
                   "app's timeline, posting and fan-out figures on synthetic data (no lab "
                   "needed); proxy: uncached timelines through HAProxy (or an edge, "
                   "--target) to the app hosts; "
                   "resources: memory (PSS) and CPU of each running lab guest")
    _stack_arg(p)
    p.add_argument("--runs", type=int, default=3, help="how many runs (default: 3)")
    p.add_argument("--workers", type=int, default=2, help="app: web worker processes (2)")
    p.add_argument("--seconds", type=int, default=20,
                   help="app, proxy: seconds per load run; resources: sampling window (20)")
    p.add_argument("--clients", type=int, default=16,
                   help="app (home reads), proxy: concurrent keep-alive connections (16)")
    p.add_argument("--target", choices=["proxy", "edge", "both"], default="proxy",
                   help="proxy: where the load enters: HAProxy's frontend from the controller "
                   "(proxy, the default), an edge from the edge host itself (edge: edge, "
                   "HAProxy and app hosts), or both side by side from the edge host")
    p.add_argument("--pages", default="post,landing",
                   help="edge: the app's cached pages to measure, comma-separated, of post, "
                   "landing, public (default: post,landing)")
    p.add_argument("--encoding", default="",
                   help="edge: an Accept-Encoding sent with every request, e.g. gzip "
                   "(default: none)")
    p.add_argument("--accounts", type=int, default=100_000, help="app: accounts (100000)")
    p.add_argument("--compare-with", metavar="SRC", default=None,
                   help="app: only home reads, alternating --runs times between the app "
                   "package under SRC (e.g. an older checkout's app/src) and this one")
    p.add_argument("--baseline-env", metavar="KEY=VALUE", action="append", default=[],
                   help="app, with --compare-with: a PODIUM_* setting for the baseline's "
                   "server only (repeatable), e.g. --compare-with app/src --baseline-env "
                   "PODIUM_TOKEN_CACHE_ENTRIES=0 compares one setting on the same code")
    p.add_argument("--follows", type=int, default=1_000_000, help="app: follow edges (1000000)")
    p.add_argument("--pin", action="store_true",
                   help="app: the web workers on cores of their own, PostgreSQL, Redis and wrk "
                   "on the rest (needs more cores than --workers): the rate per app core")
    p.add_argument("--posts", type=int, default=1_000_000, help="app: posts (1000000)")

    p = sub.add_parser("drill", help="recovery drills: restore from backups, fail over",
                       description="restore: record a manifest, destroy the database and "
                       "media hosts, rebuild and converge them, restore PostgreSQL (pgBackRest, "
                       "latest or --to), media and secrets, verify, smoke test; reports RTO "
                       "and RPO. failover: under a steady writer, stop the primary, promote "
                       "the replica, repoint PgBouncer and the app, rebuild the old primary "
                       "as a replica; reports the write-unavailability window and lost writes."
                       " Both save a Markdown report in docs/drills/.")
    p.add_argument("what", choices=["restore", "failover"])
    _stack_arg(p)
    p.add_argument("--to", metavar="TIME", default=None,
                   help="restore: point in time, ISO 8601 with its zone "
                        "(e.g. 2026-11-21T17:05:00Z); default: the latest archived write")
    p.add_argument("--write-seconds", type=float, default=20, metavar="S",
                   help="restore: how long the writer posts after the manifest (20)")
    p.add_argument("--warmup", type=float, default=10, metavar="S",
                   help="failover: seconds of steady writes before the primary stops (10)")
    p.add_argument("--crash", action="store_true",
                   help="failover: kill the primary's host (SIGKILL, no shutdown) instead of "
                        "stopping it cleanly")
    p.add_argument("--allow-cloud", action="store_true",
                   help="accept a cloud stack (drills destroy hosts; refused without it)")

    p = sub.add_parser("recover", help="bring the platform back in another stack from the "
                       "offsite backup of a lost one",
                       description="Cross-provider recovery (docs/runbooks/"
                       "cross-provider-recovery.md): --stack takes the identity (secrets), "
                       "database (pgBackRest, latest or --to) and media of --from from its "
                       "offsite bucket (or its surviving backup host, for a lab stack without "
                       "one), verifies against the manifest recorded "
                       "with --record-manifest, smoke tests, and saves a report with RTO and "
                       "RPO in docs/drills/.")
    p.add_argument("--stack", required=True, metavar="NAME",
                   help="the stack to recover into (the second provider); must be up")
    p.add_argument("--from", dest="source", required=True, metavar="NAME",
                   help="the lost stack, whose offsite copies are read")
    p.add_argument("--to", metavar="TIME", default=None,
                   help="point in time, ISO 8601 with its zone; default: the latest archived "
                        "write")
    for flag, text in (
            ("--record-manifest", "only record --from's data manifest (while it is alive) in "
             ".podium/FROM/, for the check after recovery"),
            ("--lab-lose-source", "lab only: destroy the hosts of --from (its backup host is "
             "kept when it is the offsite store); a cloud stack is fenced by hand"),
            ("--allow-cloud", "accept two cloud stacks (refused without it): recovery "
             "replaces --stack's database and secrets")):
        p.add_argument(flag, action="store_true", help=text)

    p = sub.add_parser("dev", help="the app alone on 127.0.0.1 against throwaway databases",
                       description="Serve the app (and its queue worker) on 127.0.0.1 against a "
                       "throwaway PostgreSQL and Redis, with mail written to a local Maildir. "
                       "Everything is removed on Ctrl-C.")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    p.add_argument("--mode", choices=["social", "desk"], default="social")
    p.add_argument("--registration", choices=["open", "approval", "invite", "closed"],
                   default="open")

    p = sub.add_parser("test", help="run the test tiers: unit, app, then the lab",
                       description="Tier 1 unit and tier 2 app tests, then (without --fast) "
                       "the lab tier: up the local stack, converge twice (the second must "
                       "change nothing), testinfra, lab tests, down.")
    p.add_argument("--fast", action="store_true", help="only the unit and app tiers")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" belongs to the wrapped tool (ssh, ansible-playbook).
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.passthrough = passthrough
    try:
        return _dispatch(args)
    except PodiumError as err:
        print(err.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: nothing is lost; run the same command again to resume",
              file=sys.stderr)
        return 130


def _cloud_stack(name: str):
    """The validated stack when its file names a cloud provider; None for lab stacks (and for
    names without a valid file, which the lab's own up/down report or clean up)."""
    from kit.stack import load_stack

    try:
        stack = load_stack(name)
    except PodiumError:
        return None
    return stack if stack.provider != "local" else None


def _dispatch(args: argparse.Namespace) -> int:
    from kit import lab, testing

    if args.command == "up":
        cloud_stack = _cloud_stack(args.stack)
        if cloud_stack is not None:
            from kit import cloud

            cloud.up(cloud_stack, run_tests=not args.no_test)
        else:
            lab.up(args.stack, run_tests=not args.no_test)
    elif args.command == "down":
        cloud_stack = _cloud_stack(args.stack)
        if cloud_stack is not None:
            from kit import cloud

            return 0 if cloud.down(cloud_stack, assume_yes=args.yes) else 1
        lab.down(args.stack)
    elif args.command == "status":
        if args.health:
            from kit import health

            return health.health(args.stack or DEFAULT_STACK, args.prometheus)
        lab.status(args.stack)
    elif args.command == "ssh":
        lab.shell(args.stack, args.host, args.passthrough)
    elif args.command == "converge":
        lab.converge(args.stack, args.passthrough)
    elif args.command == "deploy":
        lab.converge(args.stack, args.passthrough, playbook="playbooks/deploy.yml")
    elif args.command == "inventory":
        from pathlib import Path

        from kit import cloud
        from kit.stack import load_stack

        stack = load_stack(args.stack)
        if stack.provider == "local":
            raise PodiumError(f"stack '{stack.name}' is a lab stack: ./podium up writes its "
                              "inventory", f"./podium up --stack {stack.name}")
        path = (cloud.write_inventory(stack, Path(args.pulumi_outputs)) if args.pulumi_outputs
                else cloud.inventory_from_state(stack))
        print(f"wrote {path}")
    elif args.command == "plan":
        from pathlib import Path

        from kit.plan import plan

        plan(args.stack, Path(args.graph) if args.graph else None)
    elif args.command == "bench":
        if args.what == "app":
            from kit import bench_app

            bench_app.run(args.workers, args.seconds, args.accounts, args.follows, args.posts,
                          compare_with=args.compare_with, runs=args.runs,
                          connections=args.clients, pin=args.pin,
                          baseline_env=bench_app.baseline_env(args.baseline_env,
                                                              args.compare_with))
        elif args.what == "resources":
            from kit import bench_resources

            bench_resources.run(args.stack, args.seconds)
        else:
            from kit import bench

            if args.what == "edge":
                bench.edge(args.stack, args.runs, pages=tuple(args.pages.split(",")),
                           encoding=args.encoding)
            elif args.what == "proxy":
                bench.proxy(args.stack, args.runs, args.seconds, args.clients, args.target)
            else:
                bench.converge(args.stack, args.runs)
    elif args.command == "test":
        return testing.run(fast=args.fast)
    elif args.command == "drill":
        from kit import drill

        if args.what == "restore":
            if args.crash:
                raise PodiumError("--crash belongs to drill failover, not drill restore")
            result = drill.restore(args.stack, args.to, args.allow_cloud, args.write_seconds)
        else:
            if args.to is not None:
                raise PodiumError("--to belongs to drill restore, not drill failover")
            result = drill.failover(args.stack, args.allow_cloud, args.warmup, args.crash)
        return 0 if result.ok else 1
    elif args.command == "recover":
        from kit import recover

        if args.record_manifest and args.lab_lose_source:
            raise PodiumError("--record-manifest and --lab-lose-source are separate steps",
                              "record the manifest first, then lose the source, then recover")
        if (args.record_manifest or args.lab_lose_source) and args.to is not None:
            raise PodiumError("--to belongs to the recovery itself, not to --record-manifest "
                              "or --lab-lose-source")
        if args.record_manifest:
            recover.record_manifest(args.stack, args.source, args.allow_cloud)
        elif args.lab_lose_source:
            recover.lose_source(args.stack, args.source)
        else:
            result = recover.recover(args.stack, args.source, args.to, args.allow_cloud)
            return 0 if result.ok else 1
    elif args.command == "dev":
        from kit import dev

        return dev.run(args.port, args.mode, args.registration)
    return 0
