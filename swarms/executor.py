"""Where runs execute: `dispatch_run` sends a run to Celery (when a broker is configured) or to a
thread pool in this process; both end in `execute_run`, which drives the engine and stores what
it reports. The engine never touches the database: this module adapts it.
"""

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

from billing.selectors import price_map
from billing.services import usage_record_add
from swarms.engine import (
    CancelToken,
    Definition,
    Event,
    RunInput,
    RunResult,
    Usage,
    cancel_when,
    run_swarm,
)
from swarms.models import Run
from swarms.providers import router_for
from swarms.services.runs import (
    run_cancel_requested,
    run_claim,
    run_event_add,
    run_fail,
    run_finish,
    run_heartbeat,
    runs_reap_stale,
)

logger = logging.getLogger("sverm.executor")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# Runs executing in this process, so a cancel from this process takes effect at once.
_local_tokens: dict[str, CancelToken] = {}
CANCEL_POLL_SECONDS = 0.25
# The reaper fails a run after STALE_AFTER_SECONDS without one of these.
HEARTBEAT_SECONDS = 15


def dispatch_run(run_id: str) -> None:
    """Start a committed run on the configured executor."""
    if settings.SVERM_EXECUTOR == "celery":
        from swarms.tasks import execute_run_task

        execute_run_task.delay(run_id)
        return
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.SVERM_EXECUTOR_THREADS, thread_name_prefix="sverm-run"
            )
            _start_reaper()
    _pool.submit(_execute_in_thread, run_id)


def _start_reaper() -> None:
    """The embedded mode's periodic reaper (Celery beat runs it in production)."""
    interval = settings.SVERM_REAPER_INTERVAL_SECONDS
    if interval <= 0:
        return

    def loop() -> None:
        while True:
            time.sleep(interval)
            try:
                runs_reap_stale()
            except Exception:
                logger.exception("the run reaper failed; it tries again")
            finally:
                close_old_connections()

    threading.Thread(target=loop, name="sverm-reaper", daemon=True).start()


def _execute_in_thread(run_id: str) -> None:
    try:
        execute_run(run_id)
    except Exception:
        logger.exception("run %s crashed in the thread executor", run_id)
    finally:
        close_old_connections()
        connection.close()


def cancel_local(run_id: str) -> None:
    token = _local_tokens.get(run_id)
    if token is not None:
        token.cancel()


def execute_run(run_id: str) -> None:
    """Claim the run (once), run the engine on it, record the result."""
    if not run_claim(run_id=run_id):
        logger.info("run %s is not queued any more; nothing to do", run_id)
        return
    run = Run.objects.get(pk=run_id)
    try:
        spec = RunInput(
            run_id=run.pk,
            task=run.task,
            definition=Definition.from_dict(run.definition),
            budget_usd=run.max_budget_usd,
            prices=price_map(),
        )
    except Exception as exc:  # the definition was valid at creation; prices may have gone
        logger.exception("run %s could not start", run_id)
        run_fail(run_id=run_id, code="internal_error", message=f"Could not start: {exc}")
        return
    token = CancelToken()
    _local_tokens[run_id] = token
    try:
        result = asyncio.run(_drive(run, spec, token))
        run_finish(run_id=run_id, result=result)
    except Exception as exc:
        # Never leave a run `running`: whatever broke after the claim fails it, with a reason.
        logger.exception("run %s failed outside the engine", run_id)
        run_fail(run_id=run_id, code="internal_error", message=f"The run broke: {exc}"[:500])
    finally:
        _local_tokens.pop(run_id, None)


async def _drive(run: Run, spec: RunInput, token: CancelToken) -> RunResult:
    # One DB thread per run keeps its writes in order and its connection closable.
    db = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sverm-db-{run.pk[-6:]}")

    def in_db(func):
        return sync_to_async(func, thread_sensitive=False, executor=db)

    @in_db
    def store_event(event: Event) -> None:
        run_event_add(
            run_id=run.pk, type=event.type, agent_id=event.agent_id or "", data=event.data
        )

    @in_db
    def store_usage(usage: Usage) -> None:
        usage_record_add(
            workspace_id=run.workspace_id,
            run_id=run.pk,
            swarm_id=run.swarm_id or "",
            swarm_type=run.swarm_type,
            agent_id=usage.agent_id,
            model=usage.model,
            provider=usage.provider,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cost_usd=usage.cost_usd,
        )

    @in_db
    def cancel_requested() -> bool:
        return run_cancel_requested(run_id=run.pk)

    @in_db
    def beat() -> None:
        run_heartbeat(run_id=run.pk)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await beat()

    @in_db
    def close_db() -> None:
        connection.close()

    router = router_for({agent.model for agent in spec.definition.agents})
    watcher = asyncio.create_task(
        cancel_when(cancel_requested, token, interval=CANCEL_POLL_SECONDS)
    )
    beating = asyncio.create_task(heartbeat())
    try:
        return await run_swarm(
            spec, router=router, on_event=store_event, on_usage=store_usage, cancel=token
        )
    finally:
        watcher.cancel()
        beating.cancel()
        await asyncio.gather(watcher, beating, return_exceptions=True)
        for provider in {id(p): p for p in router.routes.values()}.values():
            await provider.aclose()
        await close_db()
        db.shutdown(wait=True)
