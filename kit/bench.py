"""./podium bench: measurements recorded in docs/perf.md. Medians over several runs, because
these machines are noisy; every run's figure is printed too."""

from __future__ import annotations

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


def _h2load(run, url: str, requests: int, clients: int) -> float:
    """Requests per second of one h2load run on the edge host, over its loopback (HTTP/2,
    TLS, the platform's name in SNI and :authority). Raises if any request was not a 2xx."""
    out = run(f"h2load -n {requests} -c {clients} -m 10 -t 1 --connect-to=127.0.0.1:443 "
              f"'{url}' 2>&1")
    codes = next((li for li in out.splitlines() if li.startswith("status codes:")), "")
    if f"{requests} 2xx" not in codes:
        raise PodiumError(f"h2load against {url} did not get {requests} 2xx answers",
                          "check the edge's error log (./podium ssh EDGE -- sudo tail "
                          "/var/log/nginx/error.log)", detail=out[-2000:])
    line = next(li for li in out.splitlines() if li.startswith("finished in"))
    return float(line.split(",")[1].split()[0])


def edge(stack_name: str, runs: int, requests: int = 20000, clients: int = 32) -> None:
    """Cached page and cached media served by one edge, each against nginx serving a static
    file of the same size on the same host and TLS listener, runs alternated side by side.
    Each client stays under nginx's 1000 requests per connection (h2load does not reconnect).

    The load generator (h2load, Debian's nghttp2-client, installed on the edge for the run)
    runs on the edge host itself against its loopback, so no traffic leaves the lab host and
    the edge's rate limits (loopback exempt) do not apply. App hosts run the stand-in
    (kit/standin.py) when the real app is not deployed: a cached page never reaches it
    after the first request anyway.
    """
    import hashlib
    import secrets
    import subprocess

    from kit import edgehttp, ssh, standin
    from kit.lab import _load_state
    from kit.stack import role_ports

    stack = _load_state(stack_name)
    paths = StackPaths(stack_name)
    if stack is None:
        raise PodiumError(f"stack '{stack_name}' is not up", f"./podium up --stack {stack_name}")
    by_role = {role: [h for h in stack.hosts if role in h.roles]
               for role in ("edge", "app", "media")}
    missing = [role for role, hosts in by_role.items() if not hosts]
    if missing:
        raise PodiumError(f"stack '{stack_name}' has no {', '.join(missing)} host",
                          "bench edge needs an edge, a media host and app hosts")
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
          f"{requests} requests, {clients} HTTP/2 clients", flush=True)
    on(edge_address, "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                     "nghttp2-client >/dev/null")
    started = [str(h.address) for h in by_role["app"]
               if standin.start(stack, paths, str(h.address))]
    try:
        # The cached objects: a page from the app (or stand-in), a file on the media origin.
        page_path = f"/public/bench-{secrets.token_hex(4)}?size={PAGE_SIZE}&ttl=3600"
        media_body = secrets.token_bytes(MEDIA_SIZE)
        digest = hashlib.sha256(media_body).hexdigest()
        media_path = f"/m/{digest[:2]}/{digest[2:4]}/{digest}.bin"
        origin = f"http://{by_role['media'][0].address}:{role_ports()['media'][0]['port']}"
        on(str(by_role["app"][0].address),
           "python3 -c 'import sys,urllib.request; urllib.request.urlopen(urllib.request."
           "Request(sys.argv[1], data=sys.stdin.buffer.read(), method=\"PUT\"), timeout=10)' "
           f"{origin}{media_path}", stdin=media_body)
        # The static twins, byte for byte the same sizes.
        on(edge_address, f"sudo sh -c 'head -c {PAGE_SIZE} /dev/urandom > {BENCH_ROOT}/page"
                         f" && head -c {MEDIA_SIZE} /dev/urandom > {BENCH_ROOT}/media'")
        time.sleep(5)  # health checks put fresh stand-ins in the pool
        lab_root = paths.state / "acme" / "root.pem"  # exported by the acme role
        tls = edgehttp.context(lab_root.read_text() if lab_root.is_file() else
                               on(edge_address, "sudo cat /etc/ssl/podium-edge/fullchain.pem"))
        for name, path in ((stack.domain, page_path), (f"media.{stack.domain}", media_path)):
            for _ in range(2):
                answer = edgehttp.request(edge_address, name, path, tls)
            if (answer.status, answer.headers.get("x-cache-status")) != (200, "HIT"):
                raise PodiumError(f"https://{name}{path} is not served from the cache "
                                  f"(status {answer.status}, X-Cache-Status "
                                  f"{answer.headers.get('x-cache-status')})",
                                  "check the backends with ./podium bench edge's stack up")
        cases = {
            "page (cached)": f"https://{stack.domain}{page_path}",
            "page-size static": "https://edge-bench.invalid/page",
            "media (cached)": f"https://media.{stack.domain}{media_path}",
            "media-size static": "https://edge-bench.invalid/media",
        }
        results: dict[str, list[float]] = {case: [] for case in cases}
        for number in range(1, runs + 1):
            for case, url in cases.items():
                results[case].append(_h2load(lambda c: on(edge_address, c), url, requests,
                                             clients))
            print(f"round {number}/{runs}: " + ", ".join(
                f"{case} {values[-1]:.0f} req/s" for case, values in results.items()),
                flush=True)
    finally:
        for address in started:
            standin.stop(stack, paths, address)
    median = {case: statistics.median(values) for case, values in results.items()}
    # Each round measures a pair back to back, so the median of the per-round ratios is the
    # figure least moved by other load on the machine; the ratio of medians is shown too.
    print("\n| Object | Size | Edge cache (req/s) | Static file (req/s) | Ratio of medians "
          "| Median of per-round ratios |")
    print("|---|---|---|---|---|---|")
    for label, size, cached, static in (
            ("anonymous page", PAGE_SIZE, "page (cached)", "page-size static"),
            ("media file", MEDIA_SIZE, "media (cached)", "media-size static")):
        paired = statistics.median(
            c / s for c, s in zip(results[cached], results[static], strict=True))
        print(f"| {label} | {size // 1024} KiB | {median[cached]:.0f} | {median[static]:.0f} | "
              f"{median[cached] / median[static]:.2f} | **{paired:.2f}** |")
    print(f"\nmedians over {runs} alternated rounds; backends: "
          f"{'stand-in (kit/standin.py)' if started else 'the deployed app'}")


# ./podium bench proxy ----------------------------------------------------------------------
def proxy(stack_name: str, runs: int, seconds: int = 20, clients: int = 16) -> None:
    """Uncached timeline throughput through HAProxy to every app host: a logged-in home
    timeline (never cached by an edge) and the anonymous public timeline with a cache-busting
    query (which an edge would pass through). Load from the controller (kit/loadgen.py) to
    the proxy's private frontend, ``clients`` keep-alive connections, ``runs`` rounds of
    ``seconds`` per case, alternated; every non-2xx answer is counted and fails the bench.
    """
    import itertools

    from kit import labapi, loadgen
    from kit.lab import _load_state
    from kit.stack import role_ports

    stack = _load_state(stack_name)
    paths = StackPaths(stack_name)
    if stack is None:
        raise PodiumError(f"stack '{stack_name}' is not up", f"./podium up --stack {stack_name}")
    proxies = [h for h in stack.hosts if "proxy" in h.roles]
    apps = [h for h in stack.hosts if "app" in h.roles]
    if not proxies or not apps:
        raise PodiumError(f"stack '{stack_name}' has no proxy or no app host",
                          "bench proxy needs HAProxy in front of the real app")
    target = (str(proxies[0].address),
              next(p["port"] for p in role_ports()["proxy"] if p["proto"] == "tcp"))
    app = str(apps[0].address)
    # Data: one publisher with 40 posts, one reader following it.
    publisher = labapi.account(stack, paths, target, app, "benchpub", publisher=True)
    reader = labapi.account(stack, paths, target, app, "benchread", publisher=False)
    labapi.call(stack, target, "POST", f"/api/v1/accounts/{publisher['id']}/follow",
                reader["token"])
    for number in range(40):
        labapi.call(stack, target, "POST", "/api/v1/statuses", publisher["token"],
                    {"status": f"bench post {number}"})
    time.sleep(12)  # past the writers' read-your-writes window: reads may use the replica
    bust = itertools.count()
    cases = {
        "home timeline (logged in)": dict(
            path_of=lambda: "/api/v1/timelines/home?limit=20",
            headers={"Authorization": f"Bearer {reader['token']}"}),
        "public timeline (anonymous, cache-busting)": dict(
            path_of=lambda: f"/api/v1/timelines/public?limit=20&_={next(bust)}"),
    }
    print(f"proxy bench on {proxies[0].name} -> {', '.join(h.name for h in apps)}: {runs} "
          f"rounds of {seconds}s per case, {clients} clients", flush=True)
    results: dict[str, list[loadgen.Result]] = {case: [] for case in cases}
    for number in range(1, runs + 1):
        for case, spec in cases.items():
            result = loadgen.run_for(seconds, address=target[0], port=target[1],
                                     host=stack.domain, clients=clients, **spec)
            if result.failed:
                raise PodiumError(f"bench proxy: {case}: {result.summary()}",
                                  "check the app hosts' logs (./podium ssh app1 -- sudo "
                                  "journalctl -u podium-app-web)")
            results[case].append(result)
            print(f"round {number}/{runs}: {case}: {result.summary()}", flush=True)
    print("\n| Request (uncached, through HAProxy) | req/s (median) | median latency | p99 |")
    print("|---|---|---|---|")
    for case, rounds in results.items():
        best = sorted(rounds, key=lambda r: r.rate)[len(rounds) // 2]
        print(f"| {case} | {statistics.median(r.rate for r in rounds):.0f} | "
              f"{statistics.median(best.latencies) * 1000:.0f} ms | "
              f"{best.percentile(0.99) * 1000:.0f} ms |")
    print(f"\n{len(apps)} app hosts, {clients} clients, medians over {runs} rounds; load "
          "generator on the controller (shares the machine's cores with the lab)")
