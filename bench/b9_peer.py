"""9. The peer: sverm side by side with the LangGraph Agent Server (`langgraph dev`, in-memory
runtime), the same graph shape on both (manager -> 3 parallel workers -> writer, 500 ms per
simulated call), the same client, in alternating turns: one run's overhead and first streamed
event, GET of a run's status under load, 100 runs at once, and idle memory. Every figure is
sverm's value over the peer's (target: ahead of the peer on every row)."""

import time

from bench import loadgen, stack
from bench.b9_sides import (
    PEER_PACKAGE,
    PeerUnavailable,
    Side,
    Streamed,
    peer_install,
    peer_start,
    peer_status_url,
    peer_version,
    runs_streamed,
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


def _lone(side: Side) -> tuple[Streamed, str]:
    [(run, run_id)] = runs_streamed(side, 1)
    if not run.ok:
        raise RuntimeError(f"{side.name}: a lone run failed: {run.detail}")
    return run, run_id


def _load(side: Side, ctx: Context, seconds: float) -> Load:
    return loadgen.run(side.status_url, headers=side.headers, connections=ctx.sizes.connections,
                       seconds=seconds, warmup=ctx.sizes.warmup_seconds)  # fmt: skip


def _measure(ctx: Context, sides: list[Side], count: int) -> dict:
    """Every measurement in turns (sverm, peer, sverm, peer), so both see the same moments of
    the machine."""
    found: dict = {side.name: {"lone": [], "many": [], "failed": [], "load": []} for side in sides}
    for side in sides:  # warm-up: a run and a status read on each
        _lone(side)
    sverm = sides[0]
    sverm.status_url = f"{sverm.base}/v1/swarms/{_lone(sverm)[1]}"
    sides[1].status_url = peer_status_url(sides[1])
    time.sleep(1)
    for side in sides:
        found[side.name]["rss_idle"] = stack.tree_rss_bytes(side.process.pid)
    for _ in range(LONE_RUNS):
        for side in sides:
            found[side.name]["lone"].append(_lone(side)[0])
    for side in sides:
        _load(side, ctx, 0.5)
    for _ in range(ROUNDS):
        for side in sides:
            found[side.name]["load"].append(_load(side, ctx, ctx.sizes.load_seconds / ROUNDS))
    for _ in range(ROUNDS):
        for side in sides:
            runs = [run for run, _id in runs_streamed(side, count)]
            found[side.name]["many"] += [run.wall for run in runs if run.ok]
            found[side.name]["failed"] += [run.detail for run in runs if not run.ok]
            time.sleep(1)
    for side in sides:
        found[side.name]["rss_end"] = stack.tree_rss_bytes(side.process.pid)
    return found


def _skipped(reason: str) -> list[Figure]:
    return [Figure.report("9. peer (LangGraph Agent Server): skipped", None, None, "", reason)]


def run(ctx: Context) -> list[Figure]:
    if ctx.quick:
        return _skipped(
            "skipped: quick mode (installing the peer and starting both servers take longer "
            "than QUICK allows); run `python -m bench --only b9_peer`"
        )
    try:
        command = peer_install(ctx.log_dir)
    except PeerUnavailable as exc:
        return _skipped(f"skipped: the peer cannot be installed here ({exc})")
    count = ctx.sizes.many_runs
    sides: list[Side] = []
    try:
        sides.append(sverm_start(ctx.env, ctx.log_dir, LATENCY, threads=count))
        sides.append(peer_start(command, ctx.log_dir, LATENCY, jobs=count))
        found = _measure(ctx, sides, count)
    finally:
        for side in sides:
            stack.stop(side.process)
    return _figures(ctx, found, [side.name for side in sides], count)


def _figures(ctx: Context, found: dict, names: list[str], count: int) -> list[Figure]:
    ours, peer = (found[name] for name in names)
    for name in names:
        load: Load = Load.merge(found[name]["load"])
        if load.errors or not load.requests:
            raise RuntimeError(f"{name}: GET status {load.errors} errors of {load.requests}: "
                               f"{load.statuses}")  # fmt: skip
        found[name]["load"] = load
        if found[name]["failed"]:
            raise RuntimeError(f"{name}: {len(found[name]['failed'])} of {ROUNDS * count} runs "
                               f"failed: {found[name]['failed'][:3]}")  # fmt: skip
        lone = found[name]["lone"]
        found[name]["wall"] = median([run.wall for run in lone]) * 1000
        found[name]["first"] = median([run.first for run in lone]) * 1000
        found[name]["overhead"] = found[name]["wall"] - CRITICAL_PATH * 1000
        found[name]["spread"] = median(found[name]["many"]) * 1000 / found[name]["wall"]
    sides = (f"sverm: `make run`'s server (`python -m sverm.server`, Daphne, access log off) in "
             f"the embedded mode (SQLite, in-memory channel layer, in-process executor with "
             f"SVERM_EXECUTOR_MAX_RUNS={count}), the simulated provider at {LATENCY:g} s, an "
             f"inline YAML definition (hierarchical: manager, worker x3, writer); peer: "
             f"`langgraph dev --no-reload --n-jobs-per-worker {count} --server-log-level "
             f"WARNING` ({peer_version()}, `pip install \"{PEER_PACKAGE}\"` in "
             f"bench/peer/.venv) serving bench/peer/graph.py (StateGraph manager -> 3 parallel "
             f"workers -> writer, async nodes sleeping {LATENCY:g} s). Both servers up at once, "
             f"measured in turns (sverm, peer, ...) after a warm-up run on each")  # fmt: skip
    client = ("one client for both (httpx + websockets): sverm = POST /v1/swarms, then its "
              "WebSocket stream /v1/swarms/{id}/stream until the server closes it after "
              "run.completed; peer = POST /runs/stream (SSE, stream_mode updates) until the "
              "stream ends")  # fmt: skip
    ms = {name: found[name] for name in names}
    lone_how = (f"median of {LONE_RUNS} lone runs each (wall sverm {ms[names[0]]['wall']:.0f} "
                f"ms, peer {ms[names[1]]['wall']:.0f} ms)")  # fmt: skip
    same = "servers and client as in 9's first figure"
    mib = 2**20
    figures = [
        Figure.ratio_target(
            f"9. peer: run overhead (wall - {CRITICAL_PATH:g} s critical path) of one run, "
            "sverm / LangGraph dev", ours["overhead"], peer["overhead"], "<=", 1, "ms",
            f"{sides}. {client}; {lone_how}; wall = POST sent to the stream's end.",
        ),
        Figure.ratio_target(
            "9. peer: first streamed event after POST, sverm / LangGraph dev", ours["first"],
            peer["first"], "<=", 1, "ms",
            f"{same}; {lone_how}; from the POST sent to the first event received (sverm: the "
            f"first "
            f"stored event the stream replays, after the POST's answer and the WebSocket "
            f"handshake; peer: its first SSE event, `metadata`).",
        ),
        Figure.ratio_target(
            "9. peer: GET one run's status, 8 keep-alive connections, sverm / LangGraph dev",
            ours["load"].rps, peer["load"].rps, ">=", 1, "req/s",
            f"servers as in 9's first figure; bench/loadgen.py, {ctx.sizes.connections} "
            f"keep-alive connections, closed loop, {ctx.sizes.load_seconds:g} s each in "
            f"{ROUNDS} alternating slices after "
            f"{ctx.sizes.warmup_seconds:g} s warm-up per slice; sverm GET /v1/swarms/{{id}} (API "
            f"key): {ours['load'].describe()}; peer GET /threads/{{thread_id}}/runs/{{run_id}} "
            f"(no auth configured): {peer['load'].describe()}.",
        ),
        Figure.ratio_target(
            f"9. peer: {count} runs at once, median wall / lone run's, sverm / LangGraph dev",
            ours["spread"], peer["spread"], "<=", 1, "x",
            f"{same}; {count} runs created at once by one client (one connection "
            f"each), {ROUNDS} rounds in turns; median wall sverm "
            f"{median(ours['many']) * 1000:.0f} ms (max {max(ours['many']) * 1000:.0f}), peer "
            f"{median(peer['many']) * 1000:.0f} ms (max {max(peer['many']) * 1000:.0f}), over "
            f"each side's lone-run wall above.",
        ),
        Figure.ratio_target(
            "9. peer: server process tree RSS at idle, sverm / LangGraph dev",
            ours["rss_idle"] / mib, peer["rss_idle"] / mib, "<=", 1, "MiB",
            f"servers as in 9's first figure; sum of VmRSS over the server's process tree "
            f"after the warm-up (a run, a status read) and 1 s idle; after all the "
            f"measurements: sverm "
            f"{ours['rss_end'] / mib:.0f} MiB, peer {peer['rss_end'] / mib:.0f} MiB.",
        ),
    ]  # fmt: skip
    behind = [f.name.removeprefix("9. peer: ") for f in figures if f.met is False]
    ctx.note(
        "Peer: against `langgraph dev` (in-memory runtime) with the same graph shape, sverm's "
        "embedded server is "
        + (f"behind on: {'; '.join(behind)}." if behind else "ahead on every row.")
        + f" A status read takes p50 {ours['load'].p50:.1f} ms on sverm against "
        f"{peer['load'].p50:.1f} ms; {count} runs at once take a median "
        f"{median(ours['many']):.1f} s on sverm (SQLite, one process) against "
        f"{median(peer['many']):.1f} s, lone runs {ours['wall'] / 1000:.2f} s and "
        f"{peer['wall'] / 1000:.2f} s (the peer's queue picks a run up about "
        f"{(peer['first'] - ours['first']) / 1000:.1f} s later)."
    )
    return figures
