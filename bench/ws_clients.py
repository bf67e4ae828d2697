"""`python -m bench.ws_clients URL COUNT EXPECTED`: COUNT WebSocket subscribers of one run stream.

Prints `ready` once every client is connected (a refused handshake is retried; a client that
never connects is counted as failed and misses every event), then collects
each event's latency (receive time minus the `t` the publisher put in its data, in ms; same
machine, same clock) until every client got the terminal event or the timeout passed, and prints
one JSON line: per-client counts, gaps, duplicates, all latencies, and the CPU time this process
spent receiving (to tell a slow server from a client process that cannot keep up)."""

import asyncio
import itertools
import json
import sys
import time

import websockets

CONNECT_CONCURRENCY = 10
CONNECT_ATTEMPTS = 8
# Clients still not connected this long after the start give up (counted as never connected).
CONNECT_DEADLINE_SECONDS = 60


async def _connect(url: str, stats: dict):
    """Connect as a client would: a refused or timed-out handshake is retried with backoff."""
    start = time.perf_counter()
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            socket = await websockets.connect(
                url, max_size=2**22, open_timeout=60, ping_interval=None
            )
        except (OSError, websockets.InvalidHandshake, TimeoutError):
            if attempt == CONNECT_ATTEMPTS:
                raise
            stats["retries"] += 1
            await asyncio.sleep(0.25 * attempt)
            continue
        stats["connect_ms"].append((time.perf_counter() - start) * 1000)
        return socket
    raise AssertionError("unreachable")


async def _client(url: str, ready: asyncio.Semaphore, connected: list, stats: dict) -> None:
    try:
        async with ready:
            socket = await _connect(url, stats)
    except (OSError, websockets.InvalidHandshake, TimeoutError, asyncio.CancelledError):
        stats["failed"] += 1  # never connected (or gave up at the deadline): misses every event
        connected.append(None)
        return
    connected.append(asyncio.current_task())
    seqs: list[int] = []
    stats["clients"].append(seqs)  # what it received, also when the deadline cancels it
    try:
        async for raw in socket:
            now = time.time()
            message = json.loads(raw)
            seqs.append(message["seq"])
            sent = (message.get("data") or {}).get("t")
            if sent is not None:
                stats["latencies"].append((now - sent) * 1000)
            if message["type"] in ("run.completed", "run.failed", "run.cancelled"):
                stats["finished"] += 1
                break
    except websockets.ConnectionClosed:
        pass
    finally:
        await socket.close()


async def main(url: str, count: int, expected: int, timeout: float) -> dict:
    stats: dict = {
        "latencies": [],
        "clients": [],
        "retries": 0,
        "connect_ms": [],
        "failed": 0,
        "finished": 0,
    }
    connected: list = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [asyncio.create_task(_client(url, gate, connected, stats)) for _ in range(count)]
    deadline = time.monotonic() + CONNECT_DEADLINE_SECONDS
    while len(connected) < count:
        failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
        if failed:
            raise failed[0].exception()
        if time.monotonic() > deadline:
            settled = set(connected)
            for task in tasks:
                if task not in settled and not task.done():
                    task.cancel()  # still connecting: it gives up
            await asyncio.sleep(0.5)
            break
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    cpu_start = time.process_time()
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    cpu_seconds = time.process_time() - cpu_start
    for task in pending:
        task.cancel()
    missing = 0
    duplicates = 0
    out_of_order = 0
    for seqs in stats["clients"]:
        missing += len(set(range(1, expected + 1)) - set(seqs))
        duplicates += len(seqs) - len(set(seqs))
        out_of_order += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
    missing += expected * (count - len(stats["clients"]))
    return {
        "clients": count,
        "finished": stats["finished"],
        "missing": missing,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "latencies": stats["latencies"],
        "connect_retries": stats["retries"],
        "connect_failures": stats["failed"],
        "connect_ms": stats["connect_ms"],
        "cpu_seconds": cpu_seconds,  # this process, from `ready` to the last client's end
    }


if __name__ == "__main__":
    url, count, expected, timeout = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    import uvloop  # the clients' own loop in C: receiving must not be what is measured

    result = uvloop.run(main(url, count, expected, timeout))
    print(json.dumps(result), flush=True)
