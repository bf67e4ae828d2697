"""What sverm answers, as frozen dataclasses: snake_case names whatever the wire's case, money as
Decimal (read from the JSON number's text), times as aware datetimes, and `.raw`, the wire dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "FINISHED_STATUSES",
    "PAUSED_STATUSES",
    "TERMINAL_EVENTS",
    "Credentials",
    "Event",
    "Run",
    "RunCreated",
    "RunResult",
    "Swarm",
    "SwarmVersion",
    "Template",
    "Usage",
    "Workspace",
]

# A run with one of these statuses will not change again.
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})
# A run with one of these waits for an operator (a tool call to approve, a budget to raise).
PAUSED_STATUSES = frozenset({"awaiting_approval", "awaiting_budget"})
# The last event of a run's stream (swarms/engine/events.py TERMINAL_EVENTS).
TERMINAL_EVENTS = frozenset({"run.completed", "run.failed", "run.cancelled"})

Raw = Mapping[str, Any]


# --- reading wire values --------------------------------------------------------------------------
def money(value: Any) -> Decimal | None:
    """USD as Decimal: JSON numbers arrive as Decimal already (parsed from their text); ints and
    strings are read exactly; a float goes through its shortest text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        return None


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (sverm sends UTC, `...Z`)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def text(value: Any) -> str | None:
    """A string, with sverm's "" for "none" read as None."""
    return value if isinstance(value, str) and value else None


def number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def integer(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- credentials ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client authenticates with: an API key, or a JWT access token and the refresh token
    that renews it (the client swaps in the new access token when it refreshes)."""

    access: str | None = None
    refresh: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        def shown(secret: str | None) -> str:
            return "None" if secret is None else repr(secret[:8] + "…")

        return (
            f"Credentials(access={shown(self.access)}, refresh={shown(self.refresh)}, "
            f"api_key={shown(self.api_key)})"
        )


# --- runs -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    """A run as `/api/runs/{id}` shows it."""

    id: str
    status: str
    task: str = ""
    workspace_id: str | None = None
    swarm_id: str | None = None
    version_id: str | None = None
    template_id: str | None = None
    progress: float = 0.0
    max_budget_usd: Decimal | None = None
    estimated_cost_usd: Decimal | None = None
    current_cost_usd: Decimal | None = None
    agents_active: int | None = None
    agents_total: int | None = None
    simulated: bool | None = None
    output: str = field(default="", repr=False)
    error_code: str | None = None
    error_message: str | None = None
    webhook_url: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    pause_on_budget: bool = False
    budget_needed_usd: Decimal | None = None
    pause_deadline_at: datetime | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> Run:
        return cls(
            id=data["id"],
            status=data["status"],
            task=data.get("task") or "",
            workspace_id=text(data.get("workspaceId")),
            swarm_id=text(data.get("swarmId")),
            version_id=text(data.get("versionId")),
            template_id=text(data.get("templateId")),
            progress=number(data.get("progress")) or 0.0,
            max_budget_usd=money(data.get("maxBudgetUsd")),
            estimated_cost_usd=money(data.get("estimatedCostUsd")),
            current_cost_usd=money(data.get("currentCostUsd")),
            agents_active=integer(data.get("agentsActive")),
            agents_total=integer(data.get("agentsTotal")),
            simulated=data.get("simulated"),
            output=data.get("output") or "",
            error_code=text(data.get("errorCode")),
            error_message=text(data.get("errorMessage")),
            webhook_url=text(data.get("webhookUrl")),
            created_by=text(data.get("createdBy")),
            created_at=timestamp(data.get("createdAt")),
            started_at=timestamp(data.get("startedAt")),
            completed_at=timestamp(data.get("completedAt")),
            pause_on_budget=bool(data.get("pauseOnBudget")),
            budget_needed_usd=money(data.get("budgetNeededUsd")),
            pause_deadline_at=timestamp(data.get("pauseDeadlineAt")),
            raw=data,
        )

    @property
    def template(self) -> str | None:
        """The template it was started from (`templateId`), None for a swarm's or inline run."""
        return self.template_id

    @property
    def cost_usd(self) -> Decimal | None:
        """What it has cost so far (`currentCostUsd`)."""
        return self.current_cost_usd

    @property
    def finished_at(self) -> datetime | None:
        """When it ended (`completedAt`, set for failed and cancelled runs too)."""
        return self.completed_at

    @property
    def finished(self) -> bool:
        """Completed, failed or cancelled: it will not change again."""
        return self.status in FINISHED_STATUSES

    @property
    def paused(self) -> bool:
        """Waiting for an operator: a tool call to approve, or a budget to raise."""
        return self.status in PAUSED_STATUSES


@dataclass(frozen=True, slots=True)
class RunCreated:
    """The answer to starting a run on /v1: its id, status and estimated cost. `replayed` is
    True when the server answered a retry with the stored first response (same Idempotency-Key)."""

    id: str
    status: str
    estimated_cost_usd: Decimal | None = None
    created_at: datetime | None = None
    replayed: bool = False
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw, *, replayed: bool = False) -> RunCreated:
        return cls(
            id=data["swarm_id"],
            status=data["status"],
            estimated_cost_usd=money(data.get("estimated_cost_usd")),
            created_at=timestamp(data.get("created_at")),
            replayed=replayed,
            raw=data,
        )

    @property
    def run_id(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class RunResult:
    """A run's result (/v1): its markdown output, the cost report (`{"total_usd", "total_tokens",
    "agents": [{"agent_id", "model", "cost_usd", "tokens_in", "tokens_out"}]}`, money as Decimal),
    the agent log and how long it took."""

    run_id: str
    status: str
    output: str = field(default="", repr=False)
    cost_report: dict[str, Any] = field(default_factory=dict, compare=False)
    agent_logs: list[dict[str, Any]] = field(default_factory=list, compare=False)
    elapsed_seconds: Decimal | None = None
    simulated: bool | None = None
    error: dict[str, Any] | None = field(default=None, compare=False)
    created_at: datetime | None = None
    completed_at: datetime | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> RunResult:
        report = data.get("cost_report")
        logs = data.get("agent_logs")
        error = data.get("error")
        return cls(
            run_id=data["swarm_id"],
            status=data["status"],
            output=data.get("output") or "",
            cost_report=dict(report) if isinstance(report, Mapping) else {},
            agent_logs=[dict(entry) for entry in logs] if isinstance(logs, list) else [],
            elapsed_seconds=money(data.get("elapsed_seconds")),
            simulated=data.get("simulated"),
            error=dict(error) if isinstance(error, Mapping) else None,
            created_at=timestamp(data.get("created_at")),
            completed_at=timestamp(data.get("completed_at")),
            raw=data,
        )

    @property
    def cost_usd(self) -> Decimal | None:
        """The run's total cost (`cost_report.total_usd`)."""
        return money(self.cost_report.get("total_usd"))

    @property
    def finished_at(self) -> datetime | None:
        return self.completed_at

    @property
    def error_code(self) -> str | None:
        return text((self.error or {}).get("code"))


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a run, from its stream (`seq, type, run_id, agent_id, data, ts`) or its stored
    events (`runId, agentId, createdAt`): the same fields either way."""

    seq: int
    type: str
    run_id: str | None = None
    agent_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    ts: datetime | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> Event:
        body = data.get("data")
        return cls(
            seq=int(data["seq"]),
            type=data["type"],
            run_id=text(data.get("run_id", data.get("runId"))),
            agent_id=text(data.get("agent_id", data.get("agentId"))),
            data=dict(body) if isinstance(body, Mapping) else {},
            ts=timestamp(data.get("ts", data.get("createdAt"))),
            raw=data,
        )

    @property
    def terminal(self) -> bool:
        """The run's last event (run.completed, run.failed or run.cancelled)."""
        return self.type in TERMINAL_EVENTS


# --- templates, usage -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Template:
    """A built-in or workspace template (/v1/templates)."""

    id: str
    name: str = ""
    description: str = ""
    topology: str | None = None
    estimated_cost_range: str | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> Template:
        return cls(
            id=data["id"],
            name=data.get("name") or "",
            description=data.get("description") or "",
            topology=text(data.get("topology")),
            estimated_cost_range=text(data.get("estimated_cost_range")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """A month's spend (/v1/usage): totals and, per swarm type, `{"count", "total_usd"}`."""

    month: str | None
    total_usd: Decimal | None = None
    total_runs: int | None = None
    total_tokens: int | None = None
    by_swarm_type: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> Usage:
        current = data.get("current_month")
        current = current if isinstance(current, Mapping) else {}
        by_type = current.get("by_swarm_type")
        return cls(
            month=text(data.get("month")),
            total_usd=money(current.get("total_usd")),
            total_runs=integer(current.get("total_swarms")),
            total_tokens=integer(current.get("total_tokens")),
            by_swarm_type=dict(by_type) if isinstance(by_type, Mapping) else {},
            raw=data,
        )


# --- swarms, workspaces ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Swarm:
    """A saved swarm (/api/swarms); `deleted_at` is set while it is in the trash."""

    id: str
    name: str = ""
    workspace_id: str | None = None
    description: str = ""
    default_version_id: str | None = None
    created_by: str | None = None
    runtime_user_id: str | None = None
    retention_tier: str | None = None
    deleted_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> Swarm:
        return cls(
            id=data["id"],
            name=data.get("name") or "",
            workspace_id=text(data.get("workspaceId")),
            description=data.get("description") or "",
            default_version_id=text(data.get("defaultVersionId")),
            created_by=text(data.get("createdBy")),
            runtime_user_id=text(data.get("runtimeUserId")),
            retention_tier=text(data.get("retentionTier")),
            deleted_at=timestamp(data.get("deletedAt")),
            created_at=timestamp(data.get("createdAt")),
            updated_at=timestamp(data.get("updatedAt")),
            raw=data,
        )

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class SwarmVersion:
    """One immutable version of a swarm: its instructions, models and full definition."""

    id: str
    swarm_id: str | None = None
    number: int | None = None
    instructions: str = ""
    models: list[str] = field(default_factory=list, compare=False)
    definition: dict[str, Any] = field(default_factory=dict, compare=False)
    created_by: str | None = None
    created_at: datetime | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> SwarmVersion:
        models = data.get("models")
        definition = data.get("definition")
        return cls(
            id=data["id"],
            swarm_id=text(data.get("swarmId")),
            number=integer(data.get("number")),
            instructions=data.get("instructions") or "",
            models=list(models) if isinstance(models, list) else [],
            definition=dict(definition) if isinstance(definition, Mapping) else {},
            created_by=text(data.get("createdBy")),
            created_at=timestamp(data.get("createdAt")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Workspace:
    """A workspace the caller is a member of, with the caller's role in it."""

    id: str
    name: str = ""
    plan: str | None = None
    role: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Raw) -> Workspace:
        return cls(
            id=data["id"],
            name=data.get("name") or "",
            plan=text(data.get("plan")),
            role=text(data.get("role")),
            created_at=timestamp(data.get("createdAt")),
            updated_at=timestamp(data.get("updatedAt")),
            raw=data,
        )
