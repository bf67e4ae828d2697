"""Work sent out of the caller's thread: each job is named by its Celery task, sent to the broker
when `SVERM_EXECUTOR == "celery"`, else run in this process by the handler registered for it.

The one place that decides "Celery or threads?", so callers (services, webhooks) depend on this
module and not on the executor or the tasks that do the work. The handlers are registered by
`swarms/apps.py` once the app is ready; run cancels reach the runs executing in this process the
same way (`cancel_local`). This module imports nothing from `swarms`.
"""

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import connection

from sverm.api.errors import ServiceUnavailable

logger = logging.getLogger("sverm.jobs")

# The jobs sent by name (the Celery tasks in swarms/tasks.py carry these names).
EXECUTE_RUN = "swarms.execute_run"
DELIVER_WEBHOOK = "swarms.deliver_webhook"

# A run's start is sent after its run committed (on commit), so a broker that cannot be reached
# then fails nothing: the run stays queued and the reaper sends its start again
# (swarms/services/dispatch.py); the request that created it still answers 201. Any other job
# was asked for by its caller (a manual redelivery, a retry's schedule), which answers 503 with
# nothing recorded, not 500.
SENT_AGAIN_BY_THE_REAPER = frozenset({EXECUTE_RUN})
# What a 503 for an unreachable broker tells the client to wait before trying again.
BROKER_RETRY_AFTER_SECONDS = 5


def enqueue(name: str, *args, countdown: float = 0) -> None:
    """Have job `name` run with `args`, `countdown` seconds from now (see the module)."""
    countdown = max(countdown, 0)
    if settings.SVERM_EXECUTOR == "celery":
        _send(name, args, countdown)
    else:
        _run_here(name, args, countdown)


def _send(name: str, args: tuple, countdown: float) -> None:
    # Celery (~9 MiB with kombu) is imported by the first job sent: a process that runs its jobs
    # itself (the embedded mode) never imports it.
    from kombu.exceptions import OperationalError as BrokerUnreachable

    from sverm.celery import app

    try:
        app.send_task(name, args, countdown=countdown or None)
    except BrokerUnreachable as error:
        if name not in SENT_AGAIN_BY_THE_REAPER:
            raise ServiceUnavailable(
                "The task queue is unreachable, so nothing was sent; try again shortly.",
                headers={"Retry-After": str(BROKER_RETRY_AFTER_SECONDS)},
            ) from error
        logger.warning(
            "job %s%r was not sent, the broker is unreachable (%s); the reaper sends it again",
            name, args, error,
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# In this process (the embedded mode)
# ---------------------------------------------------------------------------------------------
_handlers: dict[str, tuple[Callable[..., object], bool]] = {}
_cancellers: list[Callable[[str], None]] = []


def register_local(name: str, handler: Callable[..., object], *, inline: bool = False) -> None:
    """Run job `name` in this process as `handler(*args)`: on a timer thread of its own (lost if
    the process stops; Celery mode is durable). An `inline` handler only hands the work to a pool
    of its own and returns (the executor's), so an undelayed job calls it in the caller's thread."""
    _handlers[name] = (handler, inline)


def _run_here(name: str, args: tuple, countdown: float) -> None:
    try:
        handler, inline = _handlers[name]
    except KeyError:
        raise LookupError(f"No handler is registered for the job {name!r}.") from None
    if inline and not countdown:
        handler(*args)
        return
    timer = threading.Timer(countdown, _run_on_timer)
    timer.args = (timer, name, handler, args)
    timer.daemon = True
    timer.name = f"sverm-job-{name.rsplit('.', 1)[-1]}"
    with _timers_lock:
        _timers.add(timer)
    timer.start()


_timers: set[threading.Timer] = set()
_timers_lock = threading.Lock()
_in_flight = 0


def _run_on_timer(timer, name: str, handler: Callable[..., object], args: tuple) -> None:
    global _in_flight
    with _timers_lock:
        _in_flight += 1
        _timers.discard(timer)
    try:
        handler(*args)
    except Exception:
        logger.exception("job %s%r crashed", name, args)
    finally:
        with _timers_lock:
            _in_flight -= 1
        connection.close()


def pending_threads() -> int:
    """Timer jobs waiting or running in this process (tests wait for none)."""
    with _timers_lock:
        return len(_timers) + _in_flight


def cancel_pending() -> None:
    """Drop waiting timer jobs (tests, shutdown)."""
    with _timers_lock:
        timers = list(_timers)
        _timers.clear()
    for timer in timers:
        timer.cancel()


def register_canceller(canceller: Callable[[str], None]) -> None:
    """Have `canceller(run_id)` stop a run executing in this process when it is cancelled here."""
    if canceller not in _cancellers:
        _cancellers.append(canceller)


def cancel_local(run_id: str) -> None:
    """Cancel the run at once if it executes in this process (others see the request when they
    next poll for it)."""
    for canceller in _cancellers:
        canceller(run_id)
