"""./podium bench: measurements recorded in docs/perf.md. Medians over several runs, because
these machines are noisy; every run's figure is printed too."""

from __future__ import annotations

import secrets
import statistics
import time

from kit.ansible import run_playbook
from kit.errors import PodiumError
from kit.paths import StackPaths, shown


def converge(stack_name: str, runs: int) -> None:
    """Time ``runs`` converges of site.yml on a stack that is up (normally all no-ops)."""
    paths = StackPaths(stack_name)
    if not paths.inventory.is_file():
        raise PodiumError(f"stack '{stack_name}' is not up",
                          f"./podium up --stack {stack_name} first")
    timings = []
    for number in range(1, runs + 1):
        started = time.monotonic()
        report = run_playbook(paths, "playbooks/site.yml", "bench-converge", echo=False)
        took = time.monotonic() - started
        timings.append(took)
        changed = sum(h["changed"] for h in report.get("hosts", {}).values())
        print(f"run {number}/{runs}: {took:.1f}s, {len(report.get('hosts', {}))} hosts, "
              f"{changed} changed", flush=True)
    print(f"converge of site.yml on stack '{stack_name}': median {statistics.median(timings):.1f}s"
          f" over {runs} runs (min {min(timings):.1f}s, max {max(timings):.1f}s); "
          f"logs in {shown(paths.logs)}")


# ./podium bench edge ---------------------------------------------------------------------
# Sizes of the two cached objects and their static twins: a typical anonymous post page and
# a typical resized image.
PAGE_SIZE = 16 * 1024
MEDIA_SIZE = 100 * 1024
BENCH_ROOT = "/var/lib/podium-edge/bench"  # roles/edge vars: __edge_bench_root
# Wait after the warm-up load: the edge's candidate log flushes every second, and its hot
# pages service then promotes the page (decision 0304).
WARM_UP_SECONDS = 2


# The static references, by the name the table shows: loopback-only servers of the edge
# (roles/edge, podium-edge.conf) serving the twins from BENCH_ROOT on the same TLS listener,
# and whether the twin's address is as long as the cached object's (decision 0303).
# "logged" logs each request as the platform's server does, so that beside a cached page only
# the cache path differs (decision 0275), at an address of the object's length: the ratio
# issue 6 is judged on. "logged, short name" is the same server at the twin's short name (the
# judged reference of sessions 6-15); "bare" logs nothing at the short name (sessions 1-5).
# Both are kept so that earlier figures stay comparable.
REFERENCES = {"logged": ("edge-bench-logged.invalid", True),
              "logged, short name": ("edge-bench-logged.invalid", False),
              "bare": ("edge-bench.invalid", False)}


def twin_name(number: int, path: str) -> str:
    """The name of object ``number``'s static twin whose address ("/" + name) is as long as
    the object's ``path`` (query included), or as near as a file name allows ("/0" for "/").

    A request's address costs the edge work whatever answers it: HTTP/2 clients send :path
    as a literal on every request (nghttp2 never adds it to the header table), and nginx
    decodes it, parses it and writes it to the access log. A post page's address is 50-60
    characters; against a twin at "/twin-0" that alone made the file about 5% cheaper
    (docs/perf.md, session 16)."""
    length = max(len(path) - 1, len(str(number)))
    return (f"{number}-" + "t" * length)[:length]


# The edge's nginx workers' CPU time (user + system, clock ticks) on the edge host.
WORKER_TICKS = ("$(for p in $(pgrep -f '^nginx: worker'); do cat /proc/$p/stat; done "
                "| awk '{s+=$14+$15} END {print s+0}')")


def _h2load(run, url: str, requests: int, clients: int) -> tuple[float, float]:
    """Requests per second of one h2load run on the edge host, over its loopback (HTTP/2,
    TLS, the platform's name in SNI and :authority), and the nginx workers' CPU milliseconds
    per 1000 requests during it (steadier than the rate on a shared machine). ``url``:
    h2load's arguments, the quoted URL last. Raises if any request was not a 2xx."""
    out = run(f"a={WORKER_TICKS}; h2load -n {requests} -c {clients} -m 10 -t 1 "
              f"--connect-to=127.0.0.1:443 {url} 2>&1; b={WORKER_TICKS}; "
              "echo \"worker ticks $((b - a)) per $(getconf CLK_TCK)\"")
    codes = next((li for li in out.splitlines() if li.startswith("status codes:")), "")
    if f"{requests} 2xx" not in codes:
        raise PodiumError(f"h2load against {url} did not get {requests} 2xx answers",
                          "check the edge's error log (./podium ssh EDGE -- sudo tail "
                          "/var/log/nginx/error.log)", detail=out[-2000:])
    line = next(li for li in out.splitlines() if li.startswith("finished in"))
    ticks, per_second = next(li for li in out.splitlines()
                             if li.startswith("worker ticks")).split()[2::2]
    cpu_ms = int(ticks) * 1000 / int(per_second) * 1000 / requests
    return float(line.split(",")[1].split()[0]), cpu_ms


# The app's anonymous pages ./podium bench edge can measure (--pages): the post page and the
# landing page are issue 4's; "public" is the public timeline under a fresh cache key.
EDGE_PAGES = ("post", "landing", "public")


def edge(stack_name: str, runs: int, requests: int = 20000, clients: int = 32,
         pages: tuple[str, ...] = ("post", "landing"), encoding: str = "") -> None:
    """Cached pages and cached media served by one edge, each against nginx serving a static
    file of the same size on the same host and TLS listener (the references of REFERENCES:
    logged like the platform's server at an address of the object's length, the same at a
    short name, and bare), runs alternated side by side.
    Each client stays under nginx's 1000 requests per connection (h2load does not reconnect).

    The load generator (h2load, Debian's nghttp2-client, installed on the edge for the run)
    runs on the edge host itself against its loopback, so no traffic leaves the lab host and
    the edge's rate limits (loopback exempt) do not apply. With the real app, ``pages`` (of
    EDGE_PAGES) at the addresses visitors use: a new post's page (by a new publisher, made
    through HAProxy's frontend) and the landing page; the public timeline under a new cache
    key. Pages are public, max-age=30: past it the edge serves the copy while it revalidates
    in the background. Where the app port is free, the stand-in's 16 KiB page
    (kit/standin.py) instead. ``encoding``: an Accept-Encoding for every request (e.g.
    "gzip"), to measure what compression costs; the static twins are then sent compressed
    the same way only if their type is compressible, so the default is none.
    """
    import hashlib
    import subprocess

    from kit import edgehttp, ssh, standin
    from kit.lab import _load_state
    from kit.stack import role_ports

    stack = _load_state(stack_name)
    paths = StackPaths(stack_name)
    if stack is None:
        raise PodiumError(f"stack '{stack_name}' is not up", f"./podium up --stack {stack_name}")
    unknown = sorted(set(pages) - set(EDGE_PAGES))
    if unknown or not pages:
        raise PodiumError(f"bench edge: unknown page(s) {unknown or pages}",
                          f"--pages takes a comma-separated list of {', '.join(EDGE_PAGES)}")
    by_role = {role: [h for h in stack.hosts if role in h.roles]
               for role in ("edge", "app", "media", "proxy")}
    missing = [role for role, hosts in by_role.items() if not hosts]
    if missing:
        raise PodiumError(f"stack '{stack_name}' has no {', '.join(missing)} host",
                          "bench edge needs an edge, a load balancer, a media host and app "
                          "hosts")
    edge_address = str(by_role["edge"][0].address)

    def on(address: str, command: str, stdin: bytes | None = None) -> str:
        result = subprocess.run(["ssh", *ssh.base_args(paths), f"{stack.admin.user}@{address}",
                                 command], input=stdin, capture_output=True, timeout=600)
        if result.returncode != 0:
            raise PodiumError(f"bench: '{command}' failed on {address}",
                              "check the host with ./podium ssh",
                              detail=result.stderr.decode(errors="replace")[-2000:])
        return result.stdout.decode(errors="replace")

    print(f"edge bench on {by_role['edge'][0].name} ({edge_address}): {runs} rounds of "
          f"{requests} requests, {clients} HTTP/2 clients"
          + (f", Accept-Encoding: {encoding}" if encoding else ""), flush=True)
    on(edge_address, "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                     "nghttp2-client >/dev/null")
    started = [str(h.address) for h in by_role["app"]
               if standin.start(stack, paths, str(h.address))]
    headers = {"Accept-Encoding": encoding} if encoding else {}
    try:
        # The cached objects: pages from the app (or stand-in), a file on the media origin.
        if started:
            page_paths = {"stand-in page": f"/public/bench-{secrets.token_hex(4)}"
                                           f"?size={PAGE_SIZE}&ttl=3600"}
        else:
            page_paths = _app_pages(stack, paths, by_role, pages)
        media_body = secrets.token_bytes(MEDIA_SIZE)
        digest = hashlib.sha256(media_body).hexdigest()
        media_path = f"/m/{digest[:2]}/{digest[2:4]}/{digest}.bin"
        origin = f"http://{by_role['media'][0].address}:{role_ports()['media'][0]['port']}"
        on(str(by_role["app"][0].address),
           "python3 -c 'import sys,urllib.request; urllib.request.urlopen(urllib.request."
           "Request(sys.argv[1], data=sys.stdin.buffer.read(), method=\"PUT\"), timeout=10)' "
           f"{origin}{media_path}", stdin=media_body)
        if started:
            time.sleep(5)  # health checks put fresh stand-ins in the pool
        lab_root = paths.state / "acme" / "root.pem"  # exported by the acme role
        tls = edgehttp.context(lab_root.read_text() if lab_root.is_file() else
                               on(edge_address, "sudo cat /etc/ssl/podium-edge/fullchain.pem"))
        objects = [(label, stack.domain, path) for label, path in page_paths.items()]
        objects.append(("media file", f"media.{stack.domain}", media_path))
        sizes = {}
        for label, name, path in objects:
            # A copy past its max-age answers UPDATING (stale) once while it is refreshed.
            for _ in range(5):
                answer = edgehttp.request(edge_address, name, path, tls, headers=headers)
                if answer.headers.get("x-cache-status") == "HIT":
                    break
                time.sleep(0.5)
            if (answer.status, answer.headers.get("x-cache-status")) != (200, "HIT"):
                raise PodiumError(f"https://{name}{path} is not served from the cache "
                                  f"(status {answer.status}, X-Cache-Status "
                                  f"{answer.headers.get('x-cache-status')})",
                                  "check the backends with ./podium bench edge's stack up")
            sizes[label] = len(answer.body)  # as sent: compressed when encoding is given
        # The static twins, byte for byte the sizes sent (random bytes: never compressible):
        # one at a short name, and a copy at a name as long as the object's address.
        twins = {label: {False: f"twin-{number}", True: twin_name(number, path)}
                 for number, (label, _, path) in enumerate(objects)}
        # The directory holds only the bench's twins: the last run's are replaced.
        on(edge_address, f"sudo sh -c 'find {BENCH_ROOT} -maxdepth 1 -type f -delete && "
           + " && ".join(
            f"head -c {sizes[label]} /dev/urandom > {BENCH_ROOT}/{names[False]} && "
            f"cp {BENCH_ROOT}/{names[False]} {BENCH_ROOT}/{names[True]}"
            for label, names in twins.items()) + "'")
        extra = f"-H 'Accept-Encoding: {encoding}' " if encoding else ""
        cases = {}
        for label, name, path in objects:
            cases[(label, "cached")] = f"https://{name}{path}"
            for kind, (server, same_length) in REFERENCES.items():
                cases[(label, kind)] = f"https://{server}/{twins[label][same_length]}"
        # A page the edge answers tens of thousands of times a second is a hot page, which the
        # edge serves as a file once it has seen it hot (roles/edge, decision 0304): one
        # warm-up load per object, then the time the edge takes to promote it.
        for _label, name, path in objects:
            _h2load(lambda c: on(edge_address, c), extra + f"'https://{name}{path}'",
                    max(requests // 10, clients), clients)
        time.sleep(WARM_UP_SECONDS)
        results: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
        cpu: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
        for number in range(1, runs + 1):
            for case, url in cases.items():
                rate, cpu_ms = _h2load(lambda c: on(edge_address, c), extra + f"'{url}'",
                                       requests, clients)
                results[case].append(rate)
                cpu[case].append(cpu_ms)
            print(f"round {number}/{runs}: " + ", ".join(
                f"{label} {kind} {values[-1]:.0f} req/s"
                for (label, kind), values in results.items()), flush=True)
    finally:
        for address in started:
            standin.stop(stack, paths, address)
    median = {case: statistics.median(values) for case, values in results.items()}
    # Each round measures a pair back to back, so the median of the per-round ratios is the
    # figure least moved by other load on the machine; the ratio of medians is shown too.
    print("\n| Object | Size | Static reference | Edge cache (req/s) | Static file (req/s) "
          "| Ratio of medians | Median of per-round ratios | Per round | nginx CPU ms/1000 req, "
          "cached / static (medians) | CPU ratio static/cached |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, _, _ in objects:
        for kind in REFERENCES:
            cached, static = results[(label, "cached")], results[(label, kind)]
            ratios = [c / s for c, s in zip(cached, static, strict=True)]
            cpu_cached, cpu_static = (statistics.median(cpu[(label, k)])
                                      for k in ("cached", kind))
            print(f"| {label} | {sizes[label] / 1024:.1f} KiB | {kind} | "
                  f"{median[(label, 'cached')]:.0f} | {median[(label, kind)]:.0f} | "
                  f"{median[(label, 'cached')] / median[(label, kind)]:.2f} | "
                  f"**{statistics.median(ratios):.2f}** | "
                  f"{', '.join(f'{r:.2f}' for r in ratios)} | "
                  f"{cpu_cached:.1f} / {cpu_static:.1f} | {cpu_static / cpu_cached:.2f} |")
    print(f"\nmedians over {runs} alternated rounds; backends: "
          f"{'stand-in (kit/standin.py)' if started else 'the deployed app'}; pages: "
          + ", ".join(f"{label} https://{stack.domain}{path}"
                      for label, path in page_paths.items()))


def _app_pages(stack, paths, by_role: dict, pages: tuple[str, ...]) -> dict[str, str]:
    """The real app's anonymous pages to bench, by label: path."""
    from kit import labapi
    from kit.stack import role_ports

    found = {}
    if "post" in pages:
        frontend = (str(by_role["proxy"][0].address),
                    next(p["port"] for p in role_ports()["proxy"] if p["proto"] == "tcp"))
        publisher = labapi.account(stack, paths, frontend, str(by_role["app"][0].address),
                                   "benchpub", publisher=True)
        post = labapi.call(stack, frontend, "POST", "/api/v1/statuses", publisher["token"],
                           {"status": "A post for the edge bench: its page is what a shared "
                                      "link brings a visitor to, served from the edge's cache. "
                                      "#podium"})
        found["post page"] = f"/@{publisher['name']}/{post['id']}"
    if "landing" in pages:
        found["landing page"] = "/"
    if "public" in pages:
        found["public timeline"] = f"/public?bench={secrets.token_hex(4)}"
    return found


# ./podium bench proxy ----------------------------------------------------------------------
TARGETS = ("proxy", "edge", "both")


def _remote_loadgen(stack, paths, address: str):
    """A load runner on a lab host: kit/loadgen.py copied to a private temporary folder there,
    each run's spec (with the token and the CA) on stdin. Returns (run, cleanup)."""
    import json
    from pathlib import Path

    from kit import labapi, loadgen, ssh

    folder = labapi.on(stack, paths, address, "umask 077 && mktemp -d")
    script = Path(loadgen.__file__).read_text()
    result = ssh.run(paths, stack.admin.user, address, f"cat > {folder}/loadgen.py",
                     input=script)
    if result.returncode != 0:
        raise PodiumError(f"bench: could not copy the load generator to {address}",
                          "check the host with ./podium ssh", detail=result.stderr[-2000:])

    def run(spec: dict) -> loadgen.Result:
        answer = ssh.run(paths, stack.admin.user, address, f"python3 {folder}/loadgen.py",
                         input=json.dumps(spec), timeout=spec["seconds"] + 120)
        if answer.returncode != 0:
            raise PodiumError(f"bench: the load generator failed on {address}",
                              "check the host with ./podium ssh",
                              detail=answer.stderr[-2000:])
        return loadgen.from_json(answer.stdout)

    def cleanup() -> None:
        ssh.run(paths, stack.admin.user, address, f"rm -rf {folder}")

    return run, cleanup


def proxy(stack_name: str, runs: int, seconds: int = 20, clients: int = 16,
          target: str = "proxy") -> None:
    """Uncached timeline throughput to the app hosts: a logged-in home timeline (never cached
    by an edge) and the anonymous public timeline with a cache-busting query (which an edge
    passes through). ``clients`` keep-alive connections, ``runs`` rounds of ``seconds`` per
    case and target, alternated; every non-2xx answer is counted and fails the bench.

    ``target``: "proxy", HAProxy's private frontend, load from the controller
    (kit/loadgen.py); "edge", the whole path a visitor's request takes (edge over TLS, HAProxy,
    app hosts), load from the edge host to its own loopback (the controller would be held to
    the edge's per-client rate limit; loopback is exempt); "both", the two side by side, both
    loaded from the edge host so that the edge's hop is the only difference, with the
    per-round ratio edge/proxy.
    """
    from kit import labapi, loadgen
    from kit.lab import _load_state
    from kit.stack import role_ports

    if target not in TARGETS:
        raise PodiumError(f"bench proxy: unknown target '{target}'",
                          f"choose one of {', '.join(TARGETS)}")
    stack = _load_state(stack_name)
    paths = StackPaths(stack_name)
    if stack is None:
        raise PodiumError(f"stack '{stack_name}' is not up", f"./podium up --stack {stack_name}")
    proxies = [h for h in stack.hosts if "proxy" in h.roles]
    apps = [h for h in stack.hosts if "app" in h.roles]
    edges = [h for h in stack.hosts if "edge" in h.roles]
    if not proxies or not apps:
        raise PodiumError(f"stack '{stack_name}' has no proxy or no app host",
                          "bench proxy needs HAProxy in front of the real app")
    if target != "proxy" and not edges:
        raise PodiumError(f"stack '{stack_name}' has no edge host",
                          "use --target proxy, or a stack with an edge (e.g. lab-edge)")
    frontend = (str(proxies[0].address),
                next(p["port"] for p in role_ports()["proxy"] if p["proto"] == "tcp"))
    app = str(apps[0].address)
    # Data: one publisher with 40 posts, one reader following it.
    publisher = labapi.account(stack, paths, frontend, app, "benchpub", publisher=True)
    reader = labapi.account(stack, paths, frontend, app, "benchread", publisher=False)
    labapi.call(stack, frontend, "POST", f"/api/v1/accounts/{publisher['id']}/follow",
                reader["token"])
    for number in range(40):
        labapi.call(stack, frontend, "POST", "/api/v1/statuses", publisher["token"],
                    {"status": f"bench post {number}"})
    time.sleep(12)  # past the writers' read-your-writes window: reads may use the replica
    cases = {
        "home timeline (logged in)": dict(
            path="/api/v1/timelines/home?limit=20",
            headers={"Authorization": f"Bearer {reader['token']}"}),
        "public timeline (anonymous, cache-busting)": dict(
            path="/api/v1/timelines/public?limit=20&_={n}", headers={}),
    }
    base = {"host": stack.domain, "seconds": seconds, "clients": clients}
    cleanup = None
    if target == "proxy":
        def on_controller(spec: dict) -> loadgen.Result:
            return loadgen.run_for(spec["seconds"], address=spec["address"], port=spec["port"],
                                   host=spec["host"], path_of=loadgen.counted(spec["path"]),
                                   clients=spec["clients"], headers=spec["headers"])
        targets = {"HAProxy": (on_controller, {"address": frontend[0], "port": frontend[1]})}
        where = "the controller"
    else:
        on_edge, cleanup = _remote_loadgen(stack, paths, str(edges[0].address))
        lab_root = paths.state / "acme" / "root.pem"  # exported by the acme role
        ca_pem = (lab_root.read_text() if lab_root.is_file() else
                  labapi.on(stack, paths, str(edges[0].address),
                            "sudo cat /etc/ssl/podium-edge/fullchain.pem"))
        targets = {"edge": (on_edge, {"address": "127.0.0.1", "port": 443, "ca_pem": ca_pem})}
        if target == "both":
            targets = {"HAProxy": (on_edge, {"address": frontend[0], "port": frontend[1]}),
                       **targets}
        where = f"{edges[0].name} (the edge host)"
    print(f"proxy bench, {' and '.join(targets)} -> {proxies[0].name} -> "
          f"{', '.join(h.name for h in apps)}: {runs} rounds of {seconds}s per case and target,"
          f" {clients} clients on {where}", flush=True)
    results: dict[tuple[str, str], list[loadgen.Result]] = {
        (case, name): [] for case in cases for name in targets}
    try:
        for number in range(1, runs + 1):
            for case, spec in cases.items():
                for name, (run, address) in targets.items():
                    result = run({**base, **spec, **address})
                    if result.failed:
                        raise PodiumError(f"bench proxy: {case} through {name}: "
                                          f"{result.summary()}",
                                          "check the app hosts' logs (./podium ssh app1 -- "
                                          "sudo journalctl -u podium-app-web) and the edge's "
                                          "/var/log/nginx/error.log")
                    results[(case, name)].append(result)
                    print(f"round {number}/{runs}: {case} through {name}: {result.summary()}",
                          flush=True)
    finally:
        if cleanup is not None:
            cleanup()
    print("\n| Request (uncached) | through | req/s (median) | median latency | p99 |")
    print("|---|---|---|---|---|")
    for (case, name), rounds in results.items():
        middle = sorted(rounds, key=lambda r: r.rate)[len(rounds) // 2]
        print(f"| {case} | {name} | {statistics.median(r.rate for r in rounds):.0f} | "
              f"{statistics.median(middle.latencies) * 1000:.0f} ms | "
              f"{middle.percentile(0.99) * 1000:.0f} ms |")
    if len(targets) == 2:
        print("\n| Request (uncached) | edge / HAProxy, median of per-round ratios | per round |")
        print("|---|---|---|")
        for case in cases:
            ratios = [e.rate / h.rate for e, h in zip(results[(case, "edge")],
                                                      results[(case, "HAProxy")], strict=True)]
            print(f"| {case} | **{statistics.median(ratios):.2f}** | "
                  f"{', '.join(f'{r:.2f}' for r in ratios)} |")
    print(f"\n{len(apps)} app hosts, {clients} clients, medians over {runs} rounds; load "
          f"generator on {where} (shares the machine's cores with the lab)")
