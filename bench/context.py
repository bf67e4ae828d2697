"""What every benchmark gets: the sizes of this run, the tenant, the child-process environment,
in-process request timing, and a place for findings that go into the report."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.fixtures import Tenant
from bench.report import median


@dataclass(frozen=True)
class Sizes:
    swarms: int
    ledger_rows: int
    ledger_small: int
    repetitions: int
    load_seconds: float
    warmup_seconds: float
    connections: int
    engine_runs: int
    critical_runs: int
    many_runs: int
    subscribers: int
    stream_seconds: float
    single_stream_events: int
    ws_sessions: int


QUICK = Sizes(
    swarms=20_000, ledger_rows=20_000, ledger_small=1_000, repetitions=5, load_seconds=1.5,
    warmup_seconds=0.5, connections=8, engine_runs=3, critical_runs=2, many_runs=12,
    subscribers=50, stream_seconds=3.0, single_stream_events=60,
    ws_sessions=10,
)  # fmt: skip
FULL = Sizes(
    swarms=1_000_000, ledger_rows=1_000_000, ledger_small=1_000, repetitions=9,
    load_seconds=8.0, warmup_seconds=1.5, connections=8, engine_runs=20, critical_runs=7,
    many_runs=100, subscribers=500, stream_seconds=6.0,
    single_stream_events=250, ws_sessions=60,
)  # fmt: skip


@dataclass
class Context:
    quick: bool
    sizes: Sizes
    tenant: Tenant
    env: dict[str, str]  # for child processes (servers, workers)
    log_dir: Path
    findings: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.findings.append(text)


def time_calls(call: Callable[[], object], repetitions: int, warmup: int = 1) -> list[float]:
    """Milliseconds of each of `repetitions` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def median_ms(call: Callable[[], object], repetitions: int, warmup: int = 1) -> float:
    return median(time_calls(call, repetitions, warmup))


def paired_ms(calls: list[Callable[[], object]], repetitions: int, warmup: int = 1) -> list[float]:
    """Median milliseconds of each call, timed in turns (a, b, a, b, ...) so that a figure and
    its baseline see the same moments of a shared machine."""
    for _ in range(warmup):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repetitions):
        for index, call in enumerate(calls):
            start = time.perf_counter()
            call()
            samples[index].append((time.perf_counter() - start) * 1000)
    return [median(timings) for timings in samples]
