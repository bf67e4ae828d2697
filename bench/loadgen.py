"""A loopback HTTP/1.1 load generator: N keep-alive connections, each sending the next request
as soon as the last answer arrived (closed loop), for a fixed time; requests/s and latencies.

Written on asyncio streams (uvloop when installed) so that the client spends a small share of the
machine next to the server it measures; it parses only what it needs (status, Content-Length or
chunked bodies)."""

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.report import percentile


@dataclass(frozen=True)
class Load:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @classmethod
    def merge(cls, loads: "list[Load]") -> "Load":
        statuses: dict[int, int] = {}
        for load in loads:
            for status, count in load.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        return cls(
            requests=sum(load.requests for load in loads),
            errors=sum(load.errors for load in loads),
            seconds=sum(load.seconds for load in loads),
            latencies_ms=[ms for load in loads for ms in load.latencies_ms],
            statuses=statuses,
        )

    def describe(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s, {self.errors} errors, "
            f"p50 {self.p50:.2f} ms, p99 {self.p99:.2f} ms"
        )


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _client(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    warm_until: float,
    latencies: list[float],
    statuses: dict[int, int],
    counts: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            start = time.perf_counter()
            if start >= deadline:
                return
            writer.write(request)
            status = await _read_response(reader)
            end = time.perf_counter()
            if start >= warm_until:
                latencies.append((end - start) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                counts[0] += 1
                if not 200 <= status < 300:
                    counts[1] += 1
    finally:
        writer.close()


async def _run(url: str, headers: dict[str, str], connections: int, seconds: float,
               warmup: float) -> Load:  # fmt: skip
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counts = [0, 0]
    begin = time.perf_counter()
    warm_until = begin + warmup
    deadline = warm_until + seconds
    await asyncio.gather(
        *(
            _client(parts.hostname, parts.port, request, deadline, warm_until, latencies,
                    statuses, counts)
            for _ in range(connections)
        )
    )  # fmt: skip
    measured = time.perf_counter() - warm_until
    return Load(counts[0], counts[1], measured, latencies, statuses)


def _loop_factory():
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:
        return None


def run(url: str, *, headers: dict[str, str] | None = None, connections: int = 8,
        seconds: float = 5.0, warmup: float = 1.0) -> Load:  # fmt: skip
    """Load `url` from `connections` keep-alive connections for `warmup` + `seconds`; only
    requests started after the warm-up are counted."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_run(url, headers or {}, connections, seconds, warmup))


def run_in_turns(urls: list[str], *, rounds: int = 2, seconds: float = 5.0, **kwargs) -> list[Load]:
    """Each URL loaded for `seconds` in total, in `rounds` alternating slices (a, b, a, b), so
    that a figure and its baseline share the same moments of a shared machine."""
    slices: list[list[Load]] = [[] for _ in urls]
    for _ in range(rounds):
        for index, url in enumerate(urls):
            slices[index].append(run(url, seconds=seconds / rounds, **kwargs))
    return [Load.merge(parts) for parts in slices]
