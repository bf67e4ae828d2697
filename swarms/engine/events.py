"""The events a run reports, named once, and what a batch of them does to the run's row.

The engine emits these types; the service stores them and folds them into the run's row
(`fold`), streams rebuild where a run stood as of one of them (`as_of`), and webhooks and
retention pick out the terminal ones. Everyone imports the names from here.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

RUN_STARTED = "run.started"
RUN_PROGRESS = "run.progress"
RUN_COMPLETED = "run.completed"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"
AGENT_STARTED = "agent.started"
AGENT_DELEGATED = "agent.delegated"
AGENT_MESSAGE = "agent.message"
AGENT_COMPLETED = "agent.completed"
TOOL_CALLED = "tool.called"
TOOL_RESULT = "tool.result"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_DECIDED = "approval.decided"
RUN_PAUSED = "run.paused"
RUN_BUDGET_RAISED = "run.budget_raised"

# The status a run's start gives it, and those it can end with.
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
# Not an ending: the run stopped to wait for operators' approvals and resumes once they decide.
PAUSED = "paused"

# Each terminal event, and the status a run ends with when it is its last event. Tuples, not
# sets, so queries filtering on them read the same every time.
TERMINAL_STATUS = {RUN_COMPLETED: COMPLETED, RUN_FAILED: FAILED, RUN_CANCELLED: CANCELLED}
TERMINAL_EVENTS = tuple(TERMINAL_STATUS)
TERMINAL_EVENT = {status: type_ for type_, status in TERMINAL_STATUS.items()}
# The events that change where a run stands (status, progress, cost, active agents).
STATUS_EVENTS = (RUN_STARTED, RUN_PROGRESS, *TERMINAL_EVENTS)


@dataclass(frozen=True)
class Folded:
    """What a batch of events does to the run row. Active agents: each event maps the count a
    to max(a + shift, floor) (a run.progress sets it, agent.started adds one, agent.completed
    takes one, not below 0), and so does their composition, so the new count is one expression
    of the stored one: `shift` None means the stored count no longer matters, `floor` None
    means no floor. Progress and cost are the last run.progress's, if any; `status` is the one
    the last run.started or terminal event gives the run, if any. A terminal event's other
    effects are the run's result's to write (see `as_of`)."""

    shift: int | None
    floor: int | None
    progress: float | None
    cost_usd: Decimal | None
    status: str | None = None

    def agents_active(self, before: int) -> int:
        """The active agents after the batch, when `before` it was this many."""
        if self.shift is None:
            assert self.floor is not None  # a shift is only dropped along with a floor
            return self.floor
        active = before + self.shift
        return active if self.floor is None else max(active, self.floor)


def fold(events: Iterable[tuple[str, str | None, Mapping[str, Any]]]) -> Folded:
    """The effect of events `(type, agent_id, data)`, in order, on the run's row."""
    shift: int | None = 0
    floor: int | None = None
    progress = cost = status = None
    for type_, _agent_id, data in events:
        if type_ == RUN_PROGRESS:
            shift, floor = None, int(data.get("agents_active", 0))
            progress = min(max(float(data.get("progress", 0)), 0.0), 1.0)
            cost = Decimal(data.get("cost_usd", "0"))
        elif type_ == AGENT_STARTED:
            shift = None if shift is None else shift + 1
            floor = None if floor is None else floor + 1
        elif type_ == AGENT_COMPLETED:
            shift = None if shift is None else shift - 1
            floor = 0 if floor is None else max(floor - 1, 0)
        elif type_ == RUN_STARTED:
            status = RUNNING
        elif type_ in TERMINAL_STATUS:
            status = TERMINAL_STATUS[type_]
    return Folded(shift, floor, progress, cost, status)


@dataclass(frozen=True)
class RunState:
    """Where a run stands, as its status messages say it."""

    status: str
    progress: float
    cost_usd: Decimal
    agents_active: int


def as_of(state: RunState, type_: str, data: Mapping[str, Any]) -> RunState:
    """Where the run stood right after one event, from where it stood before it: the fold of
    that event, and for a terminal one what ending means (no agent active; progress complete
    when completed; the cost it states)."""
    folded = fold([(type_, None, data)])
    if type_ in TERMINAL_STATUS:
        return RunState(
            status=TERMINAL_STATUS[type_],
            progress=1.0 if type_ == RUN_COMPLETED else state.progress,
            cost_usd=Decimal(data["cost_usd"]) if "cost_usd" in data else state.cost_usd,
            agents_active=0,
        )
    return RunState(
        status=folded.status or state.status,
        progress=state.progress if folded.progress is None else folded.progress,
        cost_usd=state.cost_usd if folded.cost_usd is None else folded.cost_usd,
        agents_active=folded.agents_active(state.agents_active),
    )
