"""6. Streaming: an event from the engine's store-and-publish path (run_event_add, committed, then
group_send through channels-redis) to a WebSocket client of a separate Daphne process, p50/p99;
then many subscribers on one run at 50 events/s, counting every event each client missed. The
baseline is a raw Redis pub/sub round trip measured in the same run."""

import asyncio
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import redis.asyncio as aioredis

from bench import stack
from bench.context import Context
from bench.fixtures import builtin_definition, run_make
from bench.report import Figure, percentile

NAME = "streaming"
RATE = 50


async def _redis_round_trips(url: str, count: int, rate: float) -> list[float]:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe("bench.rtt")
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    latencies = []

    async def receive():
        while len(latencies) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                latencies.append((time.time() - float(message["data"])) * 1000)

    receiver = asyncio.create_task(receive())
    start = time.monotonic()
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        await client.publish("bench.rtt", repr(time.time()))
    await asyncio.wait_for(receiver, timeout=30)
    await pubsub.aclose()
    await client.aclose()
    return latencies


def _clients(ctx: Context, url: str, count: int, expected: int, timeout: float):
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.ws_clients", url, str(count), str(expected), str(timeout)],
        cwd=stack.ROOT, env=ctx.env, stdout=subprocess.PIPE,
        stderr=(ctx.log_dir / "ws_clients.log").open("ab"), start_new_session=True, text=True,
    )  # fmt: skip
    stack._running.append(process)
    return process


def _await_line(process: subprocess.Popen, timeout: float) -> str:
    """The next stdout line of `process`, or an error when it exits or the time runs out."""
    result: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as reader:
        future = reader.submit(process.stdout.readline)
        try:
            result.append(future.result(timeout=timeout))
        except TimeoutError:
            stack.stop(process)
            raise RuntimeError(f"WebSocket clients gave no answer within {timeout:.0f} s") from None
    if not result[0]:
        raise RuntimeError(f"WebSocket clients exited with {process.wait()}")
    return result[0].strip()


async def _publish(run_id: str, count: int, rate: float) -> float:
    """`count` events through run_event_add at `rate`/s from one DB thread, as the executor
    stores them (the last one terminal); returns the rate achieved."""
    from asgiref.sync import sync_to_async

    from swarms.services.runs import run_event_add

    db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-publisher")
    store = sync_to_async(run_event_add, thread_sensitive=False, executor=db)
    start = time.monotonic()
    try:
        for index in range(count):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            last = index == count - 1
            data = {"t": time.time(), "i": index}
            if last:
                data["cost_usd"] = "0"
            await store(run_id=run_id, type="run.completed" if last else "agent.message",
                        agent_id="" if last else "researcher-1", data=data)  # fmt: skip
        elapsed = time.monotonic() - start
    finally:

        def close():
            from django.db import connection

            connection.close()

        await sync_to_async(close, thread_sensitive=False, executor=db)()
        db.shutdown(wait=True)
    return (count - 1) / elapsed if elapsed else 0.0


def _stream(ctx: Context, base: str, subscribers: int, events: int) -> tuple[dict, float]:
    from swarms.models import Run

    run_id = run_make(ctx.tenant, builtin_definition("research-swarm-v1"))
    Run.objects.filter(pk=run_id).update(status="running")
    url = (
        base.replace("http://", "ws://") + f"/v1/swarms/{run_id}/stream?token={ctx.tenant.api_key}"
    )
    timeout = events / RATE + 60
    process = _clients(ctx, url, subscribers, events, timeout)
    try:
        ready = _await_line(process, 120)
        if ready != "ready":
            raise RuntimeError(f"WebSocket clients said {ready!r}")
        achieved = asyncio.run(_publish(run_id, events, RATE))
        result = json.loads(_await_line(process, timeout + 30))
    finally:
        stack.stop(process)
    return result, achieved


@contextmanager
def pubsub_layer():
    """This process publishes through RedisPubSubChannelLayer while the block runs."""
    from channels.layers import channel_layers
    from django.conf import settings

    before = settings.CHANNEL_LAYERS
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [settings.REDIS_URL]},
    }}  # fmt: skip
    channel_layers.backends.clear()
    try:
        yield
    finally:
        settings.CHANNEL_LAYERS = before
        channel_layers.backends.clear()


def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    redis_count = sizes.single_stream_events
    raw = asyncio.run(_redis_round_trips(ctx.env["REDIS_URL"], redis_count, RATE))
    raw_p50, raw_p99 = percentile(raw, 50), percentile(raw, 99)
    figures = []
    many_events = int(RATE * sizes.stream_seconds)
    with stack.server("daphne", ctx.env, ctx.log_dir) as base:
        single, single_rate = _stream(ctx, base, 1, sizes.single_stream_events)
        many, many_rate = _stream(ctx, base, sizes.subscribers, many_events)
    pubsub = None
    if not ctx.quick:  # the what-if runs in the full suite only
        pubsub_env = {**ctx.env, "BENCH_PUBSUB_LAYER": "1"}
        try:
            with pubsub_layer(), stack.server("daphne", pubsub_env, ctx.log_dir) as base:
                pubsub, pubsub_rate = _stream(ctx, base, sizes.subscribers, many_events)
        except Exception as exc:
            figures.append(Figure.error("6. what-if: RedisPubSubChannelLayer", exc))
    how = (f"one Daphne process, channels-redis on Redis, events stored and published by "
           f"swarms.services.runs.run_event_add from one DB thread as the executor does, paced "
           f"at {RATE}/s; each event carries its send time, clients (bench/ws_clients.py, a "
           f"separate process, `websockets`) on /v1/swarms/{{id}}/stream record receive time - "
           f"send time; baseline: raw Redis PUBLISH -> SUBSCRIBE round trip, {redis_count} "
           f"messages at {RATE}/s, p50 {raw_p50:.2f} ms / p99 {raw_p99:.2f} ms")  # fmt: skip
    lat = single["latencies"]
    figures.append(Figure.value_target(
        "6. streaming: engine publish -> WebSocket receive, 1 subscriber, p99 (baseline: raw "
        "Redis pub/sub p99)", percentile(lat, 99), raw_p99, "<=", 100, "ms",
        f"{how}; {sizes.single_stream_events} events (achieved {single_rate:.0f}/s), p50 "
        f"{percentile(lat, 50):.1f} ms; missing {single['missing']}.",
    ))  # fmt: skip
    figures.append(Figure.report(
        "6. streaming: engine publish -> WebSocket receive, 1 subscriber, p50 (baseline: raw "
        "Redis pub/sub p50)", percentile(lat, 50), raw_p50, "ms", f"as above; {how}.",
    ))  # fmt: skip
    lat = many["latencies"]
    expected = many_events * sizes.subscribers
    figures.append(Figure.value_target(
        f"6. streaming: {sizes.subscribers} subscribers on one run at {RATE} events/s, p99",
        percentile(lat, 99), raw_p99, "<=", 100, "ms",
        f"{how}; {many_events} events (achieved {many_rate:.0f}/s) to each of "
        f"{sizes.subscribers} clients = {expected:,} deliveries; received {len(lat):,}, p50 "
        f"{percentile(lat, 50):.1f} ms; {many['finished']} clients saw the terminal event; "
        f"connecting {sizes.subscribers} clients (10 handshakes at a time, each retried up "
        f"to 7 times) took {many['connect_retries']} retries, {many['connect_failures']} "
        f"never connected, connect p99 {percentile(many['connect_ms'], 99):.0f} ms.",
    ))  # fmt: skip
    figures.append(Figure.value_target(
        f"6. streaming: events missing at the clients, {sizes.subscribers} subscribers",
        many["missing"], None, "<=", 0, "events",
        f"for each client, seqs 1..{many_events} minus those it had received when it saw the "
        f"terminal event or the deadline ({many_events / RATE + 60:.0f} s) passed (the stream "
        f"fills gaps from the database; late counts as missing), clients that never connected "
        f"missing all; "
        f"{many['connect_failures']} never connected, duplicates {many['duplicates']}, out of "
        f"order {many['out_of_order']}.",
    ))  # fmt: skip
    if pubsub is not None:
        plat = pubsub["latencies"]
        figures.append(Figure.report(
            f"6. what-if: {sizes.subscribers} subscribers, channels-redis RedisPubSubChannelLayer, "
            "p99 (baseline: the configured RedisChannelLayer's p99)", percentile(plat, 99),
            percentile(lat, 99), "ms",
            f"the {sizes.subscribers}-subscriber stream again with CHANNEL_LAYERS set to "
            f"channels_redis.pubsub.RedisPubSubChannelLayer in Daphne and the publisher "
            f"(bench/settings.py, BENCH_PUBSUB_LAYER=1); {many_events} events (achieved "
            f"{pubsub_rate:.0f}/s), received {len(plat):,}, p50 {percentile(plat, 50):.1f} ms, "
            f"missing {pubsub['missing']} ({pubsub['connect_failures']} clients never "
            f"connected).",
        ))  # fmt: skip
    if many["connect_failures"] or many["connect_retries"]:
        ctx.note(
            f"RECOMMENDED (streaming, connecting {sizes.subscribers} subscribers: "
            f"{many['connect_retries']} handshake retries, {many['connect_failures']} never "
            f"connected): Daphne drops a WebSocket whose consumer has not accepted within 5 s "
            f"(--websocket_connect_timeout), and every quiet stream re-joins its group and "
            f"queries the database every RESYNC_SECONDS (2 s, swarms/consumers.py), all on one "
            f"process's single database thread: {sizes.subscribers} quiet streams make "
            f"{sizes.subscribers / 2:.0f} group_adds and queries a second before any event "
            f"flows. Resync less often (e.g. 15-30 s, with jitter) or only after a seq gap or a "
            f"channel-layer error, and accept before the replay's database reads."
        )
    if percentile(lat, 99) > 100 or many["missing"]:
        if pubsub is None:
            alternative = "not measured in this run (the full suite measures it)."
        else:
            p99 = percentile(pubsub["latencies"], 99)
            wins = p99 < percentile(lat, 99) and pubsub["missing"] <= many["missing"]
            alternative = (
                f"p99 {p99:.0f} ms, {pubsub['missing']} missing: "
                + ("better here on both counts; worth switching CHANNEL_LAYERS in "
                   "sverm/settings.py to it, after a second run confirms it."
                   if wins else "not better on both counts here; keep RedisChannelLayer.")
            )  # fmt: skip
        ctx.note(
            f"RECOMMENDED (streaming, {sizes.subscribers} subscribers p99 "
            f"{percentile(lat, 99):.0f} ms > 100 ms, {many['missing']} events missing): one "
            f"event costs one channels-redis write per subscriber and one Daphne process "
            f"decodes and frames every delivery on one core. Serve streams from several "
            f"processes (benchmark 8) and send one message per batch of events (benchmark 3). "
            f"Measured alternative, channels_redis.pubsub.RedisPubSubChannelLayer (one PUBLISH "
            f"per event, fanned out in each process): {alternative} Missing events are never "
            f"silent: a client that reconnects with `after=<seq>` gets them from the database."
        )
    ctx.note(
        f"Streaming: 1 subscriber p50 {percentile(single['latencies'], 50):.1f} ms / p99 "
        f"{percentile(single['latencies'], 99):.1f} ms (raw Redis p99 {raw_p99:.2f} ms); "
        f"{sizes.subscribers} subscribers p50 {percentile(lat, 50):.1f} ms / p99 "
        f"{percentile(lat, 99):.1f} ms, {many['missing']} missing. channels-redis sends a "
        f"group message to each subscriber's channel separately (N Redis writes per event), and "
        f"one Daphne process decodes, dispatches and frames every delivery on one core."
    )
    return figures
