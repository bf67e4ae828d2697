"""The AsyncAPI 3 document of the WebSocket streams (swarms/routing.py, batches/routing.py), served
at /asyncapi.json and /asyncapi.yaml.

Built from the constants the streams themselves use (event types, terminal events, close codes,
the `after` pattern, id prefixes, money's wording), so it changes when they do;
tests/sverm/test_asyncapi.py checks it against the AsyncAPI 3.0.0 schema and against the
messages a running server sends. It lives beside urls.py and asgi.py, not in sverm/api: it
describes the swarms app's consumers, and the shared plumbing imports no app (pyproject's
import contract).
"""

import functools
import json
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.views import View

from batches.models import BATCH_TERMINAL_EVENTS, BatchEventType, BatchStatus, ItemStatus
from sverm.api.ids import PREFIXES
from sverm.api.money import MONEY_DESCRIPTION, MONEY_KEY_SUFFIX
from swarms import consumers
from swarms.engine import events
from swarms.engine.gates import AGENT_STEP
from swarms.engine.tools import AGENT_ALLOWLIST, OPERATOR_DENIAL, WORKSPACE_ALLOWLIST
from swarms.engine.topologies import TOPOLOGY_NAMES
from swarms.models import ApprovalStatus, RunEventType, RunStatus
from swarms.selectors import WORKSPACE_SNAPSHOT_LIMIT

ASYNCAPI_VERSION = "3.0.0"
# RFC 6455's normal closure: what a run stream closes with once it sent the terminal event
# (the consumers write it as the literal).
NORMAL_CLOSURE = 1000
# The run events without an agent: the run's own (their `agent_id` is null).
RUN_LEVEL_EVENTS = frozenset(
    {events.RUN_STARTED, events.RUN_PROGRESS, events.RUN_PAUSED, events.RUN_BUDGET_RAISED,
     *events.TERMINAL_EVENTS}
)  # fmt: skip
# The runs a workspace stream's snapshot covers (swarms/selectors.py `workspace_active_runs`).
SNAPSHOT_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
RUN_ID_EXAMPLE = f"{PREFIXES['run']}_01k2v7r8xq3m9c4d5e6f7g8h9j"
WORKSPACE_ID_EXAMPLE = f"{PREFIXES['workspace']}_01k2v7q1ab2cd3ef4gh5jk6mn7"
BATCH_ID_EXAMPLE = f"{PREFIXES['batch']}_01k2v7t4mn5pq6rs7tv8wx9yz0"
ITEM_ID_EXAMPLE = f"{PREFIXES['batch_item']}_01k2v7t4mn5pq6rs7tv8wx9yz1"
# A batch stream's terminal events, in a stable order.
BATCH_TERMINAL = tuple(sorted(str(t) for t in BATCH_TERMINAL_EVENTS))
TS_EXAMPLE = "2025-01-15T10:30:01.250000Z"


def _id_schema(entity: str, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": f"^{PREFIXES[entity]}_[0-9a-z]{{26}}$",
        "description": description,
    }


def _money(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "description": f"{description} {MONEY_DESCRIPTION}"}


def _count(description: str, minimum: int = 0) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "description": description}


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def close_codes() -> tuple[dict[str, Any], ...]:
    """Every code a stream closes with: `name` is stable, `streams` says which send it."""
    run, every = ("run", "batch"), ("run", "workspace", "batch")
    return (
        {
            "code": NORMAL_CLOSURE,
            "name": "normal",
            "streams": run,
            "description": "The run (or batch) ended: sent right after its terminal event ("
            + ", ".join(f"`{t}`" for t in (*events.TERMINAL_EVENTS, *BATCH_TERMINAL))
            + "), or at once when `after` is at or past it. A workspace stream never closes "
            "by itself.",
        },
        {
            "code": consumers.CLOSE_BAD_REQUEST,
            "name": "bad_request",
            "streams": run,
            "description": f"`after` is not a whole number of 1 to 10 digits "
            f"(`{consumers.AFTER.pattern}`).",
        },
        {
            "code": consumers.CLOSE_UNAUTHORIZED,
            "name": "unauthorized",
            "streams": every,
            "description": "No credential, or a bad, expired or revoked one (JWT or API key).",
        },
        {
            "code": consumers.CLOSE_FORBIDDEN,
            "name": "forbidden",
            "streams": every,
            "description": "The caller is a member of the workspace but its role may not follow "
            "the stream (viewer is enough, so no member gets this today).",
        },
        {
            "code": consumers.CLOSE_NOT_FOUND,
            "name": "not_found",
            "streams": every,
            "description": "No such run, batch or workspace, or one the caller may not see (the "
            "same answer, so nothing leaks whether it exists); on `/v1`, a run outside the "
            "call's workspace; any other WebSocket path.",
        },
    )


def _close_codes_for(stream: str) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in code.items() if key != "streams"}
        for code in close_codes()
        if stream in code["streams"]
    ]


def _close_codes_text(stream: str | None = None) -> str:
    """A Markdown table of the codes `stream` closes with (all of them, saying whose: None)."""
    if stream is not None:
        rows = [
            f"| {code['code']} | `{code['name']}` | {code['description']} |"
            for code in _close_codes_for(stream)
        ]
        return "| Close code | Name | Meaning |\n|---|---|---|\n" + "\n".join(rows)
    rows = [
        f"| {code['code']} | `{code['name']}` | {' and '.join(code['streams'])} | "
        f"{code['description']} |"
        for code in close_codes()
    ]
    return "| Close code | Name | Streams | Meaning |\n|---|---|---|---|\n" + "\n".join(rows)


# --- run events ---------------------------------------------------------------------------------
def _data(
    summary: str,
    properties: dict[str, dict[str, Any]],
    optional: tuple[str, ...],
    example: dict[str, Any],
) -> dict[str, Any]:
    return {
        "summary": summary,
        "schema": {
            "type": "object",
            "description": f"{summary} Keys not listed here may be added: ignore them.",
            "required": [name for name in properties if name not in optional],
            "properties": properties,
        },
        "example": example,
    }


def event_data() -> dict[str, dict[str, Any]]:
    """Each run event type's `summary`, `schema` of its `data` and an `example` of it."""
    cost = _money("What the run has spent so far.")
    return {
        events.RUN_STARTED: _data(
            "The run began executing.",
            {
                "agents_total": _count("Agents in its definition, replicas counted."),
                "topology": _text("How its team works.", enum=list(TOPOLOGY_NAMES)),
                "simulated": {
                    "type": "boolean",
                    "description": "Its calls go to the simulated provider (no LLM provider is "
                    "configured for its models).",
                },
            },
            (),
            {"agents_total": 4, "topology": "hierarchical", "simulated": False},
        ),
        events.AGENT_STARTED: _data(
            "An agent's turn began.",
            {
                "model": _text("The model it calls."),
                "task": _text("What it was asked, shortened."),
                "max_tokens": _count(
                    "Present when the budget clamped this call's output below the agent's "
                    "`max_tokens`.",
                    minimum=1,
                ),
            },
            ("max_tokens",),
            {"model": "gpt-4o-mini", "task": "Find the main sources on ..."},
        ),
        events.AGENT_DELEGATED: _data(
            "A manager (the event's agent) gave part of the task to another agent.",
            {
                "target": _text("The agent it delegated to."),
                "summary": _text("The subtask, shortened."),
                "note": _text("The manager's note, when it wrote one."),
            },
            ("note",),
            {"target": "researcher-1", "summary": "Collect recent figures on ..."},
        ),
        events.AGENT_MESSAGE: _data(
            "A model call of the agent finished and was charged.",
            {
                "summary": _text("Its answer, shortened (or the tools it asked for)."),
                "tokens_in": _count("Prompt tokens the provider reported."),
                "tokens_out": _count("Output tokens the provider reported."),
                "cost_usd": _money("What the call cost."),
                "tool_calls": _count("Tools the model asked to call, when any.", minimum=1),
            },
            ("tool_calls",),
            {
                "summary": "Three sources stand out ...",
                "tokens_in": 812,
                "tokens_out": 240,
                "cost_usd": 0.000266,
            },
        ),
        events.AGENT_COMPLETED: _data(
            "An agent's turn ended with its answer.",
            {
                "output": _text("Its answer, in full."),
                "cost_usd": _money("What the turn's calls cost together."),
            },
            (),
            {"output": "Three sources stand out: ...", "cost_usd": 0.000266},
        ),
        events.TOOL_CALLED: _data(
            "An agent's tool call starts (after an operator's decision, when it needed one).",
            {
                "call_id": _text("The model's id for the call."),
                "tool": _text("The tool's name."),
                "arguments": _text(
                    "The arguments as JSON text, as the model wrote them (or the operator's "
                    "edit), cut at 2000 characters."
                ),
                "approval": _text(
                    "The operator's decision, for a call that needed one.",
                    enum=["approved", "approved_with_edits", "denied"],
                ),
            },
            ("approval",),
            {
                "call_id": "call_1",
                "tool": "http_fetch",
                "arguments": '{"url": "https://example.com/"}',
            },
        ),
        events.TOOL_RESULT: _data(
            "A tool call finished, failed or was refused.",
            {
                "call_id": _text("The model's id for the call."),
                "tool": _text("The tool's name."),
                "duration_ms": _count("How long it took."),
                "chars": _count("The length of what the model reads back."),
                "summary": _text("What the model reads back, shortened."),
                "truncated": {
                    "type": "boolean",
                    "const": True,
                    "description": "Present when the result was cut to fit the model's context.",
                },
                "error": _text("Why it failed or was not run, when it was not a success."),
                "rule_source": _text(
                    "The rule that refused it, when one did.",
                    enum=[AGENT_ALLOWLIST, WORKSPACE_ALLOWLIST, OPERATOR_DENIAL],
                ),
            },
            ("truncated", "error", "rule_source"),
            {
                "call_id": "call_1",
                "tool": "http_fetch",
                "duration_ms": 184,
                "chars": 5120,
                "summary": "Example Domain ...",
            },
        ),
        events.APPROVAL_REQUESTED: _data(
            "A tool call (or an agent's step) waits for an operator's decision: the run pauses "
            "once nothing else is in flight (`POST /api/runs/{id}/approvals/{approval_id}`).",
            {
                "key": _text("Names the call in every attempt of the run."),
                "call_id": _text("The model's id for the call; empty for an agent's step."),
                "tool": _text(f"The tool's name, or `{AGENT_STEP}` for an agent's step."),
                "arguments": _text("The arguments as JSON text, cut at 2000 characters."),
            },
            (),
            {
                "key": "9f2c4e1a",
                "call_id": "call_1",
                "tool": "http_fetch",
                "arguments": '{"url": "https://example.com/"}',
            },
        ),
        events.APPROVAL_DECIDED: _data(
            "An operator (or the deadline) decided on a call waiting for approval.",
            {
                "approval_id": _id_schema("approval", "The approval's id."),
                "key": _text("Names the call in every attempt of the run."),
                "tool": _text(f"The tool's name, or `{AGENT_STEP}` for an agent's step."),
                "decision": _text(
                    "What was decided (`expired`: no decision before the deadline, so denied).",
                    enum=[s for s in ApprovalStatus.values if s != ApprovalStatus.PENDING],
                ),
                "by": _text("The deciding user's id, `deadline`, or empty."),
                "reason": _text("Why, when the operator said."),
                "arguments": _text("The arguments the operator approved instead (JSON text)."),
            },
            ("reason", "arguments"),
            {
                "approval_id": f"{PREFIXES['approval']}_01k2v7s0aa1bb2cc3dd4ee5ff6",
                "key": "9f2c4e1a",
                "tool": "http_fetch",
                "decision": "approved",
                "by": f"{PREFIXES['user']}_01k2v7p0aa1bb2cc3dd4ee5ff6",
            },
        ),
        events.RUN_PAUSED: _data(
            "The run's next call cannot fit its budget and it was started with "
            "`pause_on_budget`: it pauses until the budget is raised (`PATCH /api/runs/{id}`).",
            {
                "reason": _text("Why it pauses.", enum=["budget"]),
                "agent_id": _text("The agent whose call did not fit."),
                "needed_usd": _money("How much more budget the call needs, at least."),
                "budget_usd": _money("The run's budget."),
                "spent_usd": _money("What the run has spent."),
            },
            (),
            {
                "reason": "budget",
                "agent_id": "writer",
                "needed_usd": 0.0012,
                "budget_usd": 0.01,
                "spent_usd": 0.0094,
            },
        ),
        events.RUN_BUDGET_RAISED: _data(
            "An operator raised the run's budget (a run paused for budget is queued again).",
            {
                "from_usd": _money("The budget before."),
                "to_usd": _money("The budget now."),
                "by": _text("The user's id, or empty."),
            },
            (),
            {
                "from_usd": 0.01,
                "to_usd": 0.05,
                "by": f"{PREFIXES['user']}_01k2v7p0aa1bb2cc3dd4ee5ff6",
            },
        ),
        events.RUN_PROGRESS: _data(
            "Where the run stands, after each agent's answer.",
            {
                "progress": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "The share of the run's expected turns that are done.",
                },
                "cost_usd": cost,
                "agents_active": _count("Agents in a turn now."),
                "agents_total": _count("Agents in its definition, replicas counted."),
            },
            (),
            {"progress": 0.5, "cost_usd": 0.000532, "agents_active": 1, "agents_total": 4},
        ),
        events.RUN_COMPLETED: _data(
            "The run ended with its output (terminal: the stream closes with 1000 next).",
            {"output": _text("The run's output."), "cost_usd": _money("What the run cost.")},
            (),
            {"output": "## writer\n\nThe report ...", "cost_usd": 0.001204},
        ),
        events.RUN_FAILED: _data(
            "The run failed (terminal: the stream closes with 1000 next).",
            {
                "error_code": _text("Why, as a stable code (e.g. `budget_exceeded`)."),
                "error_message": _text("Why, for people."),
                "cost_usd": _money(
                    "What the run cost; absent when it failed outside the engine (it could "
                    "not start, or its worker was lost for good)."
                ),
            },
            ("cost_usd",),
            {
                "error_code": "provider_error",
                "error_message": "gpt-4o-mini: 503 ...",
                "cost_usd": 0.000266,
            },
        ),
        events.RUN_CANCELLED: _data(
            "The run was cancelled (terminal: the stream closes with 1000 next).",
            {"cost_usd": _money("What the run cost before it stopped.")},
            (),
            {"cost_usd": 0.000266},
        ),
    }


def run_event_schema() -> dict[str, Any]:
    """The envelope every run stream message has (swarms/realtime.py `event_message`)."""
    return {
        "type": "object",
        "description": "One stored event of a run, as every surface renders it.",
        "required": ["seq", "type", "run_id", "agent_id", "data", "ts"],
        "additionalProperties": False,
        "properties": {
            "seq": _count(
                "The event's number in its run: 1, 2, 3 ... with no gaps. Resume with "
                "`?after=<the last seq you handled>`.",
                minimum=1,
            ),
            "type": _text("What happened.", enum=list(RunEventType.values)),
            "run_id": _id_schema("run", "The run's id."),
            "agent_id": {
                "type": ["string", "null"],
                "description": "The agent it is about; null for the run's own events.",
            },
            "data": {
                "type": "object",
                "description": f"What happened, by type (each message narrows it); money "
                f"(`cost_usd`, any `*{MONEY_KEY_SUFFIX}`): {MONEY_DESCRIPTION}",
            },
            "ts": _text("When it was stored (UTC, ISO 8601).", format="date-time"),
        },
    }


def _message_name(event_type: str) -> str:
    return event_type.replace(".", "_")


def run_event_messages() -> dict[str, dict[str, Any]]:
    """One message per event type: the envelope, with its `type` and `data` narrowed."""
    messages = {}
    for event_type, data in event_data().items():
        agent = (
            {"type": "null", "description": "Null: a run-level event."}
            if event_type in RUN_LEVEL_EVENTS
            else {"type": "string", "description": "The agent it is about."}
        )
        terminal = event_type in events.TERMINAL_EVENTS
        messages[_message_name(event_type)] = {
            "name": event_type,
            "title": f"`{event_type}`" + (" (terminal)" if terminal else ""),
            "summary": data["summary"],
            "contentType": "application/json",
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/RunEvent"},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": event_type},
                            "agent_id": agent,
                            "data": data["schema"],
                        },
                    },
                ]
            },
            "examples": [
                {
                    "name": _message_name(event_type),
                    "payload": {
                        "seq": 7,
                        "type": event_type,
                        "run_id": RUN_ID_EXAMPLE,
                        "agent_id": None if event_type in RUN_LEVEL_EVENTS else "researcher-1",
                        "data": data["example"],
                        "ts": TS_EXAMPLE,
                    },
                }
            ],
        }
    return messages


# --- workspace status ---------------------------------------------------------------------------
def run_status_schema() -> dict[str, Any]:
    """A workspace stream's message (swarms/realtime.py `status_message`)."""
    properties = {
        "type": {"type": "string", "const": "run.status"},
        "run_id": _id_schema("run", "The run's id."),
        "swarm_id": {
            "oneOf": [_id_schema("swarm", "The swarm it runs."), {"type": "null"}],
            "description": "The swarm it runs; null for a template's or an inline run.",
        },
        "template_id": {
            "type": ["string", "null"],
            "description": "The template it runs (e.g. `research-swarm-v1`), else null.",
        },
        "status": _text("Its status.", enum=list(RunStatus.values)),
        "progress": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "The share of its expected turns that are done.",
        },
        "cost_usd": _money("What it has spent."),
        "agents_active": _count("Agents in a turn now."),
        "agents_total": _count("Agents in its definition, replicas counted."),
        "ts": _text(
            "When it last changed: completed, else started, else created (UTC, ISO 8601).",
            format="date-time",
        ),
    }
    return {
        "type": "object",
        "description": "Where one run of the workspace stands.",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def run_status_message() -> dict[str, Any]:
    active = ", ".join(f"`{status}`" for status in SNAPSHOT_STATUSES)
    return {
        "name": "run.status",
        "title": "`run.status`",
        "summary": "Where one run of the workspace stands: status, progress, cost, agents.",
        "description": f"Sent for each of the workspace's active runs ({active}) on connect "
        "(the snapshot), and again when the stream re-joined its group after the channel layer "
        "was lost; then whenever a run starts, reports progress or ends (its `run.started`, "
        "`run.progress` and terminal events).",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/RunStatus"},
        "examples": [
            {
                "name": "run_status",
                "payload": {
                    "type": "run.status",
                    "run_id": RUN_ID_EXAMPLE,
                    "swarm_id": None,
                    "template_id": "research-swarm-v1",
                    "status": RunStatus.RUNNING.value,
                    "progress": 0.5,
                    "cost_usd": 0.000532,
                    "agents_active": 1,
                    "agents_total": 4,
                    "ts": TS_EXAMPLE,
                },
            }
        ],
    }


# --- batch events --------------------------------------------------------------------------------
def _batch_counts(summary: str) -> dict[str, Any]:
    """A batch progress or terminal event's data (batches/services.py `_counts`)."""
    properties = {
        "status": _text("The batch's status.", enum=list(BatchStatus.values)),
        "items_total": _count("Its items."),
        "pending": _count("Items not started yet."),
        "running": _count("Items whose run is under way."),
        "completed": _count("Items whose run completed."),
        "failed": _count("Items whose run failed, or that could not start."),
        "cancelled": _count("Items whose run was cancelled."),
        "skipped": _count("Items that never started (the batch was cancelled or failed, or its "
                          "total budget could not fit them)."),
        "progress": {"type": "number", "minimum": 0, "maximum": 1,
                     "description": "The share of its items that ended."},
        "cost_usd": _money("What it has spent: its ended items' runs and its running ones'."),
        "total_budget_usd": _money("Its total budget, which `cost_usd` never passes."),
    }  # fmt: skip
    example = {
        "status": BatchStatus.RUNNING.value, "items_total": 10, "pending": 5, "running": 2,
        "completed": 2, "failed": 1, "cancelled": 0, "skipped": 0, "progress": 0.3,
        "cost_usd": 0.004512, "total_budget_usd": 1.0,
    }  # fmt: skip
    return {"summary": summary, "properties": properties, "example": example}


def batch_event_data() -> dict[str, dict[str, Any]]:
    """Each batch event type's `summary`, `schema` of its `data` and an `example` of it."""
    item = {
        "item_id": _id_schema("batch_item", "The item's id."),
        "index": _count("Its place among the batch's inputs, from 0."),
        "custom_id": {"type": ["string", "null"], "description": "Its `customId`, if given."},
    }
    example = {"item_id": ITEM_ID_EXAMPLE, "index": 3, "custom_id": None}
    run_id = _id_schema("run", "The run executing the item.")
    ended_statuses = [s for s in ItemStatus.values if s not in ("pending", "running")]
    ended = {
        **item,
        "run_id": run_id,
        "status": _text("The item's status now.", enum=ended_statuses),
        "cost_usd": _money("What its run cost."),
    }
    run_example = f"{PREFIXES['run']}_01k2v7r8xq3m9c4d5e6f7g8h9k"
    data = {
        BatchEventType.ITEM_STARTED: _data(
            "An item's run was created (it executes as soon as a worker takes it).",
            {**item, "run_id": run_id},
            (),
            {**example, "run_id": run_example},
        ),
        BatchEventType.ITEM_COMPLETED: _data(
            "An item's run completed (its output: `GET /api/batches/{id}/items` or `/results`).",
            ended,
            (),
            {**example, "run_id": run_example, "status": "completed", "cost_usd": 0.001204},
        ),
        BatchEventType.ITEM_FAILED: _data(
            "An item's run failed, or the item could not start (then `run_id` is null).",
            {
                **ended,
                "run_id": {
                    "oneOf": [run_id, {"type": "null"}],
                    "description": "Its run; null when none could be created.",
                },
                "error_code": _text("Why, as a stable code (e.g. `budget_exceeded`)."),
                "error_message": _text("Why, for people."),
            },
            (),
            {
                **example,
                "run_id": run_example,
                "status": "failed",
                "cost_usd": 0.000266,
                "error_code": "provider_error",
                "error_message": "gpt-4o-mini: 503 ...",
            },
        ),
        BatchEventType.ITEM_CANCELLED: _data(
            "An item's run was cancelled (the batch was, or the run on its own).",
            ended,
            (),
            {**example, "run_id": run_example, "status": "cancelled", "cost_usd": 0.000266},
        ),
    }
    wording = {
        BatchEventType.BATCH_PROGRESS: "Where the batch stands: on creation, and after each "
        "change of its items (starts and ends).",
        BatchEventType.BATCH_COMPLETED: "Every item ended (the counts say how); the stream "
        "closes with 1000 next.",
        BatchEventType.BATCH_CANCELLED: "The cancelled batch's last run stopped; the stream "
        "closes with 1000 next.",
        BatchEventType.BATCH_FAILED: "The batch's swarm or template could not run any more and "
        "its last run stopped (`error_code`, `error_message` say why); the stream closes with "
        "1000 next.",
    }
    for event_type, summary in wording.items():
        counts = _batch_counts(summary)
        properties, optional, sample = counts["properties"], (), counts["example"]
        if event_type != BatchEventType.BATCH_PROGRESS:
            sample = {**sample, "status": _FINAL_STATUS[event_type], "pending": 0, "running": 0,
                      "completed": 9, "progress": 1.0}  # fmt: skip
        if event_type == BatchEventType.BATCH_FAILED:
            properties = {
                **properties,
                "error_code": _text("Why, as a stable code (e.g. `conflict`)."),
                "error_message": _text("Why, for people."),
            }
            sample = {
                **sample,
                "error_code": "conflict",
                "error_message": "Swarm swm_... is deleted; restore it before running it.",
            }
        data[event_type] = _data(summary, properties, optional, sample)
    return {str(event_type): value for event_type, value in data.items()}


_FINAL_STATUS = {
    BatchEventType.BATCH_COMPLETED: BatchStatus.COMPLETED.value,
    BatchEventType.BATCH_CANCELLED: BatchStatus.CANCELLED.value,
    BatchEventType.BATCH_FAILED: BatchStatus.FAILED.value,
}


def batch_event_schema() -> dict[str, Any]:
    """The envelope every batch stream message has (batches/realtime.py `batch_event_message`)."""
    return {
        "type": "object",
        "description": "One stored event of a batch.",
        "required": ["seq", "type", "batch_id", "data", "ts"],
        "additionalProperties": False,
        "properties": {
            "seq": _count(
                "The event's number in its batch: 1, 2, 3 ... with no gaps. Resume with "
                "`?after=<the last seq you handled>`.",
                minimum=1,
            ),
            "type": _text("What happened.", enum=list(BatchEventType.values)),
            "batch_id": _id_schema("batch", "The batch's id."),
            "data": {
                "type": "object",
                "description": f"What happened, by type (each message narrows it); money "
                f"(any `*{MONEY_KEY_SUFFIX}`): {MONEY_DESCRIPTION}",
            },
            "ts": _text("When it was stored (UTC, ISO 8601).", format="date-time"),
        },
    }


def batch_event_messages() -> dict[str, dict[str, Any]]:
    """One message per batch event type: the envelope, with its `type` and `data` narrowed."""
    messages = {}
    for event_type, data in batch_event_data().items():
        ends = event_type in BATCH_TERMINAL
        messages[_message_name(event_type)] = {
            "name": event_type,
            "title": f"`{event_type}`" + (" (ends the batch)" if ends else ""),
            "summary": data["summary"],
            "contentType": "application/json",
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/BatchEvent"},
                    {
                        "type": "object",
                        "properties": {"type": {"const": event_type}, "data": data["schema"]},
                    },
                ]
            },
            "examples": [
                {
                    "name": _message_name(event_type),
                    "payload": {
                        "seq": 4,
                        "type": event_type,
                        "batch_id": BATCH_ID_EXAMPLE,
                        "data": data["example"],
                        "ts": TS_EXAMPLE,
                    },
                }
            ],
        }
    return messages


# --- channels, operations, the document ---------------------------------------------------------
RUN_STREAM_TEXT = """On connect the server sends every stored event of the run with `seq` above \
`after` (default 0: all of them), then each new one as it is stored: every event exactly once, \
in `seq` order, with no gap (the stream joins the run's live feed before it replays, drops what \
it already sent and fills any gap from the database, so a slow reader or a lost live message \
costs latency, never an event). After the terminal event it closes with 1000; a client resuming \
with `after` at or past the terminal event gets no message and 1000 at once. After any other \
close, reconnect with `after=<the last seq handled>` to miss nothing. The client sends nothing."""

BATCH_STREAM_TEXT = """One batch's events: `item.started` when an item's run is created, \
`item.completed`, `item.failed` or `item.cancelled` when it ends (with its cost), \
`batch.progress` after each change (counts, progress, cost), and one terminal event when the \
last item ended: `batch.completed`, `batch.cancelled` or `batch.failed`. On connect the server \
sends every stored event with `seq` above `after` (default 0: all of them; the first is the \
`batch.progress` of its creation), then each new one: every event exactly once, in `seq` order, \
with no gap (as the run streams: the stream joins the batch's live feed before it replays, and \
fills any gap from the database). After the terminal event it closes with 1000; a client \
resuming with `after` at or past it gets no message and 1000 at once. Items the batch skipped \
(cancelled, failed, out of budget) have no event of their own: the counts say how many. The \
client sends nothing."""

WORKSPACE_STREAM_TEXT = f"""Where each run of a workspace stands. On connect, a snapshot: one \
`run.status` message for each of its {" and ".join(SNAPSHOT_STATUSES)} runs (oldest first\
, at most {WORKSPACE_SNAPSHOT_LIMIT}); then one whenever a run of the \
workspace starts, reports progress or ends. Each message carries the whole of its run's \
state, so the latest one for a run wins. A stream that may have missed changes (the channel \
layer was lost, or it dropped messages for a slow reader) sends the snapshot again; a run that \
ended meanwhile is not in it (`GET /api/runs`). The stream never closes by itself; the client \
sends nothing."""


def _query(*, after: bool) -> dict[str, Any]:
    properties = {
        "token": _text(
            "A JWT (`POST /api/auth/login`) or an `sk-sverm-` API key. Or send "
            "`Authorization: Bearer <token>`."
        )
    }
    if after:
        properties["after"] = _text(
            "Resume after this `seq`: only later events are sent.",
            pattern=f"^{consumers.AFTER.pattern}$",
            default="0",
        )
    return {"type": "object", "properties": properties}


def _headers(*, v1: bool) -> dict[str, Any]:
    properties = {
        "Authorization": _text(
            "`Bearer <JWT or sk-sverm- API key>`, for clients that can set handshake headers "
            "(`?token=` is read first).",
            pattern="^[Bb]earer .+$",
        ),
        "Origin": _text(
            "Browsers send it: it must be one of the server's allowed hosts, else the "
            "handshake is refused (HTTP 403). Clients without one authenticate by token."
        ),
    }
    if v1:
        properties["Sverm-Workspace"] = _text(
            "With a JWT: the workspace the call acts in (else the user's only or oldest "
            "membership). An API key acts in its own workspace."
        )
    return {"type": "object", "properties": properties}


def _channel(
    address: str,
    title: str,
    description: str,
    parameters: dict[str, dict[str, Any]],
    messages: list[str],
    *,
    stream: str,
    v1: bool = False,
) -> dict[str, Any]:
    return {
        "address": address,
        "title": title,
        "description": f"{description}\n\n{_close_codes_text(stream)}",
        "parameters": parameters,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        "bindings": {
            "ws": {
                "method": "GET",
                "query": _query(after=stream in ("run", "batch")),
                "headers": _headers(v1=v1),
                "bindingVersion": "0.1.0",
            }
        },
        "x-close-codes": _close_codes_for(stream),
    }


def channels() -> dict[str, dict[str, Any]]:
    run_id = {
        "run_id": {
            "description": "The run's id (`run_…`); on `/v1` the `swarm_id` that "
            "`POST /v1/swarms` answered.",
            "examples": [RUN_ID_EXAMPLE],
        }
    }
    event_messages = list(run_event_messages())
    return {
        "v1RunStream": _channel(
            "/v1/swarms/{run_id}/stream",
            "One run's events (/v1, seed 002)",
            "The same messages as `/api/runs/{run_id}/stream`. Like every `/v1` call it acts "
            "in one workspace (an API key's own; with a JWT the `Sverm-Workspace` header's, "
            "else the user's only or oldest membership): a run outside it closes 4404.\n\n"
            + RUN_STREAM_TEXT,
            run_id,
            event_messages,
            stream="run",
            v1=True,
        ),
        "runStream": _channel(
            "/api/runs/{run_id}/stream",
            "One run's events",
            "Any run the caller may see, in any of its workspaces (viewer is enough).\n\n"
            + RUN_STREAM_TEXT,
            run_id,
            event_messages,
            stream="run",
        ),
        "workspaceStream": _channel(
            "/api/workspaces/{workspace_id}/stream",
            "A workspace's run statuses",
            WORKSPACE_STREAM_TEXT,
            {
                "workspace_id": {
                    "description": "The workspace's id (`wsp_…`): one the caller is a member of.",
                    "examples": [WORKSPACE_ID_EXAMPLE],
                }
            },
            ["run_status"],
            stream="workspace",
        ),
        "batchStream": _channel(
            "/api/batches/{batch_id}/stream",
            "One batch's events",
            "Any batch the caller may see, in any of its workspaces (viewer is enough).\n\n"
            + BATCH_STREAM_TEXT,
            {
                "batch_id": {
                    "description": "The batch's id (`bat_…`), as `POST /api/batches` answered.",
                    "examples": [BATCH_ID_EXAMPLE],
                }
            },
            list(batch_event_messages()),
            stream="batch",
        ),
    }


def operations(channel_map: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def send(channel: str, title: str, summary: str) -> dict[str, Any]:
        return {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "title": title,
            "summary": summary,
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{name}"}
                for name in channel_map[channel]["messages"]
            ],
        }

    return {
        "sendV1RunEvents": send(
            "v1RunStream", "Stream a run's events (/v1)",
            "Every stored event after `after`, then live ones, once each and in order; "
            "closes 1000 after the terminal event.",
        ),
        "sendRunEvents": send(
            "runStream", "Stream a run's events",
            "Every stored event after `after`, then live ones, once each and in order; "
            "closes 1000 after the terminal event.",
        ),
        "sendRunStatuses": send(
            "workspaceStream", "Stream a workspace's run statuses",
            "A snapshot of the active runs, then each run's status as it changes.",
        ),
        "sendBatchEvents": send(
            "batchStream", "Stream a batch's events",
            "Every stored event after `after`, then live ones, once each and in order; "
            "closes 1000 after the batch's terminal event.",
        ),
    }  # fmt: skip


def _description() -> str:
    return f"""The WebSocket streams of sverm, served by the same process, host and port as \
the HTTP API ([OpenAPI](/openapi.json), [docs](/docs)). This document describes the server: \
each operation is one it performs (`send`); clients only receive, and send nothing.

**Connect** with `?token=<JWT or sk-sverm- API key>` or an `Authorization: Bearer` header; \
browsers on one of the server's own hosts may use the admin session instead. A refused stream \
is accepted, then closed at once with a 44xx code (so browsers can read it), before any message.

**Run streams** (`/v1/swarms/{{run_id}}/stream`, `/api/runs/{{run_id}}/stream`) send the run's \
events `{{"seq", "type", "run_id", "agent_id", "data", "ts"}}`: every stored event with `seq` \
above `after`, then live ones, each exactly once and in order; after the terminal event \
({", ".join(f"`{t}`" for t in events.TERMINAL_EVENTS)}) the server closes with 1000. The \
**workspace stream** (`/api/workspaces/{{workspace_id}}/stream`) sends `run.status` messages: a \
snapshot of the active runs, then each change. The **batch stream** \
(`/api/batches/{{batch_id}}/stream`) sends a batch's events `{{"seq", "type", "batch_id", "data", \
"ts"}}` the same way as a run stream: each item's start and end, the batch's progress, and its \
terminal event ({", ".join(f"`{t}`" for t in BATCH_TERMINAL)}), after which it closes with 1000.

Money (`cost_usd`, every `*{MONEY_KEY_SUFFIX}`) is as in REST bodies: {MONEY_DESCRIPTION}

{_close_codes_text()}
"""


def _servers() -> dict[str, dict[str, Any]]:
    security = [{"$ref": f"#/components/securitySchemes/{name}"} for name in SECURITY_SCHEMES]
    host = {
        "default": "localhost:8000",
        "description": "The HTTP API's host and port (`make run` serves localhost:8000).",
    }
    return {
        "ws": {
            "host": "{host}",
            "protocol": "ws",
            "title": "sverm",
            "description": "The server itself: `ws://` on the HTTP API's host and port.",
            "variables": {"host": host},
            "security": security,
        },
        "wss": {
            "host": "{host}",
            "protocol": "wss",
            "title": "sverm behind TLS",
            "description": "`wss://` where a TLS proxy serves the API over `https://`.",
            "variables": {"host": {**host, "default": "sverm.example.com"}},
            "security": security,
        },
    }


SECURITY_SCHEMES = {
    "token": {
        "type": "httpApiKey",
        "in": "query",
        "name": "token",
        "description": "A JWT (`POST /api/auth/login`) or an `sk-sverm-` API key as `?token=`.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same credential as `Authorization: Bearer <JWT or API key>`.",
    },
    "session": {
        "type": "httpApiKey",
        "in": "cookie",
        "name": settings.SESSION_COOKIE_NAME,
        "description": "The admin session, for browsers on one of the server's hosts (the "
        "live page).",
    },
}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3 document of the streams, built afresh (the views serve a cached copy)."""
    channel_map = channels()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"{settings.SPECTACULAR_SETTINGS['TITLE']} streams",
            "version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "description": _description(),
        },
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": channel_map,
        "operations": operations(channel_map),
        "components": {
            "schemas": {
                "RunEvent": run_event_schema(),
                "RunStatus": run_status_schema(),
                "BatchEvent": batch_event_schema(),
            },
            "messages": {
                **run_event_messages(),
                "run_status": run_status_message(),
                **batch_event_messages(),
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@functools.cache
def _rendered(media_type: str) -> bytes:
    """The document as served, built and encoded once per process."""
    document = asyncapi_document()
    if media_type == "application/json":
        return json.dumps(document, ensure_ascii=False, indent=2).encode()
    import yaml  # only this view needs it

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100).encode()


class AsyncAPIView(View):
    """`GET /asyncapi.json` or `/asyncapi.yaml`: public, like /openapi.json."""

    http_method_names = ["get", "head", "options"]
    media_type = "application/json"

    def get(self, request):
        return HttpResponse(_rendered(self.media_type), content_type=self.media_type)


class AsyncAPIYAMLView(AsyncAPIView):
    media_type = "application/yaml"
