"""./podium bench app: the app's figures for docs/perf.md, on this machine.

Builds synthetic data in a throwaway PostgreSQL (kit/appservices.py): ACCOUNTS accounts,
FOLLOWS follow edges (each account follows FOLLOWS/ACCOUNTS others), POSTS posts spread over
30 days, plus a `star` account followed by every account (merged on read) and a `fan10k`
account with 10,000 followers (fanned out). Then serves the app with `podium-app serve
--workers N` and measures with wrk (C load generator, Debian package), one token per reader:

- home timeline reads: requests/s, p50, p99 (wrk --latency);
- post creation: requests/s, p50, p99;
- a post by `star` in its followers' home timelines: time until the first read that shows it;
- fan-out lag of a post by `fan10k` (worker job: creation -> last follower feed written).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kit import appservices, host
from kit.ansible import VENV_BIN
from kit.errors import PodiumError
from kit.paths import REPO

READERS = 1000  # distinct tokens the load rotates through

DATA_SQL = """
CREATE TEMP TABLE acc_n AS
  SELECT g AS n, (lpad(to_hex((extract(epoch FROM now() - interval '60 days') * 1000)::bigint + g),
                       12, '0') || substr(md5(random()::text || g::text), 1, 20))::uuid AS id
  FROM generate_series(0, {accounts} - 1) g;
CREATE UNIQUE INDEX ON acc_n (n);
INSERT INTO accounts (id, username, email, password_hash, display_name, note, role, publisher,
                      locale, approved, confirmed_at, followers_count, following_count,
                      statuses_count, created_at)
  SELECT id, 'user' || n, 'user' || n || '@bench.test', '{password_hash}', 'User ' || n, '',
         CASE WHEN n < 2 THEN 'owner' ELSE 'member' END, n < 2, 'en', true, now(), 0, 0, 0, now()
  FROM acc_n;
UPDATE accounts SET username = 'star' WHERE id = (SELECT id FROM acc_n WHERE n = 0);
UPDATE accounts SET username = 'fan10k' WHERE id = (SELECT id FROM acc_n WHERE n = 1);
INSERT INTO follows (id, account_id, target_account_id, created_at)
  SELECT (lpad(to_hex((extract(epoch FROM now() - interval '59 days') * 1000)::bigint), 12, '0')
          || substr(md5(random()::text || a.n::text || k::text), 1, 20))::uuid, a.id, b.id, now()
  FROM generate_series(1, {per_account}) k
  JOIN acc_n a ON true
  JOIN acc_n b ON b.n = 2 + (a.n + k * 7919) % ({accounts} - 2)
  WHERE a.id <> b.id
  ON CONFLICT DO NOTHING;
INSERT INTO follows (id, account_id, target_account_id, created_at)
  SELECT (lpad(to_hex((extract(epoch FROM now() - interval '58 days') * 1000)::bigint), 12, '0')
          || substr(md5(random()::text || a.n::text), 1, 20))::uuid, a.id, s.id, now()
  FROM acc_n a JOIN acc_n s ON s.n = 0 WHERE a.n > 1
  ON CONFLICT DO NOTHING;
INSERT INTO follows (id, account_id, target_account_id, created_at)
  SELECT (lpad(to_hex((extract(epoch FROM now() - interval '58 days') * 1000)::bigint), 12, '0')
          || substr(md5(random()::text || a.n::text || 'f'), 1, 20))::uuid, a.id, s.id, now()
  FROM acc_n a JOIN acc_n s ON s.n = 1 WHERE a.n > 1 AND a.n <= 10001
  ON CONFLICT DO NOTHING;
INSERT INTO statuses (id, account_id, text, content, spoiler_text, sensitive, visibility,
                      replies_count, reblogs_count, favourites_count, created_at)
  SELECT (lpad(to_hex((extract(epoch FROM now() - interval '30 days') * 1000)::bigint
                      + (g::bigint * 2592000000 / {posts})), 12, '0')
          || substr(md5(random()::text || g::text), 1, 20))::uuid,
         a.id, 'synthetic post ' || g, '<p>synthetic post ' || g || '</p>', '', false,
         'public', 0, 0, 0, now()
  FROM generate_series(0, {posts} - 1) g JOIN acc_n a ON a.n = 2 + g % ({accounts} - 2);
UPDATE accounts a SET followers_count = c.n FROM
  (SELECT target_account_id, count(*) n FROM follows GROUP BY 1) c WHERE a.id = c.target_account_id;
UPDATE accounts a SET following_count = c.n FROM
  (SELECT account_id, count(*) n FROM follows GROUP BY 1) c WHERE a.id = c.account_id;
UPDATE accounts a SET statuses_count = c.n FROM
  (SELECT account_id, count(*) n FROM statuses GROUP BY 1) c WHERE a.id = c.account_id;
INSERT INTO oauth_tokens (id, token_hash, scopes, account_id, created_at)
  SELECT gen_random_uuid(), encode(sha256(('benchtoken-' || n)::bytea), 'hex'),
         'read write follow', id, now()
  FROM acc_n WHERE n < {readers} + 2;
ANALYZE;
"""

WRK_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  local token = "benchtoken-" .. (2 + n % {readers})
  wrk.headers["Authorization"] = "Bearer " .. token
  {body}
  return wrk.format(nil, "{path}")
end
"""


def _wrk(url: str, path: str, method: str, seconds: int, connections: int,
         body: str = "", app_pid: int | None = None, services=None) -> dict:
    """wrk's figures: requests/s, p50 and p99 (ms), non-2xx answers, requests, and the CPU
    milliseconds per request of wrk itself (`wrk_ms`) and, with `app_pid`, of the app's
    processes during the run (`app_load_ms`): the load generator shares the cores with the
    app here, and its CPU is not the app's. With `services`, also PostgreSQL's and Redis's
    (`data_load_ms`; the backends open when the run starts: the warm-up opened the pool's)."""
    lua = WRK_SCRIPT.format(readers=READERS, path=path, body=body)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua)
    app_pids = _tree(app_pid) if app_pid else []
    data_pids = _data_pids(services) if services else []
    app0, data0 = _cpu(app_pids), _cpu(data_pids)
    try:
        out, wrk_cpu = _run_with_cpu(["wrk", "-t", "1", "-c", str(connections), "-d",
                                      f"{seconds}s", "--latency", "-s", handle.name, "-H",
                                      "Accept: application/json", f"{url}"])
    finally:
        os.unlink(handle.name)
    app_cpu, data_cpu = _spent(app0, _cpu(app_pids)), _spent(data0, _cpu(data_pids))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    per_request = 1000 / max(requests, 1)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"),
            "non2xx": int(errors.group(1)) if errors else 0, "raw": out,
            "requests": requests, "wrk_ms": wrk_cpu * per_request,
            "app_load_ms": app_cpu * per_request if app_pid else None,
            "data_load_ms": data_cpu * per_request if services else None}


def _data_pids(services) -> list[int]:
    """PostgreSQL's processes (the postmaster and its backends) and Redis's."""
    postmaster = int((services.root / "pg" / "postmaster.pid").read_text().split()[0])
    redis_pids = [p for proc in services._procs for p in _tree(proc.pid)]
    return sorted({*_tree(postmaster), *redis_pids})


def _run_with_cpu(argv: list[str]) -> tuple[str, float]:
    """`argv`'s standard output and the CPU seconds (user + system) it used; PodiumError
    with its output when it fails."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise PodiumError(f"{argv[0]} failed (exit {proc.returncode}): {text[-2000:]}")
    return text, usage.ru_utime + usage.ru_stime


async def _build(database_url: str, accounts: int, follows: int, posts: int) -> None:
    import asyncpg
    from podium_app.security import hash_password

    dsn = database_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(DATA_SQL.format(
            accounts=accounts, per_account=max(1, follows // accounts), posts=posts,
            readers=READERS, password_hash=hash_password("bench password")))
    finally:
        await conn.close()


async def _get_json(url: str, token: str) -> list:
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        # No header without a token: h11 refuses the value "Bearer " (trailing space).
        answer = await http.get(url, headers={"Authorization": f"Bearer {token}"} if token
                                else {})
        answer.raise_for_status()
        return answer.json()


def _serve(python: str, env: dict, workers: int, log, procs: list,
           prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start `podium-app serve` and wait until every worker has started.

    Not only until the app answers: wrk opens its connections at once and keeps them for
    the whole run, so a worker still importing the app when they open gets none of them and
    its core idles through the round (the half-rate rounds in docs/perf.md, session 15)."""
    log.flush()
    log_start = Path(log.name).stat().st_size
    proc = subprocess.Popen([*prefix, python, "-m", "podium_app", "serve", "--workers",
                             str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO)
    procs.append(proc)
    url = f"http://127.0.0.1:{env['PODIUM_BIND_PORT']}"
    deadline = time.monotonic() + 120
    while True:
        try:
            started = _workers_started(Path(log.name), log_start)
            if started < workers:
                raise PodiumError(f"{started} of {workers} web workers started")
            asyncio.run(_get_json(f"{url}/api/v1/instance", ""))
            return proc
        except Exception as err:
            if proc.poll() is not None:
                raise PodiumError(f"podium-app serve exited ({proc.returncode}); see "
                                  f"{log.name}") from err
            if time.monotonic() > deadline:
                raise PodiumError(f"the app did not answer on {url} within 120 s: {err} "
                                  f"(log: {log.name})") from err
            time.sleep(0.2)


def _workers_started(log: Path, start: int) -> int:
    """Web workers that finished starting, by uvicorn's line in the serve log since byte
    `start` (each worker logs it once its app is built, then starts listening)."""
    with log.open("rb") as handle:
        handle.seek(start)
        return handle.read().count(b"Application startup complete.")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=20)


def _tree(root: int) -> list[int]:
    """`root` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _cpu(pids: list[int]) -> dict[int, float]:
    """User+system CPU seconds used so far by each of `pids` that is still running."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two `_cpu` readings by the processes present in both (a backend or
    autovacuum worker that exits in between would otherwise make the sum drop)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def _cpu_per_read(url: str, app_pid: int, services, requests: int = 300) -> dict:
    """CPU milliseconds per home read, app processes vs PostgreSQL + Redis, over sequential
    requests (one at a time: CPU time per request barely depends on what else the shared
    machine runs, unlike requests/s). Twice over the same readers: the first pass as the
    worker's cache happens to be after the load run; the second ("warm") with every entity
    of those pages in the answering worker's rendered-status cache and its pool's
    connections open, which takes out the figures' dependence on how many requests the load
    run managed."""
    import httpx

    out = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        for prefix in ("", "warm_"):
            # Listed per pass: backends the first pass opened are counted in the second.
            app_pids, data_pids = _tree(app_pid), _data_pids(services)
            app0, data0 = _cpu(app_pids), _cpu(data_pids)
            for number in range(requests):
                http.get("/api/v1/timelines/home", headers={
                    "Authorization": f"Bearer benchtoken-{number % READERS}"}
                ).raise_for_status()
            app1, data1 = _cpu(app_pids), _cpu(data_pids)
            out[f"{prefix}app_ms"] = _spent(app0, app1) * 1000 / requests
            out[f"{prefix}data_ms"] = _spent(data0, data1) * 1000 / requests
            if not prefix:  # the hit share as the first pass left it
                out["cache"] = _cache_hits(http.get("/metrics").text)
    return out


def _cache_hits(metrics: str) -> str:
    """The rendered-status cache's hit share since the worker started, from /metrics (the
    one worker that answered: each has its own cache), or "" for an app without it."""
    found = dict(re.findall(r'podium_status_cache_lookups_total\{result="(hit|miss)"\} '
                            r"([\d.e+]+)", metrics))
    total = sum(float(v) for v in found.values())
    return f", entity cache hits {float(found.get('hit', 0)) / total:.0%}" if total else ""


def baseline_env(items: list[str], compare_with: str | None) -> dict[str, str]:
    """--baseline-env's KEY=VALUE items as a dict: PODIUM_* settings only, and only with
    --compare-with (they apply to the baseline's server alone)."""
    if items and not compare_with:
        raise PodiumError("--baseline-env applies to the baseline of --compare-with: give "
                          "--compare-with SRC too (this checkout's app/src compares one "
                          "setting on the same code)")
    found = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not re.fullmatch(r"PODIUM_[A-Z0-9_]+", key):
            raise PodiumError(f"--baseline-env {item!r}: give PODIUM_SETTING=VALUE, e.g. "
                              "PODIUM_TOKEN_CACHE_ENTRIES=0 (app/README.md lists the settings)")
        found[key] = value
    return found


def _compare(python: str, env: dict, workers: int, seconds: int, runs: int, log, procs: list,
             baseline_src: str, services, baseline_env: dict[str, str] | None = None,
             connections: int = 16, prefix: tuple[str, ...] = ()) -> None:
    """Home reads alternating between two versions of the app on the same data, Redis and
    load generator: `runs` rounds of (baseline, current), medians printed side by side.
    `baseline_env`: settings for the baseline's server only."""
    home = f"http://127.0.0.1:{env['PODIUM_BIND_PORT']}/api/v1/timelines/home"
    results: dict[str, list[dict]] = {"baseline": [], "current": []}
    for round_ in range(runs):
        for label, extra in (("baseline", {"PYTHONPATH": baseline_src, **(baseline_env or {})}),
                             ("current", {})):
            log.flush()
            log_start = Path(log.name).stat().st_size
            proc = _serve(python, {**env, **extra}, workers, log, procs, prefix)
            # Warm up each new server as the single run does: the first round builds every
            # reader's feed in Redis, and every server process starts with empty caches
            # (tokens, rendered statuses) and no pooled connections. Measured cold, a
            # round's p99 is the start-up, not the steady state (docs/perf.md, session 15).
            _wrk(home, "/api/v1/timelines/home", "GET", max(5, seconds // 2), 8)
            got = _wrk(home, "/api/v1/timelines/home", "GET", seconds, connections,
                       app_pid=proc.pid, services=services)
            got.update(_cpu_per_read(home.removesuffix("/api/v1/timelines/home"), proc.pid,
                                     services))
            _stop(proc)
            got["restarts"] = _worker_restarts(Path(log.name), log_start)
            results[label].append(got)
            print(f"  round {round_ + 1} {label}: {got['rps']:.0f} req/s, p50 {got['p50']:.1f} "
                  f"ms, p99 {got['p99']:.1f} ms, non-2xx {got['non2xx']}; CPU per read: app "
                  f"{got['app_ms']:.2f} ms, PostgreSQL+Redis {got['data_ms']:.2f} ms"
                  f"{got['cache']}; warm: app {got['warm_app_ms']:.2f} ms, PostgreSQL+Redis "
                  f"{got['warm_data_ms']:.2f} ms"
                  f"; under load, CPU per request: app {got['app_load_ms']:.2f} ms, "
                  f"PostgreSQL+Redis {got['data_load_ms']:.2f} ms, wrk (load "
                  f"generator) {got['wrk_ms']:.2f} ms; workers restarted {got['restarts']}",
                  flush=True)
    for label, got in results.items():
        print(f"home timeline, {label} ({workers} web worker(s), {connections} connections), "
              f"median of {runs}: "
              f"{statistics.median(g['rps'] for g in got):.0f} req/s, "
              f"p50 {statistics.median(g['p50'] for g in got):.1f} ms, "
              f"p99 {statistics.median(g['p99'] for g in got):.1f} ms; CPU per read: app "
              f"{statistics.median(g['app_ms'] for g in got):.2f} ms, PostgreSQL+Redis "
              f"{statistics.median(g['data_ms'] for g in got):.2f} ms; warm: app "
              f"{statistics.median(g['warm_app_ms'] for g in got):.2f} ms, PostgreSQL+Redis "
              f"{statistics.median(g['warm_data_ms'] for g in got):.2f} ms; under load: app "
              f"{statistics.median(g['app_load_ms'] for g in got):.2f} ms, PostgreSQL+Redis "
              f"{statistics.median(g['data_load_ms'] for g in got):.2f} ms, wrk "
              f"{statistics.median(g['wrk_ms'] for g in got):.2f} ms per request; workers "
              f"restarted {sum(g['restarts'] for g in got)}", flush=True)


def _worker_restarts(log: Path, start: int) -> int:
    """Web workers uvicorn's supervisor replaced (its health check timed out, or the worker
    died) according to the serve log written since byte `start`: a replaced worker starts
    with a cold cache and new connections, which the CPU figures of its round then miss."""
    with log.open("rb") as handle:
        handle.seek(start)
        return len(re.findall(rb"Child process \[\d+\] died", handle.read()))


def pin_cores(workers: int) -> tuple[str, ...]:
    """--pin: the web workers get the first `workers` cores to themselves, and everything
    else (this process, and so PostgreSQL, Redis, wrk and the job worker it starts) the
    rest. That is the production layout, where the database runs on other hosts, so the
    home read's rate is then per app core. Returns the command prefix for the server."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) <= workers:
        raise PodiumError(f"--pin: {workers} web worker(s) need at least {workers + 1} cores "
                          f"(one for PostgreSQL, Redis and wrk); this host gives {len(cores)}. "
                          "Use fewer --workers, or leave out --pin")
    app, rest = cores[:workers], cores[workers:]
    os.sched_setaffinity(0, rest)  # inherited by every process started from here on
    print(f"pinned: web workers on CPU {','.join(map(str, app))}; PostgreSQL, Redis and wrk "
          f"on CPU {','.join(map(str, rest))}", flush=True)
    return ("taskset", "--cpu-list", ",".join(map(str, app)))


def run(workers: int, seconds: int, accounts: int, follows: int, posts: int,
        compare_with: str | None = None, runs: int = 3,
        baseline_env: dict[str, str] | None = None, connections: int = 16,
        pin: bool = False) -> None:
    if not 1 <= connections <= 1000:
        raise PodiumError(f"--clients {connections}: give 1 to 1000 connections for the home "
                          "reads (default 16)")
    prefix = pin_cores(workers) if pin else ()
    host.check_root()
    host.ensure_packages([*appservices.PACKAGES, "wrk"], lambda t: print(f"==> {t}",
                                                                         file=sys.stderr))
    python = str(VENV_BIN / "python")
    # A SIGTERM (timeout, CI cancel) unwinds through `finally`: no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    services = appservices.AppServices().start()
    procs: list[subprocess.Popen] = []
    try:
        port = appservices.free_port()
        env = {**os.environ, "PODIUM_ENV_FILE": "/dev/null",
               "PODIUM_DATABASE_URL": services.database_url, "PODIUM_DATABASE_PGBOUNCER": "false",
               "PODIUM_REDIS_URL": services.redis_url, "PODIUM_SECRET_KEY": "b" * 40,
               # fan10k is fanned out, star (every account follows it) is merged on read.
               "PODIUM_FANOUT_THRESHOLD": str(min(20_000, max(accounts - 100, 2))),
               "PODIUM_BIND_PORT": str(port),
               "PODIUM_RATE_POST_ACCOUNT": "1000000/60", "PODIUM_RATE_POST_IP": "1000000/60"}
        subprocess.run([python, "-m", "podium_app", "migrate"], env=env, check=True,
                       capture_output=True)
        started = time.monotonic()
        print(f"building synthetic data: {accounts} accounts, {follows} follows, {posts} posts",
              flush=True)
        asyncio.run(_build(services.database_url, accounts, follows, posts))
        print(f"  built in {time.monotonic() - started:.0f}s", flush=True)
        log = (services.root / "bench.log").open("ab")
        if compare_with:
            _compare(python, env, workers, seconds, runs, log, procs, compare_with, services,
                     baseline_env, connections, prefix)
            return
        server = _serve(python, env, workers, log, procs, prefix)
        url = f"http://127.0.0.1:{port}"
        home = f"{url}/api/v1/timelines/home"
        # Warm up: build every reader's feed in Redis once (a first read rebuilds it).
        _wrk(home, "/api/v1/timelines/home", "GET", max(5, seconds // 2), 8)
        reads = _wrk(home, "/api/v1/timelines/home", "GET", seconds, connections,
                     app_pid=server.pid, services=services)
        print(f"home timeline, {workers} web worker(s), {connections} connections: "
              f"{reads['rps']:.0f} req/s, "
              f"p50 {reads['p50']:.1f} ms, p99 {reads['p99']:.1f} ms, "
              f"non-2xx {reads['non2xx']}; CPU per request: app {reads['app_load_ms']:.2f} ms, "
              f"PostgreSQL+Redis {reads['data_load_ms']:.2f} ms, "
              f"wrk (load generator) {reads['wrk_ms']:.2f} ms", flush=True)
        writes = _wrk(f"{url}/api/v1/statuses", "/api/v1/statuses", "POST", seconds, 8,
                      body='wrk.method = "POST"; wrk.headers["Content-Type"] = '
                           '"application/json"; wrk.body = \'{"status": "bench post"}\'')
        print(f"post creation: {writes['rps']:.0f} req/s, p50 {writes['p50']:.1f} ms, "
              f"p99 {writes['p99']:.1f} ms, non-2xx {writes['non2xx']}", flush=True)
        _star_and_fanout(url, env, python, services, procs)
    finally:
        for proc in procs:
            _stop(proc)
        services.stop()


def _star_and_fanout(url: str, env: dict, python: str, services, procs) -> None:
    import httpx

    star, fan = "benchtoken-0", "benchtoken-1"
    with httpx.Client(base_url=url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {star}"
        http.post("/api/v1/statuses", json={"status": "warm"}).raise_for_status()
    with httpx.Client(base_url=url, timeout=30) as http:
        posted = time.monotonic()
        status = http.post("/api/v1/statuses", json={"status": "from the star"},
                           headers={"Authorization": f"Bearer {star}"}).json()
        seen_after = None
        deadline = posted + 60
        for reader in range(2, 12):
            while time.monotonic() < deadline:
                timeline = http.get("/api/v1/timelines/home",
                                    headers={"Authorization": f"Bearer benchtoken-{reader}"}
                                    ).json()
                if any(s["id"] == status["id"] for s in timeline):
                    seen_after = time.monotonic() - posted
                    break
            else:
                raise PodiumError("the star's post did not reach a follower's home within 60 s")
        print(f"post by an account with {_followers(services.database_url, 'star')} followers "
              f"(merged on read): in 10 readers' home timelines after {seen_after:.3f} s",
              flush=True)
        # Fan-out: every follower of fan10k has a built feed, then one post.
        _mark_feeds_built(services, "fan10k")
        worker = subprocess.Popen([python, "-m", "podium_app", "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(worker)
        time.sleep(2)
        http.post("/api/v1/statuses", json={"status": "to 10k"},
                  headers={"Authorization": f"Bearer {fan}"}).raise_for_status()
        lag = _wait_lag(services.redis_url)
        print(f"fan-out lag, account with {_followers(services.database_url, 'fan10k')} "
              f"followers: {lag:.2f} s (creation -> last feed written)", flush=True)


def _followers(database_url: str, username: str) -> int:
    async def run() -> int:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return await conn.fetchval(
                "SELECT followers_count FROM accounts WHERE username = $1", username)
        finally:
            await conn.close()

    return asyncio.run(run())


def _mark_feeds_built(services, username: str) -> None:
    async def run() -> None:
        import asyncpg
        from redis.asyncio import Redis

        conn = await asyncpg.connect(services.database_url.replace("postgresql+asyncpg",
                                                                   "postgresql"))
        rows = await conn.fetch(
            "SELECT f.account_id FROM follows f JOIN accounts a ON a.id = f.target_account_id "
            "WHERE a.username = $1", username)
        await conn.close()
        redis = Redis.from_url(services.redis_url)
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.set(f"podium:feed:{row['account_id']}:built", "1")
            await pipe.execute()
        # Drop the fan-out jobs queued by the post-creation run: measure one post alone.
        await redis.delete("podium:fanout:lag", "podium:queue")
        await redis.aclose()

    asyncio.run(run())


def _wait_lag(redis_url: str) -> float:
    async def run() -> float:
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url)
        try:
            for _ in range(600):
                value = await redis.get("podium:fanout:lag")
                if value is not None:
                    return float(value)
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()
        raise PodiumError("the fan-out job did not finish within 60 s")

    return asyncio.run(run())

