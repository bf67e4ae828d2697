"""Run writes: starting a run, cancelling it and retrying a failed one.

A run starts from a swarm's version (`/api`), or a template or an inline definition (`/v1`),
once its definition, budget and the plan's quotas allow it. What happens to it after that (the
executor's lease, its records, how it ends) is in lifecycle.py.
"""

import re
from decimal import ROUND_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.services import workspace_run_quota_check
from accounts.tenancy import Caller
from audit.services import audit_record
from billing.services import usage_run_started
from sverm.api.errors import (
    BudgetExceeded,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
)
from sverm.money import MONEY_PLACES, money, usd
from swarms import jobs
from swarms.engine import Definition, Price, estimate_cost, minimum_cost, validate_definition
from swarms.engine.events import RUN_CANCELLED
from swarms.engine.schema import lists_tools
from swarms.engine.tools import WORKSPACE_ALLOWLIST
from swarms.models import (
    PAUSED_STATUSES,
    Approval,
    ApprovalStatus,
    Run,
    RunStatus,
    Swarm,
    SwarmVersion,
)
from swarms.providers import check_models_routable, price_map, simulated_mode
from swarms.services.lifecycle import run_end, runs_reap_stale
from templates_app.selectors import template_get
from templates_app.services import definition_parse
from tools.selectors import tools_refused, workspace_tool_allowlist, workspace_tools

CUSTOM_SWARM_TYPE = "custom"
# What `/v1` takes for a template id rather than inline YAML.
TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$")


def run_definition_for(*, swarm: Swarm, version_id: str | None) -> SwarmVersion:
    """The version a swarm run executes: `version_id` (404 when there is none, 422 when it is
    another swarm's), else the swarm's default."""
    version = None
    if version_id is not None:
        version = SwarmVersion.objects.filter(pk=version_id).first()
        if version is None:
            raise NotFound(f"Version {version_id} not found.")
    else:
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


def _checked_definition(definition: dict[str, Any], prices, workspace_id: str) -> Definition:
    """The definition as the engine runs it: 400 naming every problem (an unknown model or
    tool among them), 403 when an agent lists a tool the workspace allowlist does not allow."""
    uses_tools = lists_tools(definition)
    known_tools = set(workspace_tools(workspace_id=workspace_id)) if uses_tools else None
    errors = validate_definition(definition, known_models=set(prices), known_tools=known_tools)
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
    if uses_tools:
        allowlist = workspace_tool_allowlist(workspace_id=workspace_id)
        refused = tools_refused(allowlist, {agent.id: agent.tools for agent in parsed.agents})
        if refused:
            raise Forbidden(
                f"workspace_allowlist rule for {workspace_id} does not permit "
                f"{', '.join(refused)}; an operator can allow it in the workspace's tools.",
                details={"rule_source": WORKSPACE_ALLOWLIST, "allowed_tools": allowlist},
            )
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
    prices: dict[str, Price] | None = None,
    pause_on_budget: bool = False,
    api_key_id: str | None = None,
) -> Run:
    """Queue a run after checking its definition, that its expected cost fits the budget
    (422 `budget_exceeded` otherwise) and the plan's run quotas (429 `rate_limited`); it is
    dispatched once the transaction commits. `prices`: `price_map()`, when the caller has read
    it. Who started it: `created_by` (for an API key, the key's creator: a key acts as its
    creator) and `api_key_id`, the key's when one did (the caller's `api_key_id`; None for a
    signed-in user, and for the runs schedules and batches start, which keep no key). The
    ledger copies both onto every call the run makes, for spend by user and by key."""
    if swarm is not None and swarm.deleted_at is not None:
        raise Conflict(f"Swarm {swarm.pk} is deleted; restore it before running it.")
    budget = (
        max_budget_usd if max_budget_usd is not None else Decimal(settings.SVERM_DEFAULT_BUDGET_USD)
    )
    prices = price_map() if prices is None else prices
    parsed = _checked_definition(definition, prices, workspace_id)
    expected, _worst = estimate_cost(parsed, task, prices)
    # Refused only when even the cheapest path to completion (every call's output clamped to
    # the floor) does not fit: any budget accepted here completes (runner.py clamps max_tokens).
    least = minimum_cost(parsed, task, prices, settings.SVERM_MIN_OUTPUT_TOKENS)
    if least > budget:
        least = least.quantize(MONEY_PLACES, rounding=ROUND_UP)  # a budget of this fits
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
        "webhook_url": webhook_url, "created_by": created_by, "api_key_id": api_key_id,
        "pause_on_budget": pause_on_budget,
    }  # fmt: skip
    try:
        return _run_insert(values)
    except RateLimited as refused:
        # Runs whose worker was lost for good must not hold the workspace's concurrency slots:
        # a full workspace has them reaped (outside the refused transaction) and tries again.
        reaped = refused.details.get("limit") == "concurrent_runs" and runs_reap_stale(
            workspace_id=workspace_id
        )
        if not reaped:
            raise
    return _run_insert(values)


def run_create_for_swarm(
    *,
    swarm: Swarm,
    workspace_id: str,
    version_id: str | None,
    task: str,
    max_budget_usd: Decimal | None,
    webhook_url: str,
    created_by: User | None,
    pause_on_budget: bool = False,
    api_key_id: str | None = None,
) -> Run:
    """Start a run of `swarm` (`/api/swarms/{id}/runs`) in `workspace_id` (see selectors'
    `run_workspace_for_swarm`): of the version `version_id` (404 when there is none, 422 when it
    is another swarm's), else of the swarm's default version. `api_key_id`: the key starting
    it, if one is (see `run_create`)."""
    version = run_definition_for(swarm=swarm, version_id=version_id)
    return run_create(
        workspace_id=workspace_id,
        definition=version.definition,
        task=task,
        max_budget_usd=max_budget_usd,
        created_by=created_by,
        swarm=swarm,
        version=version,
        webhook_url=webhook_url,
        pause_on_budget=pause_on_budget,
        api_key_id=api_key_id,
    )


def run_create_from_source(
    *,
    caller: Caller,
    workspace_id: str,
    source: str,
    task: str,
    max_budget_usd: Decimal | None,
    webhook_url: str,
    created_by: User | None,
    pause_on_budget: bool = False,
) -> Run:
    """Start a `/v1` run in `workspace_id` from `source`: a template id (one the caller may read
    there, 404 otherwise) or an inline YAML definition (422 listing its problems). The run
    records the caller's API key, if it is one (see `run_create`)."""
    source = source.strip()
    prices = price_map()  # read once, for the definition's models and the run's estimate
    if TEMPLATE_ID.match(source):
        template = template_get(caller=caller, template_id=source, workspace_id=workspace_id)
        definition, template_id = template.definition, template.pk
    else:
        definition, _yaml = definition_parse(source=source, prices=prices)
        template_id = ""
    return run_create(
        workspace_id=workspace_id,
        definition=definition,
        task=task,
        max_budget_usd=max_budget_usd,
        created_by=created_by,
        template_id=template_id,
        webhook_url=webhook_url,
        prices=prices,
        pause_on_budget=pause_on_budget,
        api_key_id=caller.api_key_id,
    )


def _run_insert(values: dict[str, Any]) -> Run:
    """The run's row and its month's count, under the workspace's quota lock. Lock order (every
    writer of these rows keeps it, so none waits in a cycle): the quota lock (the workspace row
    FOR NO KEY UPDATE, taken by creations only), then run rows (the new one here; an existing
    one by the recorder, run end, cancel and the reaper, one run per transaction), a run's steps
    and events, then the month's rollup row, last. Foreign-key checks on the workspace row
    (FOR KEY SHARE, by ledger and rollup inserts) do not conflict with the quota lock."""
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
        audit_record(
            action="run.create", workspace_id=workspace_id, target_type="run", target_id=run.pk,
            after={"status": run.status, "swarm_id": run.swarm_id, "version_id": run.version_id,
                   "template_id": run.template_id, "max_budget_usd": run.max_budget_usd,
                   "estimated_cost_usd": run.estimated_cost_usd,
                   "webhook_url": run.webhook_url, "pause_on_budget": run.pause_on_budget},
        )  # fmt: skip
        transaction.on_commit(lambda: jobs.enqueue(jobs.EXECUTE_RUN, run.pk))
    return run


def run_cancel(*, run: Run) -> Run:
    """Stop a run, answering at once with the run as it stands: a queued one is cancelled (its
    status and `run.cancelled` event together, see run_end); a running one is asked to stop
    (`cancel_requested_at`: the executor aborts its calls in flight and ends it `cancelled`,
    keeping its partial output and cost, within a poll interval, or at once when it executes in
    this process). Cancelling a cancelled run is a no-op; a completed or failed one is 409.

    Not waiting for a running run to stop keeps request threads free. The run APIs (seeds 002
    and 003) know no intermediate status such as OpenAI's `cancelling`, so the answer says
    `running` until the run has stopped: callers follow it on the run's stream or status to
    `cancelled` (or to `completed`/`failed` when it ended first)."""
    if run.status == RunStatus.CANCELLED:
        return run
    if run.is_terminal:
        raise Conflict(f"Run {run.pk} already {run.status}; there is nothing to cancel.")
    now = timezone.now()
    # The cancel and its audit event commit together; a running run's executor in this process
    # is told once they have.
    with transaction.atomic():
        cancelled = run_end(
            run_id=run.pk,
            where=Q(status=RunStatus.QUEUED),
            changes={"status": RunStatus.CANCELLED, "cancel_requested_at": now,
                     "completed_at": now},
            terminal=(RUN_CANCELLED, {"cost_usd": "0"}),
        )  # fmt: skip
        before_status = RunStatus.QUEUED
        if not cancelled and run.status in PAUSED_STATUSES:
            # No worker holds a paused run: it ends here, with what it spent before pausing.
            before_status = run.status
            cancelled = run_end(
                run_id=run.pk,
                where=Q(status__in=PAUSED_STATUSES),
                changes={"status": RunStatus.CANCELLED, "cancel_requested_at": now,
                         "completed_at": now},
                terminal=(RUN_CANCELLED, {"cost_usd": format(run.current_cost_usd, "f")}),
            )  # fmt: skip
            if cancelled:
                Approval.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING).update(
                    status=ApprovalStatus.EXPIRED, reason="the run was cancelled", decided_at=now
                )
        if cancelled:
            audit_record(action="run.cancel", workspace_id=run.workspace_id, target_type="run",
                         target_id=run.pk, before={"status": before_status},
                         after={"status": RunStatus.CANCELLED})  # fmt: skip
        elif Run.objects.filter(pk=run.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now
        ):
            # A running run: asked to stop (its status follows when it has).
            audit_record(action="run.cancel", workspace_id=run.workspace_id, target_type="run",
                         target_id=run.pk, before={"cancel_requested_at": None},
                         after={"cancel_requested_at": now})  # fmt: skip
        if not cancelled:
            transaction.on_commit(lambda: jobs.cancel_local(run.pk), robust=True)
    run.refresh_from_db()
    return run


# Statuses a run can be retried from: it ended without an answer.
RETRYABLE_STATUSES = (RunStatus.FAILED, RunStatus.CANCELLED)


def run_retry(*, run: Run, created_by: User | None) -> Run:
    """Start a failed or cancelled run again, as a new run through `run_create` (its checks,
    quotas and estimate apply anew): the definition as the old run ran it, its task, budget,
    swarm and version, template, webhook and budget pause. The new run's `retry_of` names the
    old one. A run that is still active, or that completed, is 409: there is nothing to retry.
    (A running run whose worker was lost is resumed by the reaper, not retried.)"""
    if run.status not in RETRYABLE_STATUSES:
        hint = "it completed" if run.status == RunStatus.COMPLETED else "cancel it first"
        raise Conflict(
            f"Run {run.pk} is {run.status}; only failed or cancelled runs are retried ({hint})."
        )
    with transaction.atomic():
        retry = run_create(
            workspace_id=run.workspace_id,
            definition=run.definition,
            task=run.task,
            max_budget_usd=run.max_budget_usd,
            created_by=created_by,
            swarm=run.swarm,
            version=run.version,
            template_id=run.template_id,
            webhook_url=run.webhook_url,
            pause_on_budget=run.pause_on_budget,
        )
        Run.objects.filter(pk=retry.pk).update(retry_of=run)
        retry.retry_of = run
        audit_record(action="run.retry", workspace_id=run.workspace_id, target_type="run",
                     target_id=run.pk, after={"retry_run_id": retry.pk})  # fmt: skip
    return retry
