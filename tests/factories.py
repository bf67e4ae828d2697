"""The tests' factories: one function per kind of row, each name with one meaning; keyword
arguments say how a row differs from the plain one. (Users, workspaces and API clients are
fixtures, in tests/conftest.py.)

Runs come two ways: `make_run` writes the row as given (no estimate, no rollup, never
dispatched), for tests of what happens to a run in a given state; `create_run` goes through
`run_create` as the API does (estimate, quotas, rollup, and under `transactional_db` the
executor runs it once the transaction commits).
"""

import copy
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from swarms import services
from swarms.models import Run, RunEvent, RunStatus, Swarm
from swarms.services.lifecycle import run_event_add
from templates_app import services as template_services
from templates_app.models import SwarmTemplate
from tests.templates_app.definitions import PARALLEL

TEMPLATE_ID = "research-swarm-v1"


def make_swarm(workspace, created_by=None, *, name: str = "Team", **fields) -> Swarm:
    """A swarm and its version 1, through `swarm_create`; `fields` are its other arguments
    (description, instructions, models, retention_tier)."""
    return services.swarm_create(workspace=workspace, name=name, created_by=created_by, **fields)


def make_run(
    workspace,
    *,
    status: str = RunStatus.RUNNING,
    started_ago: float | None = None,
    heartbeat_ago: float | None = None,
    **fields,
) -> Run:
    """A run row written as given: a custom sequential run with a $5 budget, on its first
    attempt once it left the queue. `started_ago`/`heartbeat_ago` set those times that many
    seconds before now; `fields` are any other columns (task, swarm, agents_total, webhook_url,
    attempt, last_seq...)."""
    now = timezone.now()
    values = {
        "swarm_type": "custom",
        "definition": {"topology": "sequential", "agents": []},
        "task": "Investigate Norwegian hydrogen",
        "max_budget_usd": Decimal("5"),
        "estimated_cost_usd": Decimal("0.01"),
        "attempt": 0 if status == RunStatus.QUEUED else 1,
    }
    if started_ago is not None:
        values["started_at"] = now - timedelta(seconds=started_ago)
    if heartbeat_ago is not None:
        values["heartbeat_at"] = now - timedelta(seconds=heartbeat_ago)
    return Run.objects.create(workspace=workspace, status=status, **{**values, **fields})


def create_run(
    workspace,
    *,
    swarm: Swarm | None = None,
    created_by=None,
    task: str = "Investigate Norwegian hydrogen economy",
    budget: Decimal | None = None,
    status: str | None = None,
    **options,
) -> Run:
    """A run created through `run_create`: of `swarm`'s default version, else of the research
    template; `options` are run_create's others (webhook_url). `status` then forces the row's
    status (without events), for tests of runs in that state."""
    if swarm is None:
        definition = SwarmTemplate.objects.get(pk=TEMPLATE_ID).definition
        origin = {"template_id": TEMPLATE_ID}
    else:
        definition = swarm.default_version.definition
        origin = {"swarm": swarm, "version": swarm.default_version}
    run = services.run_create(
        workspace_id=workspace.pk, definition=definition, task=task, max_budget_usd=budget,
        created_by=created_by, **origin, **options,
    )  # fmt: skip
    if status is not None:
        Run.objects.filter(pk=run.pk).update(status=status)
        run.refresh_from_db()
    return run


def add_event(run: Run, type: str = "agent.message", agent_id: str = "", **data) -> RunEvent:
    """The run's next event, through `run_event_add` (so published once committed)."""
    return run_event_add(run_id=run.pk, type=type, agent_id=agent_id, data=data)


def add_events(run: Run, types: Iterable[str]) -> list[RunEvent]:
    """The run's next events, one per type, from agents `agent-0`, `agent-1`... with data
    `{"n": 0}`, `{"n": 1}`..."""
    return [add_event(run, type, agent_id=f"agent-{n}", n=n) for n, type in enumerate(types)]


def make_template(
    workspace, template_id: str = "team-template", *, source=None, name="Team", created_by=None
) -> SwarmTemplate:
    """A workspace template through `template_create`, of a small parallel team by default."""
    return template_services.template_create(
        workspace=workspace,
        template_id=template_id,
        source=copy.deepcopy(PARALLEL) if source is None else source,
        name=name,
        created_by=created_by,
    )
