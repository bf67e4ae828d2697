"""9. The peer: sverm side by side with the LangGraph Agent Server (`langgraph dev`, in-memory
runtime), the same graph shape on both (manager -> 3 parallel workers -> writer, 500 ms per
simulated call), the same client, in alternating turns: one run's overhead and first streamed
event, GET of a run's status under load, 100 runs at once, and idle memory. sverm is measured
twice: its embedded server (`make run`) and its production layout (docker-compose's, on this
machine's PostgreSQL and Redis). Every figure is a sverm side's value over the peer's (target:
ahead of the peer on every row)."""

import os
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench import loadgen, stack
from bench.b9_sides import (
    COMPOSE_UVICORN,
    PEER_PACKAGE,
    WEB_CONCURRENCY,
    WORKER_CONCURRENCY,
    PeerUnavailable,
    Side,
    Streamed,
    peer_install,
    peer_start,
    peer_status_url,
    peer_version,
    runs_streamed,
    sverm_production,
    sverm_start,
)
from bench.context import Context
from bench.loadgen import Load
from bench.report import Figure, median

NAME = "peer"
LATENCY = 0.5
CRITICAL_PATH = 3 * LATENCY  # manager, one worker, writer
LONE_RUNS = 7
ROUNDS = 2
# A run of the 100 at once not ended this long after its POST counts as failed.
MANY_TIMEOUT = 120


def _lone(side: Side) -> tuple[Streamed, str]:
    [(run, run_id)] = runs_streamed(side, 1)
    if not run.ok:
        raise RuntimeError(f"{side.name}: a lone run failed: {run.detail}")
    return run, run_id


def _load(side: Side, ctx: Context, seconds: float, url: str = "") -> Load:
    return loadgen.run(url or side.status_url, headers=side.headers,
                       connections=ctx.sizes.connections, seconds=seconds,
                       warmup=ctx.sizes.warmup_seconds)  # fmt: skip


def _pg_connections() -> int:
    """Connections open to the bench database, this process's own left out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _services_cpu() -> dict[str, float]:
    """CPU seconds used so far by this machine's PostgreSQL (its postmaster's process tree) and
    Redis (INFO cpu), the services of the production layout; one left out when it cannot be
    read here (a server elsewhere, no rights)."""
    import redis
    from django.db import connection

    found = {}
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data_directory = cursor.fetchone()[0]
    try:
        postmaster = int(Path(data_directory, "postmaster.pid").read_text().split()[0])
        found["PostgreSQL"] = stack.tree_cpu_seconds(postmaster)
    except (OSError, ValueError, IndexError):
        pass
    try:
        cpu = redis.Redis.from_url(os.environ["REDIS_URL"]).info("cpu")
        found["Redis"] = sum(cpu[name] for name in ("used_cpu_sys", "used_cpu_user",
                                                    "used_cpu_sys_children",
                                                    "used_cpu_user_children"))  # fmt: skip
    except (redis.RedisError, KeyError):
        pass
    return found


def _cpu_parts(side: Side) -> dict[str, float]:
    """CPU seconds used so far by each of the side's process trees and, for sverm's production
    layout, by the services it uses (`_services_cpu`)."""
    names = side.parts or ("server",)
    found = {name: stack.tree_cpu_seconds(process.pid)
             for name, process in zip(names, side.processes, strict=True)}  # fmt: skip
    if side.name == "sverm production":
        found.update(_services_cpu())
    return found


def _measure(ctx: Context, sides: list[Side], count: int) -> dict:
    """Every measurement in turns (embedded, production, peer, embedded, ...), so every side
    sees the same moments of the machine."""
    found: dict = {
        side.name: {"lone": [], "many": [], "failed": [], "load": [], "api_load": [], "cpu": []}
        for side in sides
    }
    for side in sides:  # warm-up: a run and a status read on each
        _lone(side)
    for side in sides:
        if side.sverm:
            run_id = _lone(side)[1]
            side.status_url = f"{side.base}/v1/swarms/{run_id}"
            side.api_status_url = f"{side.base}/api/runs/{run_id}"
        else:
            side.status_url = peer_status_url(side)
    time.sleep(1)
    found["pg_connections"] = _pg_connections()
    for side in sides:
        found[side.name]["rss_parts"] = side.rss_parts()
        found[side.name]["rss_idle"] = sum(found[side.name]["rss_parts"].values())
    for _ in range(LONE_RUNS):
        for side in sides:
            found[side.name]["lone"].append(_lone(side)[0])
    for side in sides:
        _load(side, ctx, 0.5)
    for _ in range(ROUNDS):
        for side in sides:
            found[side.name]["load"].append(_load(side, ctx, ctx.sizes.load_seconds / ROUNDS))
            if side.api_status_url:
                found[side.name]["api_load"].append(
                    _load(side, ctx, ctx.sizes.load_seconds / ROUNDS, side.api_status_url)
                )
    for _ in range(ROUNDS):
        for side in sides:
            before = _cpu_parts(side)
            runs = [run for run, _id in runs_streamed(side, count, MANY_TIMEOUT)]
            after = _cpu_parts(side)
            found[side.name]["cpu"].append({part: after[part] - before[part] for part in after})
            found[side.name]["many"] += [run.wall for run in runs if run.ok]
            found[side.name]["failed"] += [run.detail for run in runs if not run.ok]
            time.sleep(1)
    for side in sides:
        found[side.name]["rss_end"] = side.rss_bytes()
    return found


def _skipped(reason: str) -> list[Figure]:
    return [Figure.report("9. peer (LangGraph Agent Server): skipped", None, None, "", reason)]


def run(ctx: Context) -> list[Figure]:
    if ctx.quick:
        return _skipped(
            "skipped: quick mode (installing the peer and starting the three sides take longer "
            "than QUICK allows); run `python -m bench --only b9_peer`"
        )
    try:
        command = peer_install(ctx.log_dir)
    except PeerUnavailable as exc:
        return _skipped(f"skipped: the peer cannot be installed here ({exc})")
    count = ctx.sizes.many_runs
    with ExitStack() as running:
        embedded = sverm_start(ctx.env, ctx.log_dir, LATENCY, threads=count)
        running.callback(stack.stop, embedded.processes[0])
        production = running.enter_context(
            sverm_production(ctx.env, ctx.log_dir, LATENCY, ctx.tenant.headers)
        )
        peer = peer_start(command, ctx.log_dir, LATENCY, jobs=count)
        running.callback(stack.stop, peer.processes[0])
        sides = [embedded, production, peer]
        found = _measure(ctx, sides, count)
    return _figures(ctx, found, [side.name for side in sides], count)


def _summarize(found: dict, name: str, count: int) -> None:
    """A side's medians, in place; its failed status reads raise (its failed runs at once are
    the figure's to report)."""
    side = found[name]
    for kind in ("load", "api_load"):
        if kind == "api_load" and not side[kind]:  # the peer has one status read
            continue
        load: Load = Load.merge(side[kind])
        if load.errors or not load.requests:
            raise RuntimeError(f"{name}: GET status {load.errors} errors of {load.requests}: "
                               f"{load.statuses}")  # fmt: skip
        side[kind] = load
    side["wall"] = median([run.wall for run in side["lone"]]) * 1000
    side["first"] = median([run.first for run in side["lone"]]) * 1000
    side["overhead"] = side["wall"] - CRITICAL_PATH * 1000
    side["spread"] = median(side["many"]) * 1000 / side["wall"] if side["many"] else None
    # CPU per run of the runs at once: each part's median over the rounds, ms.
    side["cpu_parts"] = {part: median([spent[part] for spent in side["cpu"]]) * 1000 / count
                         for part in side["cpu"][0]}  # fmt: skip
    side["cpu_run"] = sum(side["cpu_parts"].values())


def _many_how(name: str, side: dict, count: int) -> str:
    done = (f"median wall {median(side['many']) * 1000:.0f} ms (max "
            f"{max(side['many']) * 1000:.0f})" if side["many"] else "no run ended")  # fmt: skip
    if side["failed"]:
        kinds = "; ".join(f"{times} x {detail}"
                          for detail, times in Counter(side["failed"]).most_common(3))  # fmt: skip
        done += f", {len(side['failed'])} of {ROUNDS * count} runs FAILED ({kinds})"
    return f"{name} {done}"


def _figures(ctx: Context, found: dict, names: list[str], count: int) -> list[Figure]:
    *ours, peer_name = names
    for name in names:
        _summarize(found, name, count)
    peer = found[peer_name]
    mib = 2**20
    described = {
        "sverm embedded": (
            f"sverm embedded: `make run`'s server (`python -m sverm.server`, Daphne, access log "
            f"off) in the embedded mode (SQLite, in-memory channel layer, in-process executor "
            f"with SVERM_EXECUTOR_MAX_RUNS={count})"
        ),
        "sverm production": (
            f"sverm production: docker-compose's layout on this machine's services: `uvicorn "
            f"sverm.asgi:application --workers {WEB_CONCURRENCY} --lifespan off "
            f"{' '.join(COMPOSE_UVICORN)}` (uvloop, httptools; access log off and log level "
            f"warning where compose logs through sverm/uvicorn_logging.yaml), `celery -A sverm "
            f"worker --pool=threads --concurrency={WORKER_CONCURRENCY}` (without gossip, "
            f"mingle, heartbeat) and `celery -A sverm beat`, both at log level WARNING, "
            f"SVERM_EXECUTOR=celery, the bench's PostgreSQL database (migrated; each process's "
            f"pool of DB_POOL_MAX_SIZE, 12) and Redis (channel layer, Celery broker, cache), "
            f"bench.settings (sverm's plus the bench routes), the bench's team-plan tenant"
        ),
    }  # fmt: skip
    common = (f"the simulated provider at {LATENCY:g} s, an inline YAML definition "
              f"(hierarchical: manager, worker x3, writer); peer: `langgraph dev --no-reload "
              f"--n-jobs-per-worker {count} --server-log-level WARNING` ({peer_version()}, "
              f"`pip install \"{PEER_PACKAGE}\"` in bench/peer/.venv) serving "
              f"bench/peer/graph.py (StateGraph manager -> 3 parallel workers -> writer, async "
              f"nodes sleeping {LATENCY:g} s). All {len(names)} servers up at once, measured in "
              f"turns ({', '.join(names)}, ...) after a warm-up run on each")  # fmt: skip
    client = ("One client for every side (httpx + websockets): sverm = POST /v1/swarms, then "
              "its WebSocket stream /v1/swarms/{id}/stream until the server closes it after "
              "run.completed; peer = POST /runs/stream (SSE, stream_mode updates) until the "
              "stream ends")  # fmt: skip
    same = "servers and client as in 9's first figures"
    peer_many = _many_how("peer", peer, count)
    rows = []
    for name in ours:
        side = found[name]
        versus = f"{name} / LangGraph dev"
        lone_how = (f"median of {LONE_RUNS} lone runs each (wall {name} {side['wall']:.0f} ms, "
                    f"peer {peer['wall']:.0f} ms)")  # fmt: skip
        many = Figure.ratio_target(
            f"9. peer: {count} runs at once, median wall / lone run's, {versus}",
            side["spread"], peer["spread"], "<=", 1, "x",
            f"{same}; {count} runs created at once by one client (one connection each), "
            f"{ROUNDS} rounds in turns, a run not ended {MANY_TIMEOUT} s after its POST failed; "
            f"{_many_how(name, side, count)}, {peer_many}, over each side's lone-run wall.",
        )  # fmt: skip
        if side["failed"]:
            many.met = False
        rss = (f"sum of VmRSS over the server's process tree after the warm-up (a run, a status "
               f"read) and 1 s idle; after all the measurements: {name} "
               f"{side['rss_end'] / mib:.0f} MiB, peer {peer['rss_end'] / mib:.0f} "
               f"MiB")  # fmt: skip
        if name == "sverm production":
            parts = ", ".join(f"{part} {rss / mib:.0f} MiB"
                              for part, rss in side["rss_parts"].items())  # fmt: skip
            rss = (f"sum of VmRSS over the process trees of the layout: the Uvicorn master and "
                   f"its {WEB_CONCURRENCY} workers, the Celery worker and beat ({parts}); "
                   f"PostgreSQL and Redis are not counted ({found['pg_connections']} "
                   f"PostgreSQL connections open to the bench database at that moment, the "
                   f"bench's own left out); after the warm-up (a run, a status read) and 1 s "
                   f"idle; after all the measurements: {name} {side['rss_end'] / mib:.0f} MiB, "
                   f"peer {peer['rss_end'] / mib:.0f} MiB")  # fmt: skip
        cpu_parts = ", ".join(f"{part} {spent:.1f}" for part, spent in side["cpu_parts"].items())
        services = (" and the PostgreSQL and Redis on this machine it uses (their CPU while the "
                    "other sides ran is idle time, nearly none)"
                    if name == "sverm production" else "")  # fmt: skip
        cpu = Figure.report(
            f"9. peer: server CPU per run, {count} runs at once, {versus}", side["cpu_run"],
            peer["cpu_run"], "ms",
            f"as the figure above; user + system CPU (/proc) of the server's process trees"
            f"{services}, from the first POST to the last stream's end, over {count}, median of "
            f"{ROUNDS} rounds, ms: {name} {cpu_parts}; peer {peer['cpu_run']:.1f}. The machine "
            f"has {os.cpu_count()} CPUs shared with the client: a round of {count} runs cannot "
            f"end sooner than {count} x this / {os.cpu_count()} CPUs",
        )  # fmt: skip
        rows.append([
            Figure.ratio_target(
                f"9. peer: run overhead (wall - {CRITICAL_PATH:g} s critical path) of one run, "
                f"{versus}", side["overhead"], peer["overhead"], "<=", 1, "ms",
                f"{described[name]}; {common}. {client}; {lone_how}; wall = POST sent to the "
                f"stream's end.",
            ),
            Figure.ratio_target(
                f"9. peer: first streamed event after POST, {versus}", side["first"],
                peer["first"], "<=", 1, "ms",
                f"{same}; {lone_how}; from the POST sent to the first event received (sverm: "
                f"the first stored event the stream replays, after the POST's answer and the "
                f"WebSocket handshake; peer: its first SSE event, `metadata`).",
            ),
            Figure.ratio_target(
                f"9. peer: GET one run's status, 8 keep-alive connections, {versus}",
                side["load"].rps, peer["load"].rps, ">=", 1, "req/s",
                f"{same}; bench/loadgen.py, {ctx.sizes.connections} keep-alive connections, "
                f"closed loop, {ctx.sizes.load_seconds:g} s each in {ROUNDS} alternating slices "
                f"after {ctx.sizes.warmup_seconds:g} s warm-up per slice; {name} GET "
                f"/v1/swarms/{{id}} (API key): {side['load'].describe()}; peer GET "
                f"/threads/{{thread_id}}/runs/{{run_id}} (no auth configured): "
                f"{peer['load'].describe()}.",
            ),
            Figure.ratio_target(
                f"9. peer: GET one run's status on /api, 8 keep-alive connections, {versus}",
                side["api_load"].rps, peer["load"].rps, ">=", 1, "req/s",
                f"as the figure above, with {name} GET /api/runs/{{id}} of the same run (API "
                f"key, the full run: task, output, budget, times): "
                f"{side['api_load'].describe()}; against the same peer read.",
            ),
            many,
            cpu,
            Figure.ratio_target(
                f"9. peer: server process tree RSS at idle, {versus}", side["rss_idle"] / mib,
                peer["rss_idle"] / mib, "<=", 1, "MiB", f"{same}; {rss}.",
            ),
        ])  # fmt: skip
    figures = [figure for metric in zip(*rows, strict=True) for figure in metric]
    _note(ctx, found, ours, figures, count)
    return figures


def _note(ctx: Context, found: dict, ours: list[str], figures: list[Figure], count: int) -> None:
    peer = found["LangGraph dev"]
    verdicts = []
    for name in ours:
        versus = f", {name} / LangGraph dev"
        behind = [f.name.removeprefix("9. peer: ").removesuffix(versus)
                  for f in figures if f.met is False and f.name.endswith(versus)]  # fmt: skip
        verdicts.append(f"{name} is " + (f"behind on: {'; '.join(behind)}" if behind
                                         else "ahead on every row"))  # fmt: skip
    reads = ", ".join(f"{found[name]['load'].p50:.1f} ms ({name})" for name in ours)
    many = ", ".join(
        f"{median(found[name]['many']):.1f} s ({name}"
        + (f", {len(found[name]['failed'])} failed" if found[name]["failed"] else "") + ")"
        if found[name]["many"] else f"none ended ({name})"
        for name in ours
    )  # fmt: skip
    lone = ", ".join(f"{found[name]['wall'] / 1000:.2f} s ({name})" for name in ours)
    peer_many = f"{median(peer['many']):.1f} s" if peer["many"] else "none ended"
    ctx.note(
        f"Peer: against `langgraph dev` (in-memory runtime) with the same graph shape, "
        f"{'; '.join(verdicts)}. A status read takes p50 {reads} against "
        f"{peer['load'].p50:.1f} ms; {count} runs at once take a median {many} against "
        f"{peer_many} on the peer; lone runs {lone} against {peer['wall'] / 1000:.2f} s."
    )
