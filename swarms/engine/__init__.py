"""The multi-agent engine: plain Python (no Django), frozen dataclasses in, events out.

Django, Celery and Channels adapt to it from outside: they build a RunInput, pass callbacks that
store events and usage, and keep the RunResult.
"""

from swarms.engine.budget import Budget, BudgetExhausted, Reservation, cost_usd
from swarms.engine.cancel import CancelToken, cancel_when
from swarms.engine.estimate import estimate_cost, minimum_cost
from swarms.engine.plan import parse_plan
from swarms.engine.providers import (
    Completion,
    CompletionRequest,
    Message,
    OpenAIProvider,
    Provider,
    ProviderError,
    ProviderRouter,
    SimulatedProvider,
)
from swarms.engine.runner import run_swarm
from swarms.engine.schema import validate_definition
from swarms.engine.types import (
    AgentSpec,
    CallPolicy,
    Definition,
    Event,
    Limits,
    Price,
    RunInput,
    RunResult,
    Step,
    Usage,
)

__all__ = [
    "AgentSpec",
    "Budget",
    "BudgetExhausted",
    "CallPolicy",
    "CancelToken",
    "Completion",
    "CompletionRequest",
    "Definition",
    "Event",
    "Limits",
    "Message",
    "OpenAIProvider",
    "Price",
    "Provider",
    "ProviderError",
    "ProviderRouter",
    "Reservation",
    "RunInput",
    "RunResult",
    "SimulatedProvider",
    "Step",
    "Usage",
    "cancel_when",
    "cost_usd",
    "estimate_cost",
    "minimum_cost",
    "parse_plan",
    "run_swarm",
    "validate_definition",
]
