"""6. Streaming: an event from the engine's store-and-publish path (run_event_add, committed, then
group_send through channels-redis) to a WebSocket client of a separate server process, p50/p99;
then many subscribers on one run at 50 events/s, counting every event each client missed and
the server's CPU per delivery. On docker-compose's server (Uvicorn workers: the targets) and on
`make run`'s (one Daphne process). The baseline is a raw Redis pub/sub round trip measured in the
same run."""

import asyncio
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

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


def _tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes and all their descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending, seen = 0, list(pids), set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / tick


def _server_pids(base: str) -> list[int]:
    """The processes stack.server started for `base` (named after its port)."""
    port = str(urlsplit(base).port)
    return [p.pid for p in stack._running if port in getattr(p, "bench_name", "").split("-")]


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

    from swarms.services.lifecycle import run_event_add

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
    servers = _server_pids(base)
    try:
        ready = _await_line(process, 120)
        if ready != "ready":
            raise RuntimeError(f"WebSocket clients said {ready!r}")
        cpu_before = _tree_cpu_seconds(servers)
        achieved = asyncio.run(_publish(run_id, events, RATE))
        result = json.loads(_await_line(process, timeout + 30))
        result["server_cpu_seconds"] = _tree_cpu_seconds(servers) - cpu_before
    finally:
        stack.stop(process)
    return result, achieved


# Where the streams are served: docker-compose's server first (the targets), then `make run`'s.
SERVERS = (
    ("uvicorn", 2, "Uvicorn --workers 2 (docker-compose)"),
    ("daphne", 1, "Daphne, 1 process (make run)"),
)


def _per_delivery_us(result: dict, key: str) -> float:
    return result[key] / max(len(result["latencies"]), 1) * 1e6


def _many_how(many: dict, subscribers: int, events: int, rate: float) -> str:
    lat = many["latencies"]
    return (
        f"{events} events (achieved {rate:.0f}/s) to each of {subscribers} clients = "
        f"{events * subscribers:,} deliveries; received {len(lat):,}, p50 "
        f"{percentile(lat, 50):.1f} ms, max {max(lat, default=0):.0f} ms; {many['finished']} "
        f"clients saw the terminal event; missing {many['missing']}, duplicates "
        f"{many['duplicates']}, out of order {many['out_of_order']}; CPU per delivery: server "
        f"{_per_delivery_us(many, 'server_cpu_seconds'):.1f} us (its process tree, while the "
        f"events flowed), client process {_per_delivery_us(many, 'cpu_seconds'):.1f} us; "
        f"connecting {subscribers} clients (10 handshakes at a time, each retried up to 7 "
        f"times) took {many['connect_retries']} retries, {many['connect_failures']} never "
        f"connected, connect p99 {percentile(many['connect_ms'], 99):.0f} ms"
    )


def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    redis_count = sizes.single_stream_events
    raw = asyncio.run(_redis_round_trips(ctx.env["REDIS_URL"], redis_count, RATE))
    raw_p50, raw_p99 = percentile(raw, 50), percentile(raw, 99)
    many_events = int(RATE * sizes.stream_seconds)
    measured = {}  # label: ((1 subscriber, rate), (many subscribers, rate))
    for kind, processes, label in SERVERS:
        with stack.server(kind, ctx.env, ctx.log_dir, processes) as base:
            single = _stream(ctx, base, 1, sizes.single_stream_events)
            many = _stream(ctx, base, sizes.subscribers, many_events)
        measured[label] = single, many
    plain = plain_error = None  # the what-if: docker-compose's server without permessage-deflate
    if not ctx.quick:
        kind, processes, _ = SERVERS[0]
        plain_env = {**ctx.env, "UVICORN_WS_PER_MESSAGE_DEFLATE": "false"}
        try:
            with stack.server(kind, plain_env, ctx.log_dir, processes) as base:
                plain = _stream(ctx, base, sizes.subscribers, many_events)
        except Exception as exc:
            plain_error = exc
    how = (f"channels-redis on Redis, events stored and published by "
           f"swarms.services.lifecycle.run_event_add from one DB thread as the executor does, "
           f"paced at {RATE}/s; each event carries its send time, clients (bench/ws_clients.py, a "
           f"separate process, `websockets` on uvloop) on /v1/swarms/{{id}}/stream record "
           f"receive time - send time; baseline: raw Redis PUBLISH -> SUBSCRIBE round trip, "
           f"{redis_count} messages at {RATE}/s, p50 {raw_p50:.2f} ms / p99 {raw_p99:.2f} "
           f"ms")  # fmt: skip
    compose, dev = (label for _, _, label in SERVERS)
    (single, single_rate), (many, many_rate) = measured[compose]
    lat = single["latencies"]
    figures = [
        Figure.value_target(
            f"6. streaming: engine publish -> WebSocket receive, 1 subscriber, {compose}, p99 "
            "(baseline: raw Redis pub/sub p99)", percentile(lat, 99), raw_p99, "<=", 100, "ms",
            f"{compose}, {how}; {sizes.single_stream_events} events (achieved "
            f"{single_rate:.0f}/s), p50 {percentile(lat, 50):.1f} ms; missing "
            f"{single['missing']}.",
        ),
        Figure.report(
            f"6. streaming: engine publish -> WebSocket receive, 1 subscriber, {compose}, p50 "
            "(baseline: raw Redis pub/sub p50)", percentile(lat, 50), raw_p50, "ms",
            f"as above; {compose}, {how}.",
        ),
    ]  # fmt: skip
    lat = many["latencies"]
    figures.append(Figure.value_target(
        f"6. streaming: {sizes.subscribers} subscribers on one run at {RATE} events/s, "
        f"{compose}, p99", percentile(lat, 99), raw_p99, "<=", 100, "ms",
        f"{compose}, {how}; {_many_how(many, sizes.subscribers, many_events, many_rate)}.",
    ))  # fmt: skip
    figures.append(Figure.value_target(
        f"6. streaming: events missing at the clients, {sizes.subscribers} subscribers, {compose}",
        many["missing"], None, "<=", 0, "events",
        f"for each client, seqs 1..{many_events} minus those it had received when it saw the "
        f"terminal event or the deadline ({many_events / RATE + 60:.0f} s) passed (the stream "
        f"fills gaps from the database; late counts as missing), clients that never connected "
        f"missing all; {many['connect_failures']} never connected, duplicates "
        f"{many['duplicates']}, out of order {many['out_of_order']}.",
    ))  # fmt: skip
    (dev_single, _), (dev_many, dev_rate) = measured[dev]
    dev_lat = dev_many["latencies"]
    figures.append(Figure.report(
        f"6. streaming: {sizes.subscribers} subscribers on one run at {RATE} events/s, {dev}, "
        f"p99 (baseline: {compose})", percentile(dev_lat, 99), percentile(lat, 99), "ms",
        f"the same stream on {dev}: "
        f"{_many_how(dev_many, sizes.subscribers, many_events, dev_rate)}; 1 subscriber p99 "
        f"{percentile(dev_single['latencies'], 99):.1f} ms.",
    ))  # fmt: skip
    figures.append(Figure.value_target(
        f"6. streaming: events missing at the clients, {sizes.subscribers} subscribers, {dev}",
        dev_many["missing"], None, "<=", 0, "events",
        f"as for {compose}; {dev_many['connect_failures']} never connected, duplicates "
        f"{dev_many['duplicates']}, out of order {dev_many['out_of_order']}.",
    ))  # fmt: skip
    server_us = {
        label: _per_delivery_us(found, "server_cpu_seconds")
        for label, (_, (found, _)) in measured.items()
    }
    figures.append(Figure.report(
        f"6. streaming: server CPU per delivery, {sizes.subscribers} subscribers, {compose} "
        f"(baseline: {dev})", server_us[compose], server_us[dev], "us",
        f"CPU time (user + system) of the server's process tree while the "
        f"{sizes.subscribers}-subscriber stream ran, divided by the deliveries received; what "
        f"one process can sustain is about 1e6 / this deliveries a second. The client process "
        f"spent {_per_delivery_us(many, 'cpu_seconds'):.1f} us ({compose}) and "
        f"{_per_delivery_us(dev_many, 'cpu_seconds'):.1f} us ({dev}) per delivery.",
    ))  # fmt: skip
    deliveries = sizes.subscribers * RATE
    if plain is not None:
        found, rate = plain
        plain_us = _per_delivery_us(found, "server_cpu_seconds")
        figures.append(Figure.report(
            f"6. what-if: {sizes.subscribers} subscribers, {compose} with "
            f"--ws-per-message-deflate=false, server CPU per delivery (baseline: as configured)",
            plain_us, server_us[compose], "us",
            f"the {sizes.subscribers}-subscriber stream again on {compose} with Uvicorn's "
            f"permessage-deflate off (UVICORN_WS_PER_MESSAGE_DEFLATE=false; the clients offer "
            f"it, as browsers do, and Uvicorn compresses every frame per connection by "
            f"default): p99 {percentile(found['latencies'], 99):.1f} ms (as configured: "
            f"{percentile(lat, 99):.1f} ms); "
            f"{_many_how(found, sizes.subscribers, many_events, rate)}.",
        ))  # fmt: skip
        if plain_us < 0.8 * server_us[compose]:
            ctx.note(
                f"Streaming: compressing each frame (Uvicorn's default permessage-deflate, "
                f"negotiated by browsers) is {1 - plain_us / server_us[compose]:.0%} of the "
                f"server's CPU per delivery ({server_us[compose]:.1f} us with it, "
                f"{plain_us:.1f} us without, {sizes.subscribers} subscribers). Worth "
                f"`--ws-per-message-deflate=false` in docker-compose.yml if the events' bytes on "
                f"the wire matter less than CPU (they are small JSON, but agent messages carry "
                f"model output)."
            )
    elif plain_error is not None:
        figures.append(Figure.error(
            f"6. what-if: {sizes.subscribers} subscribers, {compose} without deflate", plain_error
        ))  # fmt: skip
    for label, (_, (found, _)) in measured.items():
        if found["connect_failures"] or found["connect_retries"]:
            ctx.note(
                f"RECOMMENDED (streaming on {label}, connecting {sizes.subscribers} "
                f"subscribers: {found['connect_retries']} handshake retries, "
                f"{found['connect_failures']} never connected): a stream authenticates and "
                f"reads its run (on the process's one database thread) before it accepts, and a "
                f"server drops a WebSocket not accepted in time (Daphne: 5 s, "
                f"--websocket_connect_timeout); accept first and check access after, or raise "
                f"the timeout."
            )
    p99 = percentile(lat, 99)
    if p99 > 100 or many["missing"]:
        ctx.note(
            f"RECOMMENDED (streaming on {compose}, {sizes.subscribers} subscribers p99 "
            f"{p99:.0f} ms > 100 ms or {many['missing']} events missing): each delivery costs "
            f"the server {server_us[compose]:.1f} us of CPU, so {deliveries:,} deliveries a "
            f"second need {server_us[compose] * deliveries / 1e6:.2f} cores of a 2-core "
            f"machine that also runs the clients ({_per_delivery_us(many, 'cpu_seconds'):.1f} "
            f"us per delivery), PostgreSQL and Redis: check this run's load average (other work "
            f"on the cores), the deflate what-if, and the server's profile (py-spy) for what "
            f"grew. Missing events are never silent: a client that reconnects with "
            f"`after=<seq>` gets them from the database."
        )
    dev_p99 = percentile(dev_lat, 99)
    if dev_p99 > 100:
        ctx.note(
            f"Streaming on {dev}: {sizes.subscribers} subscribers p99 {dev_p99:.0f} ms. One "
            f"Daphne process frames and writes every delivery through Twisted and autobahn on "
            f"one core at {server_us[dev]:.1f} us each ({compose}: {server_us[compose]:.1f} "
            f"us), so {deliveries:,} deliveries a second need "
            f"{server_us[dev] * deliveries / 1e6:.2f} cores: a crowd that size on one run needs "
            f"docker-compose's Uvicorn workers, not the embedded server."
        )
    ctx.note(
        f"Streaming: 1 subscriber p99 {percentile(single['latencies'], 99):.1f} ms (raw Redis "
        f"p99 {raw_p99:.2f} ms); {sizes.subscribers} subscribers p50 {percentile(lat, 50):.1f} "
        f"ms / p99 {p99:.1f} ms, {many['missing']} missing on {compose}; p99 {dev_p99:.1f} ms, "
        f"{dev_many['missing']} missing on {dev}. Each server process has one channel-layer "
        f"membership per run, whatever its number of streams, hands every live message to its "
        f"local streams and encodes each event's JSON once (swarms/fanout.py, "
        f"swarms/consumers.py); what a delivery still costs ({server_us[compose]:.1f} us of "
        f"server CPU on {compose}, {server_us[dev]:.1f} us on {dev}) is mostly the server's "
        f"own WebSocket compression, framing and write."
    )
    return figures
