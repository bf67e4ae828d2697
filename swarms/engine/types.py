"""The engine's input and output values: frozen dataclasses, money as Decimal, never float."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from swarms.engine.providers import ProviderError
from swarms.engine.schema import expand_ids, validate_definition


@dataclass(frozen=True)
class AgentSpec:
    id: str
    role: str
    model: str
    instructions: str = ""
    max_tokens: int = 1024
    replicas: int = 1
    tools: tuple[str, ...] = ()  # the tools it may call: its allowlist
    # Its tool calls that wait for an operator's approval: True (all), or some tools by name.
    requires_approval: bool | tuple[str, ...] = False
    approve_steps: bool = False  # each of its steps (LLM turns) waits for an operator first

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools", tuple(self.tools))
        if not isinstance(self.requires_approval, bool):
            object.__setattr__(self, "requires_approval", tuple(self.requires_approval))

    def approval_needed(self, tool: str) -> bool:
        if isinstance(self.requires_approval, bool):
            return self.requires_approval
        return tool in self.requires_approval


@dataclass(frozen=True)
class Limits:
    max_parallel: int = 4
    max_steps: int = 50
    rounds: int = 2
    max_tool_calls: int = 4  # per agent turn; the turn's last call then answers without tools


@dataclass(frozen=True)
class Definition:
    """A validated team: constructing one that the schema refuses raises ValueError, so the
    topologies can rely on its shape (one manager, enough steps, ...)."""

    topology: str  # a name in topologies.TOPOLOGIES
    agents: tuple[AgentSpec, ...]
    instructions: str = ""  # shared system instructions, prepended to every agent's
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        object.__setattr__(self, "agents", tuple(self.agents))
        errors = validate_definition(self.to_dict())
        if errors:
            raise ValueError("invalid definition: " + "; ".join(errors))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Definition":
        """Build from the template/YAML shape; raises ValueError naming every problem."""
        errors = validate_definition(data)
        if errors:
            raise ValueError("invalid definition: " + "; ".join(errors))
        return cls(
            topology=data["topology"],
            instructions=data.get("instructions", ""),
            limits=Limits(**data.get("limits", {})),
            agents=tuple(AgentSpec(**agent) for agent in data["agents"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The dict shape `from_dict` reads, with every default spelled out."""
        return {
            "topology": self.topology,
            "instructions": self.instructions,
            "limits": {
                "max_parallel": self.limits.max_parallel,
                "max_steps": self.limits.max_steps,
                "rounds": self.limits.rounds,
                "max_tool_calls": self.limits.max_tool_calls,
            },
            "agents": [
                {
                    "id": agent.id,
                    "role": agent.role,
                    "model": agent.model,
                    "instructions": agent.instructions,
                    "max_tokens": agent.max_tokens,
                    "replicas": agent.replicas,
                    "tools": list(agent.tools),
                    "approve_steps": agent.approve_steps,
                    "requires_approval": (
                        agent.requires_approval
                        if isinstance(agent.requires_approval, bool)
                        else list(agent.requires_approval)
                    ),
                }
                for agent in self.agents
            ],
        }

    def expanded_agents(self) -> tuple[AgentSpec, ...]:
        """One spec per running agent: replicas become `<id>-1`, `<id>-2`, ... with replicas=1."""
        return self._expanded

    # Computed once: every walk of the topology (the runner's, and the estimate's several per
    # call) asks for the team by role. cached_property writes past the frozen __setattr__.
    @cached_property
    def _expanded(self) -> tuple[AgentSpec, ...]:
        expanded = []
        for agent in self.agents:
            for agent_id in expand_ids(agent.id, agent.replicas):
                expanded.append(
                    AgentSpec(
                        id=agent_id,
                        role=agent.role,
                        model=agent.model,
                        instructions=agent.instructions,
                        max_tokens=agent.max_tokens,
                        tools=agent.tools,
                        requires_approval=agent.requires_approval,
                        approve_steps=agent.approve_steps,
                    )
                )
        return tuple(expanded)

    def role(self, role: str) -> tuple[AgentSpec, ...]:
        """The expanded agents with `role`, in listed order."""
        return tuple(agent for agent in self.expanded_agents() if agent.role == role)


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input_per_million: Decimal
    output_per_million: Decimal


@dataclass(frozen=True)
class Step:
    """The checkpoint of one LLM call, keyed by what was asked (agent, model, messages, and how
    many identical calls came before it in the run).

    `reserved` before the call starts; then `settled` (with its usage and text), `released` (the
    provider refused it: nothing spent) or `interrupted` (aborted in flight: the provider may
    have charged it, so its reservation stays held against the budget until reconciled).
    """

    key: str
    agent_id: str
    model: str
    status: str  # "reserved" | "settled" | "released" | "interrupted"
    reserved_usd: Decimal
    usage: "Usage | None" = None
    output: str = ""


# The fewest output tokens a call is started with: below it, an answer is not worth paying for.
MIN_OUTPUT_TOKENS = 64


@dataclass(frozen=True)
class CallPolicy:
    """How one LLM call is made: its output floor (`max_tokens` is clamped down to what the
    budget can pay, never below `min_output_tokens`), the time one attempt may take, the deadline
    of the call across all its attempts, how many attempts, and the pauses between them."""

    min_output_tokens: int = MIN_OUTPUT_TOKENS
    attempt_timeout_seconds: float = 60.0
    deadline_seconds: float = 120.0
    max_attempts: int = 3
    retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0)

    def retry_delay(
        self, error: ProviderError, attempt: int, now: float, deadline: float
    ) -> float | None:
        """Seconds to wait before the attempt after `attempt` failed with `error` (at `now`, on
        the clock of `deadline`), or None when there is none to make."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        delays = self.retry_delays or (0.0,)
        delay = error.retry_after
        if delay is None:
            delay = delays[min(attempt - 1, len(delays) - 1)]
        if now + delay >= deadline:
            return None
        return delay

    def gave_up(self, error: ProviderError, attempt: int) -> str:
        """Why the call failed, after `attempt` attempts."""
        if not error.retryable:
            return str(error)
        return (
            f"{error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''}; "
            f"{self.max_attempts} allowed within the call's deadline of "
            f"{self.deadline_seconds:g} s)"
        )


@dataclass(frozen=True)
class RunInput:
    run_id: str
    task: str
    definition: Definition
    budget_usd: Decimal
    prices: Mapping[str, Price]  # keyed by model name
    # A resumed run: the settled steps of its earlier attempts by key, replayed instead of paid
    # for again, and what their interrupted calls reserved, held against the budget.
    checkpoints: Mapping[str, Step] = field(default_factory=dict)
    held_usd: Decimal = Decimal(0)
    calls: CallPolicy = field(default_factory=CallPolicy)
    # Operators' decisions on tool calls that waited for approval, by the request's key.
    approvals: Mapping[str, "Decision"] = field(default_factory=dict)
    # When the next call cannot fit: pause for a bigger budget (True) instead of failing.
    pause_on_budget: bool = False


@dataclass(frozen=True)
class Decision:
    """An operator's answer to an approval request: run the call (with `arguments` instead of
    the model's when they edited them), or refuse it, saying why."""

    approved: bool
    arguments: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class ApprovalRequest:
    """A tool call waiting for an operator. `key` names it in every attempt of the run."""

    key: str
    agent_id: str
    tool: str
    call_id: str
    arguments: str


@dataclass(frozen=True)
class Event:
    type: str
    agent_id: str | None
    data: dict[str, Any]  # JSON-serialisable: money as str


@dataclass(frozen=True)
class Usage:
    agent_id: str
    model: str
    provider: str
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


@dataclass(frozen=True)
class RunResult:
    # events.COMPLETED | FAILED | CANCELLED, or events.PAUSED: the run stopped to wait for the
    # `pending` approvals, with nothing in flight, and resumes from its checkpoints.
    status: str
    output: str
    error_code: str | None
    error_message: str | None
    usage: tuple[Usage, ...]
    total_cost_usd: Decimal
    pending: tuple[ApprovalRequest, ...] = ()
    # Paused for budget (no approval pending): how much more the next call needs, at least.
    budget_short_usd: Decimal | None = None


def money(value: Decimal) -> str:
    """Decimal as a plain fixed-point string (`str()` would give '1E-7' for tiny costs)."""
    return format(value, "f")
