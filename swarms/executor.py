"""Where runs execute: on this process's run host (one event loop for all its runs), started by a
Celery task (swarms/tasks.py, `execute_run`) or, in the embedded mode, by `submit_run` (the local
handler of swarms/jobs.py's EXECUTE_RUN); the host drives the engine and stores what it reports.
The engine never touches the database: this module adapts it.
"""

import asyncio
import functools
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from sverm import periodic
from sverm.per_process import PerProcess
from swarms.engine import (
    CallPolicy,
    CancelToken,
    Definition,
    Event,
    RunInput,
    RunResult,
    Step,
    Usage,
    run_swarm,
)
from swarms.engine.events import AGENT_DELEGATED, PAUSED, RUN_STARTED, TERMINAL_EVENTS
from swarms.engine.schema import lists_tools
from swarms.engine.tools import Toolbox
from swarms.metrics import llm_usage_observe
from swarms.models import Run
from swarms.providers import model_routes, price_map, router_for
from swarms.selectors import Checkpoints, delegation_key, run_checkpoints
from swarms.services.approvals import run_pause
from swarms.services.lifecycle import (
    LeaseLost,
    run_claim,
    run_fail,
    run_finish,
    run_heartbeat,
    run_record,
    run_resume_claim,
    runs_cancel_requested,
)
from tools.selectors import run_toolbox

logger = logging.getLogger("sverm.executor")

# Runs executing in this process, so a cancel from this process takes effect at once.
_local_tokens: dict[str, CancelToken] = {}
CANCEL_POLL_SECONDS = 0.25


def submit_run(run_id: str, resume: bool = False) -> None:
    """Start a committed run (or resume one whose worker was lost) on this process's run host;
    returns at once. No thread waits on it: the run is a task on the host's event loop, and at
    most SVERM_EXECUTOR_MAX_RUNS execute at once (the others wait for a slot, still queued)."""
    start_embedded_executor()
    _host().start(run_id, resume)


def start_embedded_executor() -> None:
    """Start the embedded mode's periodic tasks (the reaper, retention: Celery beat runs them
    otherwise) with the server, not at the first run, so runs a previous process left `running`
    are resumed or failed after a restart."""
    if settings.SVERM_EXECUTOR == "thread":
        periodic.start_embedded()  # once a process: it keeps its own thread


def cancel_local(run_id: str) -> None:
    """Cancel the run at once if it executes here (registered with swarms/jobs.py)."""
    token = _local_tokens.get(run_id)
    if token is not None:
        token.cancel()


def execute_run(run_id: str, resume: bool = False) -> None:
    """Claim the run (once) or take over a lost attempt's, run the engine on it, record the
    result; returns when the run has ended here. Every write goes through this attempt's lease.
    The run executes on this process's run host, with every other run of the process."""
    _host().execute(run_id, resume)


class Lane:
    """One database thread (so one connection) that runs are pinned to: a run's writes happen in
    the order it made them, and a few lanes serve any number of runs."""

    def __init__(self, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.runs = 0
        self.closing: asyncio.TimerHandle | None = None  # its idle connection's close

    def __call__(self, func):
        """`func` as a coroutine function run on this lane, retried on a dropped connection."""
        retrying = _with_db_retry(func)

        @functools.wraps(func)
        async def call(*args, **kwargs):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self.executor, functools.partial(retrying, *args, **kwargs)
            )

        return call


class RunHost:
    """Where this process executes runs: one event loop thread for all of them (a run spends
    its time waiting on LLM calls) and SVERM_EXECUTOR_DB_LANES database lanes, each run pinned to
    the least busy. So a worker holds a few database connections however many runs it executes
    (a lane closes its connection once idle), and one query a tick finds the cancel requests of
    all of them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lanes = [
            Lane(f"sverm-db-{number}") for number in range(settings.SVERM_EXECUTOR_DB_LANES)
        ]
        self._watching: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None  # the embedded mode's runs at once
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="sverm-runs", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the loop and the lanes (runs still executing here are abandoned)."""

        async def stop() -> None:
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self._thread.join(timeout=5)
        for lane in self.lanes:
            lane.executor.shutdown(wait=True)

    def execute(self, run_id: str, resume: bool) -> None:
        """Execute the run here and return when it has ended here (a Celery worker's thread)."""
        asyncio.run_coroutine_threadsafe(self._execute(run_id, resume), self.loop).result()

    def start(self, run_id: str, resume: bool) -> None:
        """Execute the run here once a slot is free, without waiting for it (the embedded mode)."""

        def crashed(done) -> None:
            if not done.cancelled() and done.exception() is not None:
                logger.error("run %s crashed on the run host", run_id, exc_info=done.exception())

        admitted = asyncio.run_coroutine_threadsafe(self._admitted(run_id, resume), self.loop)
        admitted.add_done_callback(crashed)

    async def _admitted(self, run_id: str, resume: bool) -> None:
        if self._slots is None:  # made on the loop it serves
            self._slots = asyncio.Semaphore(settings.SVERM_EXECUTOR_MAX_RUNS)
        async with self._slots:
            await self._execute(run_id, resume)

    async def _execute(self, run_id: str, resume: bool) -> None:
        lane = min(self.lanes, key=lambda lane: lane.runs)
        lane.runs += 1
        if lane.closing is not None:
            lane.closing.cancel()
            lane.closing = None
        try:
            await _execute(run_id, resume, lane, self)
        finally:
            lane.runs -= 1
            await self._maybe_idle(lane)

    async def _maybe_idle(self, lane: Lane) -> None:
        """Close an idle lane's connection, at once or after SVERM_EXECUTOR_DB_IDLE_SECONDS
        (a busy worker keeps it from one run to the next)."""
        if lane.runs:
            return
        idle = settings.SVERM_EXECUTOR_DB_IDLE_SECONDS
        if idle <= 0:
            await lane(_close_connection)()
        elif lane.closing is None:

            def close() -> None:
                lane.closing = None
                if not lane.runs:
                    lane.executor.submit(_close_connection)

            lane.closing = self.loop.call_later(idle, close)

    def watch(self, run_id: str, token: CancelToken) -> None:
        """Have `token` cancelled when the run's cancel is requested (call on the host loop)."""
        _local_tokens[run_id] = token
        if self._watching is None or self._watching.done():
            self._watching = asyncio.create_task(self._watch_cancels())

    async def _watch_cancels(self) -> None:
        """Cancel the runs executing here whose cancel was requested (by another process: a
        cancel from this one takes effect at once), every CANCEL_POLL_SECONDS while any runs."""
        while _local_tokens:
            # A lane that has runs: its connection is not closing (its close would come after).
            lane = max(self.lanes, key=lambda lane: lane.runs)
            if not lane.runs:
                return
            try:
                asked = await lane(runs_cancel_requested)(run_ids=list(_local_tokens))
            except Exception:
                logger.exception("could not read cancel requests; trying again")
                asked = []
            for run_id in asked:
                cancel_local(run_id)
            await asyncio.sleep(CANCEL_POLL_SECONDS)


def _close_connection() -> None:
    connection.close()


_hosts = PerProcess(RunHost)


def _host() -> RunHost:
    """This process's run host."""
    return _hosts.get()


async def _execute(run_id: str, resume: bool, lane: Lane, host: RunHost) -> None:
    lease = None if resume else await lane(run_claim)(run_id=run_id)
    if lease is None:
        # A resume, or a redelivered task whose first worker died: take over only a run whose
        # worker went silent.
        lease = await lane(run_resume_claim)(run_id=run_id)
    if lease is None:
        logger.info("run %s is not queued nor stale; nothing to do", run_id)
        return
    run, checkpoints, prices, routes, toolbox = await lane(_started)(run_id, lease)
    if checkpoints is not None:
        logger.warning(
            "run %s resumed (attempt %s): %s settled calls replayed, $%s held for interrupted ones",
            run_id, lease, len(checkpoints.steps), checkpoints.held_usd,
        )  # fmt: skip
    try:
        spec = RunInput(
            run_id=run.pk,
            task=run.task,
            definition=Definition.from_dict(run.definition),
            budget_usd=run.max_budget_usd,
            prices=prices,
            checkpoints=checkpoints.steps if checkpoints else {},
            held_usd=checkpoints.held_usd if checkpoints else Decimal(0),
            calls=call_policy(),
            approvals=checkpoints.approvals if checkpoints else {},
            pause_on_budget=run.pause_on_budget,
        )
    except Exception as exc:  # the definition was valid at creation; prices may have gone
        logger.exception("run %s could not start", run_id)
        await lane(run_fail)(
            run_id=run_id, code="internal_error", message=f"Could not start: {exc}", lease=lease
        )
        return
    token = CancelToken()
    host.watch(run_id, token)
    terminal: list[Event] = []  # the engine's last event, written with the run's status
    try:
        result = await _drive(run, spec, routes, toolbox, token, lease, checkpoints, terminal, lane)
        if result.status == PAUSED:
            if not await lane(run_pause)(run_id=run_id, lease=lease, result=result):
                logger.warning("run %s attempt %s lost its lease before pausing", run_id, lease)
            return
        ended = terminal[-1] if terminal else None
        finished = await lane(run_finish)(
            run_id=run_id,
            result=result,
            lease=lease,
            terminal=(ended.type, ended.data) if ended else None,
            run=run,
        )
        if not finished:
            logger.warning("run %s attempt %s lost its lease; its result is dropped", run_id, lease)
    except LeaseLost:
        logger.warning("run %s attempt %s lost its lease to another attempt", run_id, lease)
    except Exception as exc:
        # Never leave a run `running`: whatever broke after the claim fails it, with a reason.
        logger.exception("run %s failed outside the engine", run_id)
        message = f"The run broke: {exc}"[:500]
        try:
            await lane(run_fail)(run_id=run_id, code="internal_error", message=message, lease=lease)
        except Exception:  # the database is gone too: the reaper resumes or fails it later
            logger.exception("run %s could not be marked failed", run_id)
    finally:
        if _local_tokens.get(run_id) is token:  # not a newer attempt's in this process
            del _local_tokens[run_id]


def call_policy() -> CallPolicy:
    """How the engine makes each LLM call, from settings."""
    return CallPolicy(
        min_output_tokens=settings.SVERM_MIN_OUTPUT_TOKENS,
        attempt_timeout_seconds=settings.LLM_TIMEOUT_SECONDS,
        deadline_seconds=settings.LLM_CALL_DEADLINE_SECONDS,
        max_attempts=settings.LLM_MAX_ATTEMPTS,
    )


def _started(
    run_id: str, lease: int
) -> tuple[Run, Checkpoints | None, dict, dict[str, str], Toolbox | None]:
    """What executing a claimed run needs, read on its lane (never on the event loop): its row,
    what earlier attempts left, the prices, which provider serves each model, and the tools its
    agents may call (None when none lists any)."""
    run = Run.objects.get(pk=run_id)
    checkpoints = run_checkpoints(run_id=run_id) if lease > 1 else None
    toolbox = run_toolbox(workspace_id=run.workspace_id) if lists_tools(run.definition) else None
    return run, checkpoints, price_map(), model_routes(), toolbox


# A database write that fails because the connection dropped (a PostgreSQL restart, a failover)
# is retried on a new connection after these pauses; every write is one transaction, so a failed
# one changed nothing.
DB_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


def _with_db_retry(func):
    @functools.wraps(func)
    def retrying(*args, **kwargs):
        for delay in (*DB_RETRY_DELAYS, None):
            try:
                return func(*args, **kwargs)
            except (OperationalError, InterfaceError):
                if delay is None:
                    raise
                logger.warning("database write failed; retrying on a new connection", exc_info=True)
                connection.close()
                time.sleep(delay)

    return retrying


async def _drive(
    run: Run,
    spec: RunInput,
    routes: dict[str, str],
    toolbox: Toolbox | None,
    token: CancelToken,
    lease: int,
    checkpoints: Checkpoints | None,
    terminal: list[Event],
    in_db: Lane,
) -> RunResult:
    # A resumed run does not say again what its lost attempt said: it started, and whom its
    # (replayed) managers delegated to.
    delegated = checkpoints.delegations.copy() if checkpoints else Counter()

    @in_db
    def store(items: list[Event | Usage | Step]) -> None:
        """What the engine reported since the last call: one transaction for all of it."""
        steps = [item for item in items if isinstance(item, Step)]
        events = []
        for event in (item for item in items if isinstance(item, Event)):
            if event.type in TERMINAL_EVENTS:
                terminal.append(event)  # run_finish writes it, with the status, in one transaction
                continue
            if checkpoints is not None:
                if event.type == RUN_STARTED:
                    continue
                if event.type == AGENT_DELEGATED:
                    key = delegation_key(event.agent_id, event.data)
                    if delegated[key] > 0:
                        delegated[key] -= 1
                        continue
            events.append((event.type, event.agent_id or "", event.data))
        # Usage items need nothing: a settled step carries its usage into the ledger.
        if steps or events:
            run_record(run=run, lease=lease, steps=steps, events=events)
            llm_usage_observe(steps)  # /metrics: what the ledger was just charged

    @in_db
    def beat() -> bool:
        return run_heartbeat(run_id=run.pk, lease=lease)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(settings.SVERM_HEARTBEAT_SECONDS)
            if not await beat():  # taken over (or ended) elsewhere: stop spending
                token.cancel()
                return

    async def time_limit() -> None:
        limit = settings.SVERM_RUN_TIMEOUT_SECONDS
        await asyncio.sleep(limit)
        token.fail("timeout", f"The run exceeded its time limit of {limit:g} s.")

    router = router_for({agent.model for agent in spec.definition.agents}, routes)
    helpers = [
        asyncio.create_task(heartbeat()),
        asyncio.create_task(time_limit()),
    ]
    try:
        return await run_swarm(spec, router=router, on_batch=store, cancel=token, tools=toolbox)
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for provider in {id(p): p for p in router.routes.values()}.values():
            await provider.aclose()
