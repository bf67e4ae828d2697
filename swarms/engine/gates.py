"""What operators' decisions do to a run's tool calls and steps: the outcome a denied call
reads, the name a decision goes by in events, and an agent step's approval (a request on the
pseudo-tool `agent_step`, whose approval may carry a note for the step's prompt)."""

import dataclasses
import json

from swarms.engine.chat import Message
from swarms.engine.tools import OPERATOR_DENIAL, ToolOutcome
from swarms.engine.topologies import Job
from swarms.engine.types import Decision

AGENT_STEP = "agent_step"
AGENT_STEP_SCHEMA = {
    "type": "object",
    "properties": {"note": {"type": "string", "maxLength": 4000}},
    "additionalProperties": False,
}


def decision_name(decision: Decision) -> str:
    if not decision.approved:
        return "denied"
    return "approved" if decision.arguments is None else "approved_with_edits"


def denied_outcome(decision: Decision) -> ToolOutcome:
    """What the model reads for a tool call an operator denied."""
    message = f"an operator denied this call: {decision.reason or 'no reason given'}"
    return ToolOutcome(
        content=f"Tool call refused ({OPERATOR_DENIAL}): {message}.",
        error=message,
        refused_by=OPERATOR_DENIAL,
    )


def step_denied_text(decision: Decision) -> str:
    """The output of a step an operator denied (the team goes on with it)."""
    reason = decision.reason or "no reason given"
    return f"(This step was not run: an operator denied it: {reason}.)"


def with_operator_note(job: Job, arguments: str) -> Job:
    """The step with the operator's note (`{"note": ...}`) added to its last message."""
    note = str(json.loads(arguments).get("note", "")).strip()
    if not note:
        return job
    *head, last = job.messages
    noted = Message(last.role, f"{last.content}\n\n<operator_note>\n{note}\n</operator_note>")
    return dataclasses.replace(job, messages=(*head, noted))
