"""sverm-client: the Python SDK of sverm (budgeted LLM agent swarms), sync and asyncio.

`Client` and `AsyncClient` (same resources: templates, runs, usage, swarms, workspaces), typed
models, one exception hierarchy (`errors`). See README.md for a quick start.
"""

from . import errors
from ._async_client import AsyncClient, AsyncEventStream
from ._client import Client, EventStream
from ._version import __version__
from .errors import (
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SvermError,
    TransportError,
    UnprocessableError,
    ValidationError,
    WaitTimeout,
)
from .models import (
    FINISHED_STATUSES,
    PAUSED_STATUSES,
    TERMINAL_EVENTS,
    Credentials,
    Event,
    Run,
    RunCreated,
    RunResult,
    Swarm,
    SwarmVersion,
    Template,
    Usage,
    Workspace,
)

__all__ = [
    "FINISHED_STATUSES",
    "PAUSED_STATUSES",
    "TERMINAL_EVENTS",
    "AsyncClient",
    "AsyncEventStream",
    "AuthenticationError",
    "BudgetExceededError",
    "Client",
    "ConflictError",
    "Credentials",
    "Event",
    "EventStream",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Run",
    "RunCreated",
    "RunResult",
    "ServerError",
    "SvermError",
    "Swarm",
    "SwarmVersion",
    "Template",
    "TransportError",
    "UnprocessableError",
    "Usage",
    "ValidationError",
    "WaitTimeout",
    "Workspace",
    "__version__",
    "errors",
]
