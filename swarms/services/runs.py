"""Run writes: create (with the estimate and budget check), cancel, and the run's lifecycle as
the executor reports it."""

import copy
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Greatest
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from accounts.models import User
from accounts.services import workspace_run_quota_check
from billing.models import UsageRecord
from billing.periods import month_of
from billing.selectors import price_map
from billing.services import usage_records_add, usage_run_started
from sverm.api.errors import BudgetExceeded, Conflict, InvalidRequest, RateLimited
from swarms.engine import (
    Definition,
    RunResult,
    Step,
    Usage,
    estimate_cost,
    minimum_cost,
    validate_definition,
)
from swarms.engine.events import AGENT_DELEGATED, RUN_CANCELLED, RUN_FAILED
from swarms.engine.events import fold as _folded
from swarms.models import (
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    RunStepStatus,
    Swarm,
    SwarmVersion,
)
from swarms.providers import check_models_routable, simulated_mode
from swarms.realtime import publish_many
from swarms.selectors import money
from swarms.webhooks import webhook_schedule

CUSTOM_SWARM_TYPE = "custom"
# How long a cancel call waits for the executor to stop the run before answering.
CANCEL_WAIT_SECONDS = 5.0


MICRO_DOLLAR = Decimal("0.000001")


def usd(amount: Decimal) -> str:
    """Dollars for messages: cents, or every digit when a cent would misstate the amount."""
    cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${cents}" if cents == amount else f"${format(amount.normalize(), 'f')}"


def run_definition_for(*, swarm: Swarm, version: SwarmVersion | None) -> SwarmVersion:
    """The version a swarm run executes: the given one (must be the swarm's), else the default."""
    if version is None:
        version = swarm.default_version
    if version is None:
        raise Conflict(f"Swarm {swarm.pk} has no version to run.")
    if version.swarm_id != swarm.pk:
        raise InvalidRequest.for_field(
            "versionId",
            "Not a version of this swarm.",
            message="versionId: not a version of this swarm.",
        )
    return version


def _checked_definition(definition: dict[str, Any], prices) -> Definition:
    errors = validate_definition(definition, known_models=set(prices))
    if errors:
        raise InvalidRequest(
            "The swarm definition is invalid: " + "; ".join(errors[:10]),
            field_errors=[
                {"field": f"definition.{e.split(':', 1)[0]}", "pointer": "#/definition",
                 "detail": e, "code": "invalid"}
                for e in errors
            ],
        )  # fmt: skip
    parsed = Definition.from_dict(definition)
    check_models_routable({agent.model for agent in parsed.agents})
    return parsed


def run_create(
    *,
    workspace_id: str,
    definition: dict[str, Any],
    task: str,
    max_budget_usd: Decimal | None,
    created_by: User | None,
    swarm: Swarm | None = None,
    version: SwarmVersion | None = None,
    template_id: str = "",
    webhook_url: str = "",
) -> Run:
    """Queue a run after checking its definition, that its expected cost fits the budget
    (422 `budget_exceeded` otherwise) and the plan's run quotas (429 `rate_limited`); it is
    dispatched once the transaction commits."""
    if swarm is not None and swarm.deleted_at is not None:
        raise Conflict(f"Swarm {swarm.pk} is deleted; restore it before running it.")
    budget = (
        max_budget_usd if max_budget_usd is not None else Decimal(settings.SVERM_DEFAULT_BUDGET_USD)
    )
    prices = price_map()
    parsed = _checked_definition(definition, prices)
    expected, _worst = estimate_cost(parsed, task, prices)
    # Refused only when even the cheapest path to completion (every call's output clamped to
    # the floor) does not fit: any budget accepted here completes (runner.py clamps max_tokens).
    least = minimum_cost(parsed, task, prices, settings.SVERM_MIN_OUTPUT_TOKENS)
    if least > budget:
        least = least.quantize(MICRO_DOLLAR, rounding=ROUND_UP)  # a budget of this fits
        raise BudgetExceeded(
            f"Swarm cost would exceed maximum budget of {usd(budget)}",
            details={
                "budget": float(budget),
                "estimated_cost": float(money(expected)),
                "minimum_cost": float(least),
            },
        )
    swarm_type = template_id or CUSTOM_SWARM_TYPE
    values = {
        "workspace_id": workspace_id, "swarm": swarm, "version": version,
        "template_id": template_id, "swarm_type": swarm_type, "definition": definition,
        "task": task, "max_budget_usd": budget, "estimated_cost_usd": expected,
        "agents_total": len(parsed.expanded_agents()), "simulated": simulated_mode(),
        "webhook_url": webhook_url, "created_by": created_by,
    }  # fmt: skip
    try:
        return _run_insert(values)
    except RateLimited as refused:
        # Runs whose worker was lost for good must not hold the workspace's concurrency slots:
        # a full workspace has them reaped (outside the refused transaction) and tries again.
        if refused.details.get("limit") != "concurrent_runs" or not runs_reap_stale():
            raise
    return _run_insert(values)


def _run_insert(values: dict[str, Any]) -> Run:
    """The run's row and its month's count, under the workspace's quota lock. Lock order (every
    writer of these rows keeps it, so none waits in a cycle): the quota lock (the workspace row
    FOR NO KEY UPDATE, taken by creations only), then run rows (the new one here; an existing
    one by the recorder, run end, cancel and the reaper, one run per transaction), a run's steps
    and events, then the month's rollup row, last. Foreign-key checks on the workspace row
    (FOR KEY SHARE, by ledger and rollup inserts) do not conflict with the quota lock."""
    from swarms.executor import dispatch_run

    workspace_id = values["workspace_id"]
    with transaction.atomic():
        # The plan's concurrent and daily run quotas (429), counted from these rows under a lock
        # on the workspace row that is held until the new run commits.
        workspace_run_quota_check(
            workspace_id=workspace_id,
            runs=Run.objects.filter(workspace_id=workspace_id),
            active_statuses=(RunStatus.QUEUED, RunStatus.RUNNING),
        )
        run = Run.objects.create(**values)
        usage_run_started(
            workspace_id=workspace_id, swarm_type=values["swarm_type"], at=run.created_at
        )
        transaction.on_commit(lambda: dispatch_run(run.pk))
    return run


def run_cancel(*, run: Run) -> Run:
    """Stop a run: a queued one is cancelled at once; a running one is asked to stop (calls in
    flight are aborted) and this waits briefly for it. Cancelling a cancelled run is a no-op;
    a completed or failed one is 409."""
    from swarms.executor import cancel_local

    if run.status == RunStatus.CANCELLED:
        return run
    if run.is_terminal:
        raise Conflict(f"Run {run.pk} already {run.status}; there is nothing to cancel.")
    now = timezone.now()
    queued = Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, cancel_requested_at=now, completed_at=now
    )
    if queued:
        run_event_add(run_id=run.pk, type=RUN_CANCELLED, agent_id="", data={"cost_usd": "0"})
        transaction.on_commit(lambda: webhook_schedule(run.pk), robust=True)
    else:
        Run.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now
        )
        cancel_local(run.pk)
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            if Run.objects.filter(
                pk=run.pk, status__in=[RunStatus.CANCELLED, RunStatus.COMPLETED, RunStatus.FAILED]
            ).exists():
                break
            time.sleep(0.05)
    run.refresh_from_db()
    return run


# ---------------------------------------------------------------------------------------------
# Lifecycle, as reported by the executor
#
# Each attempt at executing a run holds a lease: the run's `attempt` number when it claimed the
# run. Every write an attempt makes (events, steps and their ledger rows, heartbeats, the result)
# checks the lease under the run row's lock and is refused with LeaseLost once another attempt
# has taken the run over, so two attempts of one run never both charge or emit.
# ---------------------------------------------------------------------------------------------
class LeaseLost(Exception):
    """This attempt no longer holds the run (it was resumed elsewhere, or it ended)."""


def run_claim(*, run_id: str) -> int | None:
    """queued -> running, exactly once: the lease (1) of the first attempt, or None when the
    run is not queued any more (a redelivered task finds nothing to claim)."""
    now = timezone.now()
    return _update_returning(
        Run.objects.filter(pk=run_id, status=RunStatus.QUEUED),
        {"status": RunStatus.RUNNING, "started_at": now, "heartbeat_at": now,
         "attempt": F("attempt") + 1},
        "attempt",
    )  # fmt: skip


def _stale_filter(cutoff: datetime) -> Q:
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def run_resume_claim(*, run_id: str) -> int | None:
    """Take over a running run whose worker went silent: the next lease, or None when the run
    is not stale any more (another attempt beat us to it, or its worker came back), it ended,
    or it has used all its attempts. Calls the lost attempt left in flight become
    `interrupted`: what they reserved stays held against the budget."""
    stale_after = timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
    with transaction.atomic():
        run = (
            Run.objects.select_for_update()
            .filter(
                pk=run_id, status=RunStatus.RUNNING, attempt__lt=settings.SVERM_RUN_MAX_ATTEMPTS
            )
            .filter(_stale_filter(timezone.now() - stale_after))
            .only("attempt")
            .first()
        )
        if run is None:
            return None
        lease = run.attempt + 1
        Run.objects.filter(pk=run_id).update(attempt=lease, heartbeat_at=timezone.now())
        RunStep.objects.filter(run_id=run_id, status=RunStepStatus.RESERVED).update(
            status=RunStepStatus.INTERRUPTED, updated_at=timezone.now()
        )
    return lease


def _advance(
    run_id: str,
    events: list[tuple[str, str, dict]],
    *,
    lease: int | None = None,
    running: bool = False,
    changes: dict[str, Any] | None = None,
    run: Run | None = None,
) -> list[RunEvent] | None:
    """Append events `(type, agent_id, data)` to a run, numbered after its last (seq 1, 2,
    3…), folding progress and active agents (and `changes`) into its row, and publish them once
    the transaction commits. The run row is updated first, in one `UPDATE … RETURNING` that
    also locks it until the transaction ends and checks, with a lease, that this attempt still
    runs it (LeaseLost otherwise). Without a lease, `running` appends only to a running run.
    None when the run is not there (or not running). `run`, the attempt's copy of the row, is
    what the workspace stream's status messages are made from (without it they read the row)."""
    values: dict[str, Any] = {"last_seq": F("last_seq") + len(events)}
    runs = Run.objects.filter(pk=run_id)
    if lease is not None:
        runs = runs.filter(attempt=lease)
    if lease is not None or running:
        runs = runs.filter(status=RunStatus.RUNNING)
    folded = _folded(events)
    if folded.progress is not None:
        values["progress"], values["current_cost_usd"] = folded.progress, folded.cost_usd
    if folded.shift is None:
        values["agents_active"] = folded.floor
    elif folded.shift or folded.floor is not None:
        active = F("agents_active") + folded.shift
        values["agents_active"] = (
            active if folded.floor is None else Greatest(active, Value(folded.floor))
        )
    values.update(changes or {})
    returned = _update_returning(runs, values, "last_seq")
    if returned is None:
        if lease is not None:
            raise LeaseLost(f"run {run_id} is no longer held by attempt {lease}")
        return None
    seq = returned - len(events)
    rows = [
        RunEvent(run_id=run_id, seq=seq + number, type=type, agent_id=agent_id or "", data=data)
        for number, (type, agent_id, data) in enumerate(events, start=1)
    ]
    if rows:  # streams are best effort; `run` (the attempt's) saves a query for status messages
        RunEvent.objects.bulk_create(rows)
        transaction.on_commit(lambda: publish_many(rows, run=run), robust=True)
    return rows


def _update_returning(runs, values: dict[str, Any], field: str) -> Any:
    """`runs.update(**values)` (at most one row) returning `field` as updated, or None when no
    row matched: one statement where a locking read and an update would be two. Both backends
    speak `RETURNING` (SQLite since 3.35)."""
    query = runs.query.chain(UpdateQuery)
    query.add_update_values(values)
    compiler = query.get_compiler(runs.db)
    compiler.pre_sql_setup()
    sql, params = compiler.as_sql()
    column = connections[runs.db].ops.quote_name(Run._meta.get_field(field).column)
    with connections[runs.db].cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {column}", params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def run_heartbeat(*, run_id: str, lease: int | None = None) -> bool:
    """A sign of life from the attempt holding the run; False when it holds it no more."""
    runs = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING)
    if lease is not None:
        runs = runs.filter(attempt=lease)
    return bool(runs.update(heartbeat_at=timezone.now()))


@dataclass(frozen=True)
class Checkpoints:
    """What earlier attempts of a run left: settled steps to replay, money held by calls they
    left in flight, and the `agent.delegated` events already emitted (not to emit them twice)."""

    steps: dict[str, Step]
    held_usd: Decimal
    delegations: Counter


def run_checkpoints(*, run_id: str) -> Checkpoints:
    steps: dict[str, Step] = {}
    held = Decimal(0)
    for row in RunStep.objects.filter(run_id=run_id).order_by("id"):
        if row.status == RunStepStatus.SETTLED:
            usage = Usage(
                agent_id=row.agent_id,
                model=row.model,
                provider=row.provider,
                tokens_in=row.tokens_in,
                tokens_out=row.tokens_out,
                cost_usd=row.cost_usd,
            )
            steps[row.key] = Step(
                row.key, row.agent_id, row.model, row.status, row.reserved_usd, usage, row.output
            )
        elif row.status == RunStepStatus.INTERRUPTED:
            held += row.reserved_usd
    delegations = Counter(
        delegation_key(event.agent_id, event.data)
        for event in RunEvent.objects.filter(run_id=run_id, type=AGENT_DELEGATED)
    )
    return Checkpoints(steps=steps, held_usd=held, delegations=delegations)


def delegation_key(agent_id: str | None, data: dict) -> str:
    return json.dumps([agent_id or "", data], sort_keys=True)


def run_step_record(*, run: Run, lease: int, step: Step) -> None:
    """Put a call's checkpoint on record for the attempt holding the run."""
    run_record(run=run, lease=lease, steps=[step], events=[])


def run_record(
    *, run: Run, lease: int, steps: list[Step], events: list[tuple[str, str, dict]]
) -> list[RunEvent]:
    """What an attempt of a run reports, in one transaction under its lease: call checkpoints
    (a settled one with its ledger row, so a crash never leaves one without the other: a call
    charged but replayed as unpaid, or paid twice) and events `(type, agent_id, data)`.

    The executor calls this for every batch of a run, so on PostgreSQL the batch is one
    statement (`_record_in_one_statement`: one round trip, where the ORM's writes take about
    eight); elsewhere, and for a batch that also changes a call it reserves, the ORM writes it."""
    keys = [step.key for step in steps]
    if connection.vendor == "postgresql" and len(set(keys)) == len(keys):
        return _record_in_one_statement(run, lease, steps, events)
    return _record(run, lease, steps, events)


@transaction.atomic
def _record(
    run: Run, lease: int, steps: list[Step], events: list[tuple[str, str, dict]]
) -> list[RunEvent]:
    rows = _advance(run.pk, events, lease=lease, run=run)
    _steps_write(run, lease, steps)
    return rows


# The parts of `_record_in_one_statement`, each a CTE that writes. `r` (the run row) feeds the
# others, so a lost lease writes nothing.
_RUN_PART = """r AS (UPDATE swarms_run SET last_seq = last_seq + %(n)s,
  agents_active = CASE WHEN %(floor)s::int IS NULL THEN agents_active + %(shift)s
    WHEN %(shift)s::int IS NULL THEN %(floor)s
    ELSE GREATEST(agents_active + %(shift)s, %(floor)s) END,
  progress = COALESCE(%(progress)s, progress),
  current_cost_usd = COALESCE(%(cost)s::numeric, current_cost_usd)
  WHERE id = %(run)s AND attempt = %(lease)s AND status = 'running' RETURNING last_seq)"""
_END_RUN_PART = """r AS (UPDATE swarms_run SET last_seq = last_seq + %(n)s,
  status = %(status)s, output = %(output)s, error_code = %(error_code)s,
  error_message = %(error_message)s, current_cost_usd = %(current_cost_usd)s, agents_active = 0,
  completed_at = %(completed_at)s, progress = COALESCE(%(final_progress)s, progress)
  WHERE id = %(run)s AND attempt = %(lease)s AND status = 'running' RETURNING last_seq)"""
_EVENTS_PART = """e AS (INSERT INTO swarms_runevent (run_id, seq, type, agent_id, data, created_at)
  SELECT %(run)s, r.last_seq - %(n)s + x.ord, x.type, x.agent_id, x.data::jsonb, %(now)s
  FROM r, unnest(%(types)s::text[], %(agents)s::text[], %(datas)s::text[])
    WITH ORDINALITY AS x(type, agent_id, data, ord))"""
_RESERVED_PART = """s AS (INSERT INTO swarms_runstep (run_id, key, attempt, agent_id, model,
    provider, status, reserved_usd, cost_usd, tokens_in, tokens_out, output, created_at,
    updated_at)
  SELECT %(run)s, x.key, %(lease)s, x.agent_id, x.model, '', 'reserved', x.amount, 0, 0, 0, '',
    %(now)s, %(now)s
  FROM r, unnest(%(rkeys)s::text[], %(ragents)s::text[], %(rmodels)s::text[],
    %(ramounts)s::numeric[]) AS x(key, agent_id, model, amount))"""
_ENDED_PART = """u AS (UPDATE swarms_runstep AS c SET status = x.status, updated_at = %(now)s
  FROM r, unnest(%(ekeys)s::text[], %(estatuses)s::text[]) AS x(key, status)
  WHERE c.run_id = %(run)s AND c.attempt = %(lease)s AND c.key = x.key
    AND c.status = 'reserved')"""
_SETTLED_PARTS = """p AS (UPDATE swarms_runstep AS c SET status = 'settled', output = x.output,
    provider = x.provider, cost_usd = x.cost, tokens_in = x.tin, tokens_out = x.tout,
    updated_at = %(now)s
  FROM r, unnest(%(skeys)s::text[], %(soutputs)s::text[], %(sproviders)s::text[],
    %(scosts)s::numeric[], %(sins)s::int[], %(souts)s::int[])
    AS x(key, output, provider, cost, tin, tout)
  WHERE c.run_id = %(run)s AND c.attempt = %(lease)s AND c.key = x.key
    AND c.status = 'reserved'
  RETURNING c.agent_id, c.model, x.provider, x.tin, x.tout, x.cost),
l AS (INSERT INTO billing_usagerecord (workspace_id, run_id, swarm_id, swarm_type, agent_id,
    model, provider, tokens_in, tokens_out, cost_usd, created_at)
  SELECT %(workspace)s, %(run)s, %(swarm)s, %(swarm_type)s, agent_id, model, provider, tin,
    tout, cost, %(now)s FROM p
  RETURNING tokens_in, tokens_out, cost_usd),
m AS (INSERT INTO billing_monthlyusage AS m (workspace_id, month, swarm_type, runs, tokens_in,
    tokens_out, cost_usd)
  SELECT %(workspace)s, %(month)s, %(swarm_type)s, 0, sum(tokens_in), sum(tokens_out),
    sum(cost_usd) FROM l HAVING count(*) > 0
  ON CONFLICT (workspace_id, month, swarm_type) DO UPDATE SET
    tokens_in = m.tokens_in + excluded.tokens_in, tokens_out = m.tokens_out + excluded.tokens_out,
    cost_usd = m.cost_usd + excluded.cost_usd)"""


def _record_in_one_statement(
    run: Run,
    lease: int,
    steps: list[Step],
    events: list[tuple[str, str, dict]],
    ending: dict[str, Any] | None = None,
) -> list[RunEvent]:
    """`_record` as one PostgreSQL statement of data-modifying CTEs, atomic by itself. The run
    row's UPDATE (which locks it and checks the lease) feeds every other part, so when the
    lease is lost nothing is written; a settled call's ledger row comes from its checkpoint's
    UPDATE (only while still reserved: a retried batch charges nothing twice), and the month's
    rollup moves by what those rows add. With `ending` (run_finish's result fields) the run
    row's UPDATE ends the run instead."""
    now = timezone.now()
    folded = _folded(events)
    params: dict[str, Any] = {
        "run": run.pk, "lease": lease, "n": len(events), "now": now, "shift": folded.shift,
        "floor": folded.floor, "progress": folded.progress, "cost": folded.cost_usd,
    }  # fmt: skip
    parts = [_RUN_PART]
    if ending is not None:
        parts = [_END_RUN_PART]
        params.update(ending, final_progress=ending.get("progress"))
    if events:
        parts.append(_EVENTS_PART)
        params.update(
            types=[type for type, _a, _d in events],
            agents=[agent_id or "" for _t, agent_id, _d in events],
            datas=[json.dumps(data) for _t, _a, data in events],
        )
    reserved = [step for step in steps if step.status == RunStepStatus.RESERVED]
    if reserved:
        parts.append(_RESERVED_PART)
        params.update(
            rkeys=[step.key for step in reserved],
            ragents=[step.agent_id for step in reserved],
            rmodels=[step.model for step in reserved],
            ramounts=[step.reserved_usd for step in reserved],
        )
    ended = [
        step for step in steps if step.status in (RunStepStatus.RELEASED, RunStepStatus.INTERRUPTED)
    ]
    if ended:
        parts.append(_ENDED_PART)
        params.update(ekeys=[step.key for step in ended], estatuses=[step.status for step in ended])
    settled = [step for step in steps if step.status == RunStepStatus.SETTLED]
    if settled:
        usages = [step.usage for step in settled]
        assert all(usage is not None for usage in usages)
        parts.append(_SETTLED_PARTS)
        params.update(
            skeys=[step.key for step in settled],
            soutputs=[step.output for step in settled],
            sproviders=[usage.provider for usage in usages],
            scosts=[usage.cost_usd for usage in usages],
            sins=[usage.tokens_in for usage in usages],
            souts=[usage.tokens_out for usage in usages],
            workspace=run.workspace_id,
            swarm=run.swarm_id or "",
            swarm_type=run.swarm_type,
            month=month_of(now),
        )
    with connection.cursor() as cursor:
        cursor.execute("WITH " + ",\n".join(parts) + "\nSELECT last_seq FROM r", params)
        row = cursor.fetchone()
    if row is None:
        raise LeaseLost(f"run {run.pk} is no longer held by attempt {lease}")
    first = row[0] - len(events) + 1
    rows = [
        RunEvent(run_id=run.pk, seq=first + index, type=type, agent_id=agent_id or "",
                 data=data, created_at=now)
        for index, (type, agent_id, data) in enumerate(events)
    ]  # fmt: skip
    if rows:  # streams are best effort; `run` saves the query for status messages
        transaction.on_commit(lambda: publish_many(rows, run=run), robust=True)
    return rows


def _steps_write(run: Run, lease: int, steps: list[Step]) -> None:
    """Checkpoints in few statements: new reservations in one INSERT, the released and
    interrupted in one UPDATE each, and each settled one in one UPDATE (only while still
    reserved: a retried write finds it settled and charges nothing) with the ledger rows of
    those it settled in one more."""
    now = timezone.now()
    RunStep.objects.bulk_create(
        RunStep(run_id=run.pk, key=step.key, attempt=lease, agent_id=step.agent_id,
                model=step.model, status=step.status, reserved_usd=step.reserved_usd)
        for step in steps
        if step.status == RunStepStatus.RESERVED
    )  # fmt: skip
    for status in (RunStepStatus.RELEASED, RunStepStatus.INTERRUPTED):
        keys = [step.key for step in steps if step.status == status]
        if keys:
            RunStep.objects.filter(
                run_id=run.pk, attempt=lease, key__in=keys, status=RunStepStatus.RESERVED
            ).update(status=status, updated_at=now)
    charged = []
    for step in steps:
        if step.status != RunStepStatus.SETTLED:
            continue
        usage = step.usage
        assert usage is not None
        if RunStep.objects.filter(
            run_id=run.pk, attempt=lease, key=step.key, status=RunStepStatus.RESERVED
        ).update(
            status=step.status, output=step.output, updated_at=now, provider=usage.provider,
            cost_usd=usage.cost_usd, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
        ):  # fmt: skip
            charged.append(usage)
    if charged:
        usage_records_add(
            [
                UsageRecord(
                    workspace_id=run.workspace_id, run_id=run.pk, swarm_id=run.swarm_id or "",
                    swarm_type=run.swarm_type, agent_id=usage.agent_id, model=usage.model,
                    provider=usage.provider, tokens_in=usage.tokens_in,
                    tokens_out=usage.tokens_out, cost_usd=usage.cost_usd,
                )
                for usage in charged
            ]
        )  # fmt: skip


# A running run whose worker has not beaten for SVERM_STALE_AFTER_SECONDS is taken for lost.
WORKER_LOST_MESSAGE = (
    "The worker executing this run stopped responding ({seconds} s without a heartbeat) and "
    "{why}. Calls it finished are in the cost report and were charged once; start a new run "
    "to retry."
)


def runs_reap_stale() -> list[str]:
    """Deal with running runs whose worker went silent (killed, lost its database), so no run
    stays `running` forever or holds a concurrency slot: ask the executor to resume those with
    attempts left, and fail with `worker_lost` those without, or whose resume no worker took up
    within a stale period. Returns the ids it failed."""
    stale_after = timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
    now = timezone.now()
    cutoff = now - stale_after
    stale = Run.objects.filter(status=RunStatus.RUNNING).filter(_stale_filter(cutoff))
    reaped = []
    for run_id, attempt, asked_at, beat_at in stale.values_list(
        "pk", "attempt", "resume_requested_at", "heartbeat_at"
    ):
        if attempt >= settings.SVERM_RUN_MAX_ATTEMPTS:
            why = f"all {attempt} attempts were lost"
        elif asked_at is not None and (beat_at is None or asked_at > beat_at):
            if asked_at > cutoff:
                continue  # asked recently: a worker may be on its way
            why = "no worker took it up again"
        else:
            # Asked once per loss: a claim beats, so the next loss asks anew.
            if Run.objects.filter(pk=run_id, resume_requested_at=asked_at).update(
                resume_requested_at=now
            ):
                _dispatch_resume(run_id)
            continue
        cost = UsageRecord.objects.filter(run_id=run_id).aggregate(total=Sum("cost_usd"))["total"]
        Run.objects.filter(pk=run_id).update(current_cost_usd=cost or Decimal(0))
        message = WORKER_LOST_MESSAGE.format(seconds=int(stale_after.total_seconds()), why=why)
        if run_fail(
            run_id=run_id, code="worker_lost", message=message, only_if_stale_before=cutoff
        ):
            reaped.append(run_id)
    return reaped


def _dispatch_resume(run_id: str) -> None:
    from swarms.executor import dispatch_run

    transaction.on_commit(lambda: dispatch_run(run_id, resume=True))


def runs_cancel_requested(*, run_ids: list[str]) -> list[str]:
    """Those of the runs whose cancel was requested, in one query."""
    return list(
        Run.objects.filter(pk__in=run_ids, cancel_requested_at__isnull=False).values_list(
            "pk", flat=True
        )
    )


@transaction.atomic
def run_event_add(
    *, run_id: str, type: str, agent_id: str, data: dict, lease: int | None = None
) -> RunEvent:
    """Append the next numbered event (seq 1, 2, 3…) and fold progress into the run row; with
    a lease, only while that attempt holds the run (LeaseLost otherwise)."""
    rows = _advance(run_id, [(type, agent_id, data)], lease=lease)
    if rows is None:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return rows[0]


def run_finish(
    *,
    run_id: str,
    result: RunResult,
    lease: int | None = None,
    terminal: tuple[str, dict] | None = None,
    run: Run | None = None,
) -> bool:
    """Record the engine's result (the cost is the ledger's, which the engine reported) and its
    terminal event, in one transaction: a run never has its last event without its status, so a
    resumed attempt never ends a run twice. Does nothing when the run ended meanwhile or, with a
    lease, another attempt holds it; returns whether it did. `run`, the attempt's copy of the
    row, spares reading it again (for the workspace stream's status and the webhook URL)."""
    changes: dict[str, Any] = {
        "status": result.status,
        "output": result.output,
        "error_code": result.error_code or "",
        "error_message": result.error_message or "",
        "current_cost_usd": result.total_cost_usd,
        "agents_active": 0,
        "completed_at": timezone.now(),
    }
    if result.status == RunStatus.COMPLETED:
        changes["progress"] = 1.0
    events = [] if terminal is None else [(terminal[0], "", terminal[1])]
    final = None
    if run is not None:
        final = copy.copy(run)
        for name, value in changes.items():
            setattr(final, name, value)
    if final is not None and lease is not None and connection.vendor == "postgresql":
        try:  # one statement, atomic by itself
            _record_in_one_statement(final, lease, [], events, ending=changes)
        except LeaseLost:
            return False
    else:
        with transaction.atomic():
            try:
                advanced = _advance(
                    run_id, events, lease=lease, running=True, changes=changes, run=final
                )
                if advanced is None:
                    return False
            except LeaseLost:
                return False
    if run is None or run.webhook_url:
        transaction.on_commit(lambda: webhook_schedule(run_id), robust=True)
    return True


def run_fail(
    *,
    run_id: str,
    code: str,
    message: str,
    only_if_stale_before: datetime | None = None,
    lease: int | None = None,
) -> bool:
    """Fail a run the engine could not report on (it never started, broke outside the engine,
    or its worker was lost). Returns whether it did; a run that finished meanwhile, or (with a
    lease) that another attempt holds, is left."""
    runs = Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
    if lease is not None:
        runs = runs.filter(attempt=lease)
    if only_if_stale_before is not None:
        # The reaper's check and write are one statement: a heartbeat in between wins.
        runs = runs.filter(_stale_filter(only_if_stale_before))
    updated = runs.update(
        status=RunStatus.FAILED,
        error_code=code,
        error_message=message,
        agents_active=0,
        completed_at=timezone.now(),
    )
    if updated:
        run_event_add(
            run_id=run_id,
            type=RUN_FAILED,
            agent_id="",
            data={"error_code": code, "error_message": message},
        )
        transaction.on_commit(lambda: webhook_schedule(run_id), robust=True)
    return bool(updated)
