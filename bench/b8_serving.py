"""8. Serving: the same authenticated `GET /v1/swarms/{id}` and the same WebSocket stream under
one Daphne process (the embedded server, `make run`), N Daphne processes on one socket, and
Uvicorn (1 process, and N workers: docker-compose's server); requests/s, p50, p99 each. Every
server draws its PostgreSQL connections from its pool (DB_POOL_MAX_SIZE, 12 by default); Daphne x1
is also measured without it (DB_POOL_MAX_SIZE=0: a new connection per request, what the pool
replaced). Also the thread hop a sync view pays under ASGI."""

import asyncio
import json
import os
import statistics
import time

import websockets

from bench import loadgen, stack
from bench.context import Context
from bench.fixtures import builtin_definition, run_make
from bench.report import Figure, percentile

NAME = "serving"
STORED_EVENTS = 20
# The pool comparison: Daphne x1 with the pool turned off, a connection opened per request.
NO_POOL_LABEL = "Daphne, 1 process, no pool (DB_POOL_MAX_SIZE=0)"


def _finished_run(ctx: Context) -> str:
    from swarms.models import Run
    from swarms.services.lifecycle import run_event_add

    run_id = run_make(ctx.tenant, builtin_definition("research-swarm-v1"))
    Run.objects.filter(pk=run_id).update(status="running")
    for index in range(STORED_EVENTS - 1):
        run_event_add(run_id=run_id, type="agent.message", agent_id="researcher-1",
                      data={"i": index})  # fmt: skip
    run_event_add(run_id=run_id, type="run.completed", agent_id="", data={"cost_usd": "0"})
    Run.objects.filter(pk=run_id).update(status="completed")
    return run_id


async def _ws_sessions(url: str, sessions: int, concurrency: int) -> list[float]:
    """Milliseconds from connecting to the server's close after the replayed terminal event."""
    gate = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async def one():
        async with gate:
            start = time.perf_counter()
            received = 0
            async with websockets.connect(url, open_timeout=30, ping_interval=None) as socket:
                async for raw in socket:
                    received += 1
                    if json.loads(raw)["type"] == "run.completed":
                        break
            if received != STORED_EVENTS:
                raise RuntimeError(f"a stream replayed {received} of {STORED_EVENTS} events")
            times.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one() for _ in range(sessions)))
    return times


def _serve(ctx: Context, kind: str, processes: int, run_id: str, env: dict | None = None) -> dict:
    sizes = ctx.sizes
    kwargs = {"connections": sizes.connections, "seconds": sizes.load_seconds,
              "warmup": sizes.warmup_seconds}  # fmt: skip
    result = {}
    with stack.server(kind, env or ctx.env, ctx.log_dir, processes) as base:
        api = loadgen.run(base + f"/v1/swarms/{run_id}", headers=ctx.tenant.headers, **kwargs)
        if api.errors or not api.requests:
            raise RuntimeError(f"{kind}: {api.errors} errors of {api.requests}: {api.statuses}")
        result["api"] = api
        if env is None:
            sync, asynchronous = loadgen.run_in_turns(
                [base + "/bench/hop/sync", base + "/bench/hop/async"],
                **{**kwargs, "seconds": kwargs["seconds"] / 2},
            )
            if sync.errors or asynchronous.errors:
                raise RuntimeError(f"/bench/hop: {sync.statuses} {asynchronous.statuses}")
            result["hop"] = {"sync": sync, "async": asynchronous}
            url = (base.replace("http://", "ws://") + f"/v1/swarms/{run_id}/stream?token="
                   f"{ctx.tenant.api_key}")  # fmt: skip
            result["ws"] = asyncio.run(_ws_sessions(url, sizes.ws_sessions, sizes.connections))
    return result


def _pool_size() -> int:
    from django.conf import settings

    return settings.DB_POOL_MAX_SIZE


def _sync_only_middleware() -> list[str]:
    from django.conf import settings
    from django.utils.module_loading import import_string

    return [
        path
        for path in settings.MIDDLEWARE
        if not getattr(import_string(path), "async_capable", False)
    ]


def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    run_id = _finished_run(ctx)
    cores = os.cpu_count() or 2
    configs = (
        ("daphne", 1, "Daphne, 1 process (make run)"),
        ("daphne-multi", cores, f"Daphne, {cores} processes on one socket"),
        ("uvicorn", 1, "Uvicorn, 1 process"),
        ("uvicorn", cores, f"Uvicorn, --workers {cores} (docker-compose)"),
    )
    if ctx.quick:  # the embedded server (the baseline) and the production one
        configs = (configs[0], configs[3])
    measured: dict[str, dict] = {}
    figures: list[Figure] = []
    for kind, processes, label in configs:
        try:
            measured[label] = _serve(ctx, kind, processes, run_id)
        except Exception as exc:
            figures.append(Figure.error(f"8. serving: {label}", exc))
    try:
        no_pool = {**ctx.env, "DB_POOL_MAX_SIZE": "0"}
        measured[NO_POOL_LABEL] = _serve(ctx, "daphne", 1, run_id, no_pool)
    except Exception as exc:
        figures.append(Figure.error(f"8. serving: {NO_POOL_LABEL}", exc))
    reference = measured.get(configs[0][2])
    base_rps = reference["api"].rps if reference else None
    how = (f"GET /v1/swarms/{{id}} with an API key, closed loop from {sizes.connections} "
           f"keep-alive connections (bench/loadgen.py), {sizes.warmup_seconds:g} s warm-up + "
           f"{sizes.load_seconds:g} s measured; access logs off; PostgreSQL + Redis; the same "
           f"ASGI app (bench.settings: sverm plus the bench routes); each process's "
           f"connections from its pool of DB_POOL_MAX_SIZE ({_pool_size()}, the default) "
           f"unless the label says no pool")  # fmt: skip
    for label, result in measured.items():
        api = result["api"]
        extra = ""
        if "ws" in result:
            ws = result["ws"]
            extra = (f"; WebSocket /v1/swarms/{{id}}/stream replaying {STORED_EVENTS} stored "
                     f"events: {len(ws)} sessions ({sizes.connections} at a time), p50 "
                     f"{percentile(ws, 50):.1f} ms, p99 {percentile(ws, 99):.1f} ms")  # fmt: skip
        figures.append(Figure.report(
            f"8. serving: {label}, requests/s (baseline: Daphne, 1 process)", api.rps, base_rps,
            "req/s", f"{how}; {api.describe()}{extra}.",
        ))  # fmt: skip
    for label, result in measured.items():
        if "hop" in result:
            sync, asynchronous = result["hop"]["sync"], result["hop"]["async"]
            figures.append(Figure.report(
                f"8. thread hop: async view / sync view requests/s, constant JSON, {label}",
                asynchronous.rps, sync.rps, "req/s",
                f"/bench/hop/async vs /bench/hop/sync (no database, no DRF, the full middleware "
                f"stack), {sizes.load_seconds / 2:g} s each in two alternating slices; sync p50 "
                f"{sync.p50:.2f} ms, async "
                f"p50 {asynchronous.p50:.2f} ms.",
            ))  # fmt: skip
    if measured:
        best = max(measured.items(), key=lambda item: item[1]["api"].rps)
        ranking = "; ".join(
            f"{label}: {r['api'].rps:.0f} req/s, p50 {r['api'].p50:.1f} ms, "
            f"p99 {r['api'].p99:.1f} ms"
            for label, r in sorted(measured.items(), key=lambda item: -item[1]["api"].rps)
        )
        lead = best[1]["api"].rps / base_rps if base_rps else 0
        verdict = (
            f"fastest: {best[0]}, {lead:.2f}x Daphne x1"
            if lead >= 1.15
            else f"no configuration is ahead of Daphne x1 by 15% or more (best {best[0]}, "
            f"{lead:.2f}x): on these 2 cores the request's own work (authentication, the rate "
            f"limiter, two queries) and the shared cores bound every server, so the server "
            f"choice does not decide throughput here"
        )
        ctx.note(f"Serving (GET /v1/swarms/{{id}}): {ranking}; {verdict}.")
    pooled, unpooled = reference, measured.get(NO_POOL_LABEL)
    if pooled and unpooled and unpooled["api"].rps:
        ctx.note(
            f"Connection pool (Daphne x1, GET /v1/swarms/{{id}}): with the default pool "
            f"{pooled['api'].rps:.0f} req/s, p99 {pooled['api'].p99:.1f} ms; without it "
            f"(DB_POOL_MAX_SIZE=0, a new PostgreSQL connection per request) "
            f"{unpooled['api'].rps:.0f} req/s, p99 {unpooled['api'].p99:.1f} ms: the pool "
            f"serves {pooled['api'].rps / unpooled['api'].rps:.2f}x the requests, and bounds "
            f"the process's connections."
        )
    hops = {
        label: r["hop"]["async"].rps / r["hop"]["sync"].rps
        for label, r in measured.items()
        if "hop" in r and r["hop"]["sync"].rps
    }
    if hops:
        listed = ", ".join(f"{label} {ratio:.2f}x" for label, ratio in hops.items())
        sync_only = ", ".join(_sync_only_middleware()) or "none"
        ctx.note(
            f"Thread hop (async / sync view, constant JSON, no database): {listed}. A sync view "
            f"under ASGI runs in a thread; an async view skips that hop only when every "
            f"middleware is async-capable. Sync-only middleware here: {sync_only}; with one, "
            f"Django runs the chain in a thread and adapts an async view back to the loop (a "
            f"second hop), so async views cannot win until it is gone (e.g. static files served "
            f"by the proxy or an ASGI static app in sverm/asgi.py instead of WhiteNoise's "
            f"middleware). Django's async ORM also runs each query in a thread, and DRF views "
            f"are sync. "
            + (
                "The hop is worth removing on the hot read path: serve GET /v1/swarms/{id} "
                "from an async Django view (same auth, scoping and serializer called from it)."
                if statistics.median(hops.values()) >= 1.2
                else "The median gain is under 20% even with no database work, so converting "
                "the hot DRF read paths to async (which needs adrf or hand-written views) does "
                "not pay here; the request's database work costs more."
            )
        )
    return figures
