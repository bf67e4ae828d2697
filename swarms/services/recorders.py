"""The recorders that write what a run's attempt reports, and `recorder_for`, which picks one.

A batch (call checkpoints, a settled call with its ledger row, events and, at the end, the run's
result) is written atomically: in one PostgreSQL statement, in fixed SQL statements in one SQLite
transaction, or through the ORM in one transaction (any backend: the reference the others are
tested against). Which one is decided in `recorder_for` only, from the connection and the batch.
"""

import json
from collections.abc import Sequence
from typing import Any, Protocol

from django.db import connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from billing.models import UsageRecord
from billing.services import usage_records_add, usage_records_add_sql
from swarms.engine import Step
from swarms.engine.events import fold as _folded
from swarms.models import Run, RunEvent, RunStatus, RunStep, RunStepStatus
from swarms.realtime import publish_many

# An event as the executor reports it: (type, agent_id, data).
EventTuple = tuple[str, str, dict]


class Recorder(Protocol):
    def record(
        self,
        *,
        run: Run,
        lease: int,
        steps: Sequence[Step],
        events: Sequence[EventTuple],
        ending: dict[str, Any] | None = None,
    ) -> list[RunEvent] | None:
        """Write a batch atomically, only while attempt `lease` holds the running `run`: the
        events, numbered after the run's last (seq 1, 2, 3…) and folded into its row; the call
        checkpoints (a settled one with its ledger row and its month's rollup, charged only
        while still reserved, so a retried batch charges nothing twice); and with `ending` (Run
        field values: the result) the run's end. Returns the stored events, published once the
        transaction commits, or None (nothing written) when the attempt holds the run no more.
        `run` is the attempt's copy of the row (as of `ending`, when it ends the run): the
        workspace stream's status messages are made from it."""
        ...


class OrmRecorder:
    """Any backend's: the run row's `UPDATE … RETURNING` (which locks it and checks the lease),
    then the events and checkpoints, in one transaction of about eight statements."""

    def record(
        self,
        *,
        run: Run,
        lease: int,
        steps: Sequence[Step],
        events: Sequence[EventTuple],
        ending: dict[str, Any] | None = None,
    ) -> list[RunEvent] | None:
        with transaction.atomic():
            held = Q(attempt=lease, status=RunStatus.RUNNING)
            rows = run_events_append(
                run_id=run.pk, events=events, where=held, changes=ending, run=run
            )
            if rows is not None:
                _steps_write(run, lease, steps)
        return rows


class StatementRecorder:
    """PostgreSQL's: the batch as one statement of data-modifying CTEs, atomic by itself (one
    round trip where the ORM's writes take about eight). The run row's UPDATE (which locks it
    and checks the lease) feeds every other part, so when the lease is lost nothing is written;
    a settled call's ledger row comes from its checkpoint's UPDATE (only while still reserved),
    through billing's part, which also moves the month's rollup by what those rows add.

    Every CTE of a statement sees the tables as they were before it, so a batch that changes a
    call it also reserves must not come here (`recorder_for` sends it to the ORM)."""

    def record(
        self,
        *,
        run: Run,
        lease: int,
        steps: Sequence[Step],
        events: Sequence[EventTuple],
        ending: dict[str, Any] | None = None,
    ) -> list[RunEvent] | None:
        now = timezone.now()
        folded = _folded(events)
        params: dict[str, Any] = {
            "run": run.pk, "lease": lease, "n": len(events), "now": now, "shift": folded.shift,
            "floor": folded.floor, "progress": folded.progress, "cost": folded.cost_usd,
        }  # fmt: skip
        ending = ending or {}
        parts = [_run_part(ending)]
        params.update({f"end_{name}": value for name, value in ending.items()})
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
            step
            for step in steps
            if step.status in (RunStepStatus.RELEASED, RunStepStatus.INTERRUPTED)
        ]
        if ended:
            parts.append(_ENDED_PART)
            params.update(
                ekeys=[step.key for step in ended], estatuses=[step.status for step in ended]
            )
        settled = [step for step in steps if step.status == RunStepStatus.SETTLED]
        if settled:
            usages = [step.usage for step in settled]
            assert all(usage is not None for usage in usages)
            ledger, ledger_params = usage_records_add_sql(
                calls="p", workspace_id=run.workspace_id, run_id=run.pk,
                swarm_id=run.swarm_id or "", swarm_type=run.swarm_type, at=now,
                user_id=run.created_by_id or "", api_key_id=run.api_key_id or "",
            )  # fmt: skip
            parts += [_SETTLED_PART, ledger]
            params.update(
                ledger_params,
                skeys=[step.key for step in settled],
                soutputs=[step.output for step in settled],
                sproviders=[usage.provider for usage in usages],
                scosts=[usage.cost_usd for usage in usages],
                sins=[usage.tokens_in for usage in usages],
                souts=[usage.tokens_out for usage in usages],
            )
        with connection.cursor() as cursor:
            cursor.execute("WITH " + ",\n".join(parts) + "\nSELECT last_seq FROM r", params)
            row = cursor.fetchone()
        if row is None:
            return None
        first = row[0] - len(events) + 1
        rows = [
            RunEvent(run_id=run.pk, seq=first + index, type=type, agent_id=agent_id or "",
                     data=data, created_at=now)
            for index, (type, agent_id, data) in enumerate(events)
        ]  # fmt: skip
        if rows:  # streams are best effort; `run` saves the query for status messages
            transaction.on_commit(lambda: publish_many(rows, run=run), robust=True)
        return rows


class SqliteRecorder:
    """SQLite's (the embedded default): the ORM recorder's writes, statement for statement, as
    fixed SQL in one transaction. The ORM compiles each of its queries anew, about four fifths of
    a batch's CPU (about 1 ms of 1.25 for a batch of events: bench/README.md, "Many runs at
    once"), and a run records about eight batches. The ledger rows of the calls it settles are
    billing's to write (`usage_records_add`), as on the ORM path."""

    def record(
        self,
        *,
        run: Run,
        lease: int,
        steps: Sequence[Step],
        events: Sequence[EventTuple],
        ending: dict[str, Any] | None = None,
    ) -> list[RunEvent] | None:
        now = timezone.now()
        at = connection.ops.adapt_datetimefield_value(now)
        with transaction.atomic(), connection.cursor() as cursor:
            sets, params = _sqlite_run_sets(events, ending or {})
            cursor.execute(
                f"UPDATE swarms_run SET {', '.join(sets)} WHERE id = %s AND attempt = %s "  # noqa: S608
                "AND status = %s RETURNING last_seq",
                [*params, run.pk, lease, RunStatus.RUNNING],
            )
            row = cursor.fetchone()
            if row is None:
                return None
            first = row[0] - len(events) + 1
            rows = [
                RunEvent(run_id=run.pk, seq=first + index, type=type, agent_id=agent_id or "",
                         data=data, created_at=now)
                for index, (type, agent_id, data) in enumerate(events)
            ]  # fmt: skip
            if rows:
                data_field = RunEvent._meta.get_field("data")
                cursor.executemany(
                    "INSERT INTO swarms_runevent (run_id, seq, type, agent_id, data, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [(event.run_id, event.seq, event.type, event.agent_id,
                      data_field.get_db_prep_save(event.data, connection), at)
                     for event in rows],
                )  # fmt: skip
            charged = _sqlite_steps_write(cursor, run, lease, steps, at)
            if charged:
                usage_records_add(_ledger_rows(run, charged))
            if rows:  # streams are best effort; `run` saves the query for status messages
                transaction.on_commit(lambda: publish_many(rows, run=run), robust=True)
        return rows


def _sqlite_run_sets(
    events: Sequence[EventTuple], ending: dict[str, Any]
) -> tuple[list[str], list[Any]]:
    """The run row's SET clauses and their parameters: `run_events_append`'s values (its events'
    folds, then `ending`'s fields)."""
    folded = _folded(events)
    values: dict[str, tuple[str, list[Any]]] = {"last_seq": ("last_seq + %s", [len(events)])}
    if folded.progress is not None:
        values["progress"] = ("%s", [folded.progress])
        values["current_cost_usd"] = ("%s", [_prep(Run, "current_cost_usd", folded.cost_usd)])
    if folded.shift is None:
        values["agents_active"] = ("%s", [folded.floor])
    elif folded.floor is not None:
        values["agents_active"] = ("MAX(agents_active + %s, %s)", [folded.shift, folded.floor])
    elif folded.shift:
        values["agents_active"] = ("agents_active + %s", [folded.shift])
    for name, value in ending.items():
        values[name] = ("%s", [_prep(Run, name, value)])
    sets, params = [], []
    for name, (expression, values_of) in values.items():
        # Only column names go into the text: Run's fields, which get_field checks.
        sets.append(f"{connection.ops.quote_name(Run._meta.get_field(name).column)} = {expression}")
        params += values_of
    return sets, params


def _prep(model, name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _sqlite_steps_write(cursor, run: Run, lease: int, steps: Sequence[Step], at: str) -> list:
    """`_steps_write`'s statements in fixed SQL; returns the usage of the calls it settled (a
    settle of a call no longer reserved, a retried one, charges nothing)."""
    reserved = [step for step in steps if step.status == RunStepStatus.RESERVED]
    if reserved:
        cursor.executemany(
            "INSERT INTO swarms_runstep (run_id, key, attempt, agent_id, model, provider, status, "
            "reserved_usd, cost_usd, tokens_in, tokens_out, output, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, '', %s, %s, 0, 0, 0, '', %s, %s)",
            [(run.pk, step.key, lease, step.agent_id, step.model, step.status,
              _prep(RunStep, "reserved_usd", step.reserved_usd), at, at)
             for step in reserved],
        )  # fmt: skip
    for status in (RunStepStatus.RELEASED, RunStepStatus.INTERRUPTED):
        keys = [step.key for step in steps if step.status == status]
        if keys:
            cursor.execute(
                "UPDATE swarms_runstep SET status = %s, updated_at = %s WHERE run_id = %s "  # noqa: S608
                f"AND attempt = %s AND status = %s AND key IN ({', '.join(['%s'] * len(keys))})",
                [status, at, run.pk, lease, RunStepStatus.RESERVED, *keys],
            )
    charged = []
    for step in steps:
        if step.status != RunStepStatus.SETTLED:
            continue
        usage = step.usage
        assert usage is not None
        cursor.execute(
            "UPDATE swarms_runstep SET status = %s, output = %s, updated_at = %s, provider = %s, "
            "cost_usd = %s, tokens_in = %s, tokens_out = %s WHERE run_id = %s AND attempt = %s "
            "AND key = %s AND status = %s",
            [step.status, step.output, at, usage.provider,
             _prep(RunStep, "cost_usd", usage.cost_usd), usage.tokens_in, usage.tokens_out,
             run.pk, lease, step.key, RunStepStatus.RESERVED],
        )  # fmt: skip
        if cursor.rowcount:
            charged.append(usage)
    return charged


_ORM_RECORDER = OrmRecorder()
_RECORDERS: dict[str, Recorder] = {"postgresql": StatementRecorder(), "sqlite": SqliteRecorder()}


def recorder_for(db: BaseDatabaseWrapper, *, steps: Sequence[Step] = ()) -> Recorder:
    """The recorder for a batch on the connection `db`: its backend's (PostgreSQL's one
    statement, SQLite's fixed SQL, the ORM elsewhere), except that a batch naming a call twice
    (it reserves a call and changes it, which one statement cannot see) goes through the ORM
    everywhere."""
    keys = [step.key for step in steps]
    if len(set(keys)) != len(keys):
        return _ORM_RECORDER
    return _RECORDERS.get(db.vendor, _ORM_RECORDER)


# ---------------------------------------------------------------------------------------------
# The statement's parts, each a CTE that writes. `r` (the run row) feeds the others, so a lost
# lease writes nothing.
# ---------------------------------------------------------------------------------------------
# How the run row takes the batch's events (see swarms.engine.events.Folded), unless the run's
# end sets the field.
_FOLDS = {
    "agents_active": """agents_active = CASE WHEN %(floor)s::int IS NULL
    THEN agents_active + %(shift)s WHEN %(shift)s::int IS NULL THEN %(floor)s
    ELSE GREATEST(agents_active + %(shift)s, %(floor)s) END""",
    "progress": "progress = COALESCE(%(progress)s, progress)",
    "current_cost_usd": "current_cost_usd = COALESCE(%(cost)s::numeric, current_cost_usd)",
}


def _run_part(ending: dict[str, Any]) -> str:
    # Only column names go into the text: Run's fields that `ending` names (get_field checks).
    sets = ["last_seq = last_seq + %(n)s"]
    sets += [fold for name, fold in _FOLDS.items() if name not in ending]
    sets += [f"{Run._meta.get_field(name).column} = %(end_{name})s" for name in ending]
    return f"""r AS (UPDATE swarms_run SET {", ".join(sets)}
  WHERE id = %(run)s AND attempt = %(lease)s AND status = 'running' RETURNING last_seq)"""  # noqa: S608


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
# The calls this settles, as billing's ledger part reads them (`usage_records_add_sql`).
_SETTLED_PART = """p AS (UPDATE swarms_runstep AS c SET status = 'settled', output = x.output,
    provider = x.provider, cost_usd = x.cost, tokens_in = x.tin, tokens_out = x.tout,
    updated_at = %(now)s
  FROM r, unnest(%(skeys)s::text[], %(soutputs)s::text[], %(sproviders)s::text[],
    %(scosts)s::numeric[], %(sins)s::int[], %(souts)s::int[])
    AS x(key, output, provider, cost, tin, tout)
  WHERE c.run_id = %(run)s AND c.attempt = %(lease)s AND c.key = x.key
    AND c.status = 'reserved'
  RETURNING c.agent_id, c.model, x.provider AS provider, x.tin AS tokens_in,
    x.tout AS tokens_out, x.cost AS cost_usd)"""


# ---------------------------------------------------------------------------------------------
# The ORM's writes
# ---------------------------------------------------------------------------------------------
def run_events_append(
    *,
    run_id: str,
    events: Sequence[EventTuple],
    where: Q | None = None,
    changes: dict[str, Any] | None = None,
    run: Run | None = None,
) -> list[RunEvent] | None:
    """Append events to a run, numbered after its last (seq 1, 2, 3…), folding progress and
    active agents (and `changes`) into its row, and publish them once the transaction commits.
    The run row is updated first, in one `UPDATE … RETURNING` that also locks it until the
    transaction ends, and only if it matches `where` (a lease, a status); None, with nothing
    written, when it does not (or the run is not there). Call it in a transaction. `run`, the
    caller's copy of the row, is what the workspace stream's status messages are made from
    (without it they read the row)."""
    values: dict[str, Any] = {"last_seq": F("last_seq") + len(events)}
    runs = Run.objects.filter(pk=run_id)
    if where is not None:
        runs = runs.filter(where)
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
    returned = run_update_returning(runs=runs, values=values, field="last_seq")
    if returned is None:
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


def run_update_returning(*, runs: QuerySet, values: dict[str, Any], field: str) -> Any:
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


def _steps_write(run: Run, lease: int, steps: Sequence[Step]) -> None:
    """Checkpoints in few statements: new reservations in one INSERT, the released and
    interrupted in one UPDATE each, and each settled one in one UPDATE (only while still
    reserved: a retried write finds it settled and charges nothing) with the ledger rows of
    those it settled in one more (billing's `usage_records_add`)."""
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
        usage_records_add(_ledger_rows(run, charged))


def _ledger_rows(run: Run, charged: Sequence) -> list[UsageRecord]:
    """The ledger rows of the calls a batch settled (their `Usage`), for billing to write,
    with who started the run (its creator and API key)."""
    return [
        UsageRecord(
            workspace_id=run.workspace_id, run_id=run.pk, swarm_id=run.swarm_id or "",
            swarm_type=run.swarm_type, agent_id=usage.agent_id, model=usage.model,
            provider=usage.provider, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
            cost_usd=usage.cost_usd, user_id=run.created_by_id or "",
            api_key_id=run.api_key_id or "",
        )
        for usage in charged
    ]  # fmt: skip
