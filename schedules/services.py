"""Schedule writes: creating, changing, pausing, resuming and deleting a schedule (each audited in
its transaction), and firing the due ones (`schedules_fire_due`, the periodic tick).

Firing is exactly-once across any number of processes: a due schedule is claimed in the database
(PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent ticks take different rows; SQLite
runs one write transaction at a time), its `next_run_at` is advanced only where it still holds
the slot that was read, and the firing is a row UNIQUE per (schedule, slot). The run, the
firing, the schedule's new `next_run_at` and the audit event commit together or not at all.

Catch-up after downtime (a tick that finds slots older than its own interval): the missed slots
are coalesced into ONE firing for the latest of them, started at once, when that slot is at most
`catch_up_seconds` old (an hour by default); otherwise they are skipped, recorded as one
`skipped_missed` firing. Either way the schedule goes on from the next slot after now. Slots
that came while it was paused are not caught up: resuming starts from the next slot.
"""

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.roles import Role
from accounts.tenancy import Caller
from audit.context import SYSTEM, audit_context_use
from audit.services import audit_diff, audit_fields, audit_record
from schedules.cron import fires_between, last_fire_at_or_before, next_fire_after
from schedules.models import FiringOutcome, OverlapPolicy, Schedule, ScheduleFiring
from sverm.api.errors import ApplicationError, Conflict, InvalidRequest, NotFound
from sverm.money import usd
from swarms.models import TERMINAL_STATUSES, Run, RunStatus, Swarm, SwarmVersion
from swarms.services import run_cancel, run_create_for_swarm, run_create_from_source
from templates_app.selectors import template_get

logger = logging.getLogger("sverm.schedules")

# Statuses of a run that is still going (the overlap policies look for one).
ACTIVE_RUN_STATUSES = tuple(s for s in RunStatus.values if s not in TERMINAL_STATUSES)
# Schedules one tick fires at most (each in its own short transaction); the rest wait a tick.
FIRINGS_PER_TICK = 1000
# Missed slots counted for a firing's `missed` (past it, the count says "at least").
MAX_MISSED_COUNTED = 1000
# The fields a schedule's audit events show.
SCHEDULE_AUDITED = (
    "name", "swarm", "version", "template_id", "task", "max_budget_usd", "webhook_url", "cron",
    "timezone", "starts_at", "ends_at", "max_runs", "monthly_cap_usd", "overlap_policy",
    "catch_up_seconds", "paused", "next_run_at",
)  # fmt: skip
# What PATCH may change (the target, swarm or template, is fixed at creation).
UPDATABLE = {
    "name", "task", "max_budget_usd", "webhook_url", "cron", "timezone", "starts_at", "ends_at",
    "max_runs", "monthly_cap_usd", "overlap_policy", "catch_up_seconds", "version_id",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# When it fires next
# ---------------------------------------------------------------------------------------------
def schedule_next_run_at(schedule: Schedule, *, after: datetime) -> datetime | None:
    """The first slot strictly after `after` that the schedule fires for: None while paused,
    once it made (or has waiting) its `max_runs`, and past its end date; never before its start
    date."""
    if schedule.paused:
        return None
    if schedule.max_runs is not None:
        waiting = 0
        if not schedule._state.adding:
            waiting = schedule.firings.filter(outcome=FiringOutcome.QUEUED).count()
        if schedule.runs_made + waiting >= schedule.max_runs:
            return None
    if schedule.starts_at is not None and schedule.starts_at > after:
        after = schedule.starts_at - timedelta(microseconds=1)
    slot = next_fire_after(schedule.cron, ZoneInfo(schedule.timezone), after)
    if slot is None or (schedule.ends_at is not None and slot > schedule.ends_at):
        return None
    return slot


def _check_fires(schedule: Schedule, now: datetime) -> None:
    """400 naming the field when a new or changed schedule would never fire."""
    zone = ZoneInfo(schedule.timezone)
    if next_fire_after(schedule.cron, zone, now) is None:
        raise InvalidRequest.for_field(
            "cron", f"'{schedule.cron}' never fires: no date matches it (check day and month)."
        )
    if schedule.ends_at is not None and schedule.ends_at <= now:
        raise InvalidRequest.for_field("endsAt", "Must be in the future.")
    starts, ends = schedule.starts_at, schedule.ends_at
    if starts is not None and ends is not None and ends <= starts:
        raise InvalidRequest.for_field("endsAt", "Must be after startsAt.")
    start = max(now, schedule.starts_at or now) - timedelta(microseconds=1)
    first = next_fire_after(schedule.cron, zone, start)
    if first is None:
        raise InvalidRequest.for_field(
            "startsAt", "No slot of the cron expression comes after the start date."
        )
    if schedule.ends_at is not None and first > schedule.ends_at:
        raise InvalidRequest.for_field(
            "endsAt", "No slot of the cron expression falls before the end date."
        )


# ---------------------------------------------------------------------------------------------
# Writes through the API
# ---------------------------------------------------------------------------------------------
def schedule_target_resolve(
    *,
    caller: Caller,
    workspace_id: str,
    swarm_id: str | None,
    version_id: str | None,
    template_id: str | None,
) -> tuple[Swarm | None, SwarmVersion | None, str]:
    """What a new schedule runs: a swarm of its workspace (and optionally one of its versions),
    or a template readable there; 400 naming the field otherwise (the same answer for a swarm
    of a workspace the caller cannot see, so nothing leaks)."""
    if bool(swarm_id) == bool(template_id):
        raise InvalidRequest.for_field(
            "swarmId", "Give exactly one of swarmId (a swarm to run) and templateId (a template)."
        )
    if template_id:
        if version_id:
            raise InvalidRequest.for_field("versionId", "Only a swarm has versions to pin.")
        try:
            template = template_get(
                caller=caller, template_id=template_id, workspace_id=workspace_id
            )
        except NotFound:
            raise InvalidRequest.for_field(
                "templateId", f"No template '{template_id}' is readable in this workspace."
            ) from None
        return None, None, template.pk
    swarm = Swarm.objects.filter(pk=swarm_id, workspace_id=workspace_id).first()
    if swarm is None:
        raise InvalidRequest.for_field("swarmId", "No swarm with this id in the workspace.")
    if swarm.deleted_at is not None:
        raise Conflict(f"Swarm {swarm.pk} is deleted; restore it before scheduling it.")
    version = None
    if version_id:
        version = SwarmVersion.objects.filter(pk=version_id, swarm=swarm).first()
        if version is None:
            raise InvalidRequest.for_field("versionId", "Not a version of this swarm.")
    return swarm, version, ""


def schedule_create(
    *,
    workspace: Workspace,
    name: str,
    task: str,
    cron: str,
    zone: str,
    created_by: User | None,
    swarm: Swarm | None = None,
    version: SwarmVersion | None = None,
    template_id: str = "",
    max_budget_usd: Decimal | None = None,
    webhook_url: str = "",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    max_runs: int | None = None,
    monthly_cap_usd: Decimal | None = None,
    overlap_policy: str = OverlapPolicy.SKIP,
    catch_up_seconds: int | None = None,
) -> Schedule:
    """A schedule of `swarm` (its `version`, else its default at each firing) or of the template
    `template_id`, with its first `next_run_at` computed; 400 naming the field when it would
    never fire."""
    now = timezone.now()
    schedule = Schedule(
        workspace=workspace, name=name, swarm=swarm, version=version, template_id=template_id,
        task=task, webhook_url=webhook_url, cron=cron, timezone=zone, starts_at=starts_at,
        ends_at=ends_at, max_runs=max_runs, monthly_cap_usd=monthly_cap_usd,
        overlap_policy=overlap_policy, created_by=created_by,
        max_budget_usd=(
            max_budget_usd if max_budget_usd is not None
            else Decimal(settings.SVERM_DEFAULT_BUDGET_USD)
        ),
    )  # fmt: skip
    if catch_up_seconds is not None:
        schedule.catch_up_seconds = catch_up_seconds
    _check_fires(schedule, now)
    schedule.next_run_at = schedule_next_run_at(schedule, after=now)
    with transaction.atomic():
        schedule.save()
        _audit("schedule.create", schedule, after=audit_fields(schedule, SCHEDULE_AUDITED))
    return schedule


def schedule_update(*, schedule: Schedule, data: dict[str, Any]) -> Schedule:
    """Change the fields of `data` (model names; `version_id` None unpins) and recompute
    `next_run_at`: a slot already due still fires (the next tick), none fires twice."""
    unknown = set(data) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    now = timezone.now()
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        before = audit_fields(schedule, SCHEDULE_AUDITED)
        if data.get("version_id") is not None:
            if schedule.swarm_id is None:
                raise InvalidRequest.for_field("versionId", "Only a swarm has versions to pin.")
            if not SwarmVersion.objects.filter(
                pk=data["version_id"], swarm_id=schedule.swarm_id
            ).exists():
                raise InvalidRequest.for_field("versionId", "Not a version of this swarm.")
        for name, value in data.items():
            setattr(schedule, name, value)
        timing = {"cron", "timezone", "starts_at", "ends_at"} & set(data)
        if timing:
            _check_fires(schedule, now)
        if not schedule.paused:
            after = _resume_point(schedule, now)
            schedule.next_run_at = schedule_next_run_at(schedule, after=after)
        schedule.save()
        old, new = audit_diff(before, audit_fields(schedule, SCHEDULE_AUDITED))
        if new:
            _audit("schedule.update", schedule, before=old, after=new)
    return schedule


def _resume_point(schedule: Schedule, now: datetime) -> datetime:
    """Where the next slot is looked for after a change: a slot already due (not yet fired by a
    tick) stays due, but never one at or before the last firing."""
    after = now
    if schedule.next_run_at is not None and schedule.next_run_at <= now:
        after = schedule.next_run_at - timedelta(microseconds=1)
    if schedule.last_fired_at is not None:
        after = max(after, schedule.last_fired_at)
    return after


def schedule_pause(*, schedule: Schedule) -> Schedule:
    """Stop firing (idempotent): `next_run_at` is cleared, a firing waiting behind an active run
    is dropped (`skipped_paused`); runs already started go on."""
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        if schedule.paused:
            return schedule
        before = {"paused": False, "next_run_at": schedule.next_run_at}
        schedule.firings.filter(outcome=FiringOutcome.QUEUED).update(
            outcome=FiringOutcome.SKIPPED_PAUSED, reason="The schedule was paused while it waited."
        )
        schedule.paused, schedule.next_run_at = True, None
        schedule.save(update_fields=["paused", "next_run_at", "updated_at"])
        after = {"paused": True, "next_run_at": None}
        _audit("schedule.pause", schedule, before=before, after=after)
    return schedule


def schedule_resume(*, schedule: Schedule) -> Schedule:
    """Fire again from the next slot after now (slots that came while paused are not caught
    up); idempotent. A schedule past its end date or its max runs stays ended."""
    now = timezone.now()
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        if not schedule.paused:
            return schedule
        schedule.paused = False
        schedule.next_run_at = schedule_next_run_at(schedule, after=now)
        schedule.save(update_fields=["paused", "next_run_at", "updated_at"])
        _audit(
            "schedule.resume", schedule, before={"paused": True, "next_run_at": None},
            after={"paused": False, "next_run_at": schedule.next_run_at},
        )  # fmt: skip
    return schedule


def schedule_delete(*, schedule: Schedule) -> None:
    """Delete the schedule and its firings; the runs it made stay."""
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
        if schedule is None:
            return
        _audit("schedule.delete", schedule, before=audit_fields(schedule, SCHEDULE_AUDITED))
        schedule.delete()


def _audit(action: str, schedule: Schedule, *, before=None, after=None) -> None:
    audit_record(action=action, workspace_id=schedule.workspace_id, target_type="schedule",
                 target_id=schedule.pk, before=before, after=after)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Firing
# ---------------------------------------------------------------------------------------------
def schedules_fire_due(*, now: datetime | None = None) -> list[ScheduleFiring]:
    """Fire every schedule due at `now` (default: the current time), each in a transaction of
    its own, and start the queued firings whose previous run ended (the fallback of the
    `run_ended` receiver); the firings made. Safe to call from any number of processes at once:
    each slot fires once."""
    now = now or timezone.now()
    firings = schedules_start_queued(now=now)
    tried: set[str] = set()
    # What a firing changes (its run, the run's audit event) is the system's doing.
    with audit_context_use(actor_type=SYSTEM):
        for _ in range(FIRINGS_PER_TICK):
            claimed, firing = _fire_next(now, tried)
            if not claimed:
                break
            if firing is not None:
                firings.append(firing)
    return firings


def _due(now: datetime, tried: set[str]):
    due = Schedule.objects.filter(paused=False, next_run_at__lte=now).exclude(pk__in=tried)
    due = due.order_by("next_run_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        # Rows another process is firing are passed over, not waited for.
        due = due.select_for_update(skip_locked=True)
    return due


def _fire_next(now: datetime, tried: set[str]) -> tuple[bool, ScheduleFiring | None]:
    """Fire the first due schedule not yet tried in this pass: (False, None) when none is due,
    (True, the firing) once fired, (True, None) when another process had it or it failed."""
    with transaction.atomic():
        schedule = _due(now, tried).first()
        if schedule is None:
            return False, None
        tried.add(schedule.pk)
        due_slot = schedule.next_run_at
        try:
            with transaction.atomic():
                return True, _fire(schedule, now)
        except IntegrityError:
            # The slot has its firing already: move on past it rather than meet it again.
            logger.warning("schedule %s: its slot was fired already", schedule.pk)
            _move_on(schedule.pk, due_slot, now)
        except DatabaseError:
            raise  # rolled back whole: the slot stays due and the next tick tries again
        except Exception as error:
            # A bug must not fail this schedule at every tick, nor stop the others: it moves on
            # to its next slot, saying why.
            logger.exception("schedule %s could not be fired", schedule.pk)
            _move_on(schedule.pk, due_slot, now, error=error)
        return True, None


def _move_on(
    schedule_id: str, due_slot: datetime, now: datetime, error: Exception | None = None
) -> None:
    """Past the slot `due_slot` without firing it (the firing's changes were rolled back)."""
    schedule = Schedule.objects.get(pk=schedule_id)
    changes: dict[str, Any] = {"next_run_at": schedule_next_run_at(schedule, after=now)}
    if error is not None:
        changes["last_error"] = (
            f"Internal error while firing at {now:%Y-%m-%d %H:%M:%S} UTC "
            f"({type(error).__name__}); the slot was skipped."
        )
    Schedule.objects.filter(pk=schedule_id, next_run_at=due_slot).update(**changes)


def _fire(schedule: Schedule, now: datetime) -> ScheduleFiring | None:
    """Fire `schedule` (claimed, due) at `now`: one firing for its latest slot up to now."""
    due_slot = schedule.next_run_at
    zone = ZoneInfo(schedule.timezone)
    horizon = min(now, schedule.ends_at) if schedule.ends_at is not None else now
    slot = max(last_fire_at_or_before(schedule.cron, zone, horizon) or due_slot, due_slot)
    # The claim: only the process that read this slot moves the schedule on (a second one,
    # which SQLite or PostgreSQL's lock made wait, finds the slot gone and fires nothing).
    claimed = Schedule.objects.filter(pk=schedule.pk, next_run_at=due_slot, paused=False).update(
        next_run_at=schedule_next_run_at(schedule, after=now)
    )
    if not claimed:
        return None
    missed = len(fires_between(schedule.cron, zone, due_slot, slot, limit=MAX_MISSED_COUNTED)) - 1
    firing = ScheduleFiring.objects.create(
        schedule=schedule, slot_at=slot, outcome=FiringOutcome.QUEUED, missed=missed
    )
    # A slot is never "missed" for being found a tick late, whatever the two settings say.
    window = max(schedule.catch_up_seconds, 2 * settings.SVERM_SCHEDULE_TICK_SECONDS)
    if now - slot > timedelta(seconds=window):
        _firing_end(
            firing, FiringOutcome.SKIPPED_MISSED,
            reason=f"{_slots(missed + 1)} missed (the last at {slot:%Y-%m-%d %H:%M:%S} UTC) "
            f"were older than the catch-up window ({window:g} s) when the scheduler ran again.",
        )  # fmt: skip
    else:
        _firing_decide(schedule, firing, now)
        if missed and firing.outcome == FiringOutcome.STARTED:
            firing.reason = f"Catch-up: {_slots(missed + 1)} missed, coalesced into this one."
            firing.save(update_fields=["reason"])
    _schedule_fired(schedule, firing, now)
    return firing


def _slots(count: int) -> str:
    more = "+" if count > MAX_MISSED_COUNTED else ""
    return f"{count}{more} slot{'s' if count != 1 else ''}"


def _firing_decide(schedule: Schedule, firing: ScheduleFiring, now: datetime) -> None:
    """Start a run for `firing`, unless the monthly cap or the overlap policy says otherwise."""
    refusal = _over_cap(schedule, now)
    if refusal:
        _firing_end(firing, FiringOutcome.SKIPPED_CAP, reason=refusal)
        return
    active = _active_runs(schedule)
    if active:
        previous = ", ".join(f"{run.pk} ({run.status})" for run in active)
        if schedule.overlap_policy == OverlapPolicy.SKIP:
            _firing_end(firing, FiringOutcome.SKIPPED_OVERLAP, reason=f"Still active: {previous}.")
            return
        if schedule.overlap_policy == OverlapPolicy.QUEUE:
            waiting = schedule.firings.filter(outcome=FiringOutcome.QUEUED).exclude(pk=firing.pk)
            if waiting.exists():
                _firing_end(
                    firing, FiringOutcome.SKIPPED_OVERLAP,
                    reason=f"Still active: {previous}, and a firing already waits for it.",
                )  # fmt: skip
            else:
                firing.reason = f"Waits for {previous} to end."
                firing.save(update_fields=["reason"])
            return
        for run in active:
            _cancel(run)
        firing.reason = f"Cancelled the previous run: {previous}."
    _firing_start(schedule, firing, now)


def _cancel(run: Run) -> None:
    try:
        with transaction.atomic():
            run_cancel(run=run)
    except Conflict:
        pass  # it ended meanwhile


def _firing_start(schedule: Schedule, firing: ScheduleFiring, now: datetime) -> None:
    """Create the firing's run through swarms' run creation (definition, budget and the plan's
    quotas checked there): a refusal is the firing's outcome, `failed`, with its reason."""
    try:
        with transaction.atomic():
            run = _run_create(schedule)
    except ApplicationError as refused:
        _firing_end(firing, FiringOutcome.FAILED, reason=f"{refused.code}: {refused.message}")
        return
    note = firing.reason
    firing.run, firing.started_at = run, now
    _firing_end(firing, FiringOutcome.STARTED, reason=note)


def _run_create(schedule: Schedule) -> Run:
    common = {
        "workspace_id": schedule.workspace_id,
        "task": schedule.task,
        "max_budget_usd": schedule.max_budget_usd,
        "webhook_url": schedule.webhook_url,
        "created_by": schedule.created_by,
    }
    if schedule.swarm_id is not None:
        return run_create_for_swarm(swarm=schedule.swarm, version_id=schedule.version_id, **common)
    # The schedule acts as an operator of its workspace: templates readable there.
    caller = Caller(user_id=None, roles={schedule.workspace_id: Role.OPERATOR})
    return run_create_from_source(caller=caller, source=schedule.template_id, **common)


def _firing_end(firing: ScheduleFiring, outcome: str, *, reason: str = "") -> None:
    firing.outcome, firing.reason = outcome, reason
    firing.save(update_fields=["outcome", "reason", "run", "started_at"])


def _active_runs(schedule: Schedule) -> list[Run]:
    """The schedule's runs still going (walked from the workspace's active runs, which its
    plan's quotas keep few, not from the schedule's whole history)."""
    return list(
        Run.objects.filter(
            workspace_id=schedule.workspace_id,
            status__in=ACTIVE_RUN_STATUSES,
            schedule_firings__schedule=schedule,
        ).order_by("created_at")
    )


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def schedule_month_spend(*, schedule: Schedule, now: datetime) -> Decimal:
    """What the schedule's runs started this UTC month have spent, counting each run still
    going at its budget (it may spend up to it)."""
    runs = Run.objects.filter(
        schedule_firings__schedule=schedule,
        schedule_firings__started_at__gte=month_start(now),
    )
    totals = runs.aggregate(
        ended=Sum("current_cost_usd", filter=Q(status__in=TERMINAL_STATUSES)),
        going=Sum("max_budget_usd", filter=Q(status__in=ACTIVE_RUN_STATUSES)),
    )
    return (totals["ended"] or Decimal(0)) + (totals["going"] or Decimal(0))


def _over_cap(schedule: Schedule, now: datetime) -> str:
    """Why a run now could take the month past the cap, or ""."""
    if schedule.monthly_cap_usd is None:
        return ""
    spent = schedule_month_spend(schedule=schedule, now=now)
    if spent + schedule.max_budget_usd <= schedule.monthly_cap_usd:
        return ""
    return (
        f"Monthly cap {usd(schedule.monthly_cap_usd)}: {usd(spent)} spent or reserved this "
        f"month (UTC), and a run may cost up to {usd(schedule.max_budget_usd)}."
    )


def _schedule_fired(schedule: Schedule, firing: ScheduleFiring, now: datetime) -> None:
    """The schedule after a firing: its counters, last error and next slot; and the audit."""
    started = firing.outcome == FiringOutcome.STARTED
    if started:
        schedule.runs_made += 1
    schedule.last_fired_at = now
    if started:
        schedule.last_error = ""
    elif firing.outcome in (
        FiringOutcome.FAILED, FiringOutcome.SKIPPED_CAP, FiringOutcome.SKIPPED_MISSED
    ):  # fmt: skip
        schedule.last_error = firing.reason
    if schedule.next_run_at is None or schedule.next_run_at <= now:
        after = now
    else:
        after = schedule.next_run_at - timedelta(microseconds=1)
    schedule.next_run_at = schedule_next_run_at(schedule, after=after)
    Schedule.objects.filter(pk=schedule.pk).update(
        runs_made=schedule.runs_made, last_fired_at=now, last_error=schedule.last_error,
        next_run_at=schedule.next_run_at,
    )  # fmt: skip
    audit_record(
        action="schedule.fire", workspace_id=schedule.workspace_id, target_type="schedule",
        target_id=schedule.pk,
        after={"firing_id": firing.pk, "slot_at": firing.slot_at, "outcome": firing.outcome,
               "run_id": firing.run_id, "reason": firing.reason,
               "next_run_at": schedule.next_run_at},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Queued firings (overlap policy `queue`)
# ---------------------------------------------------------------------------------------------
def schedules_start_queued(*, now: datetime | None = None) -> list[ScheduleFiring]:
    """Start the queued firings whose schedule has no active run left (the tick's fallback for
    a `run_ended` signal that was lost with its process)."""
    now = now or timezone.now()
    waiting = (
        ScheduleFiring.objects.filter(outcome=FiringOutcome.QUEUED)
        .values_list("schedule_id", flat=True)
        .distinct()
    )
    started = []
    for schedule_id in list(waiting):
        try:
            firing = schedule_queued_start(schedule_id=schedule_id, now=now)
        except DatabaseError:
            raise
        except Exception:
            logger.exception("the queued firing of schedule %s could not be started", schedule_id)
            continue
        if firing is not None:
            started.append(firing)
    return started


def schedule_queued_start(
    *, schedule_id: str, now: datetime | None = None
) -> ScheduleFiring | None:
    """Start the schedule's queued firing if no run of it is active any more (the monthly cap
    is checked again); the firing, or None when there was nothing to start."""
    now = now or timezone.now()
    # The system's doing, even when a request's cancel ended the run it waited for.
    with audit_context_use(actor_type=SYSTEM), transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(pk=schedule_id).first()
        if schedule is None or schedule.paused:
            return None
        firing = schedule.firings.filter(outcome=FiringOutcome.QUEUED).order_by("slot_at").first()
        if firing is None or _active_runs(schedule):
            return None
        # Claimed by moving it on from `queued`, once, whoever gets there first.
        if not ScheduleFiring.objects.filter(pk=firing.pk, outcome=FiringOutcome.QUEUED).update(
            outcome=FiringOutcome.FAILED
        ):
            return None
        firing.reason = ""
        refusal = _over_cap(schedule, now)
        if refusal:
            _firing_end(firing, FiringOutcome.SKIPPED_CAP, reason=refusal)
        else:
            _firing_start(schedule, firing, now)
        if firing.outcome == FiringOutcome.STARTED:
            firing.reason = f"Started once the previous run ended ({now:%Y-%m-%d %H:%M:%S} UTC)."
            firing.save(update_fields=["reason"])
        _schedule_fired(schedule, firing, now)
    return firing


def schedule_run_ended(sender=None, *, run_id: str, status: str = "", **kwargs) -> None:
    """`swarms.signals.run_ended` receiver: a run a schedule made ended, so its queued firing
    (if any) starts now. Never raises (the tick starts it otherwise)."""
    try:
        made = ScheduleFiring.objects.filter(run_id=run_id)
        schedule_id = made.values_list("schedule_id", flat=True).first()
        if schedule_id is None:
            return
        if ScheduleFiring.objects.filter(
            schedule_id=schedule_id, outcome=FiringOutcome.QUEUED
        ).exists():
            schedule_queued_start(schedule_id=schedule_id)
    except Exception:
        logger.exception("the queued firing after run %s could not be started", run_id)
