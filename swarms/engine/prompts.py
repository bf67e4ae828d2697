"""The messages each agent step sends, and `read_prompt`, their inverse for the simulation.

Inputs are wrapped in XML-like tags (`<task>`, `<input agent=...>`) because models follow tagged
context well, and because it lets the simulated provider answer from the same prompt a real model
gets, with no side channel. The last system line names agent, role and step for the same reason.
"""

# AgentSpec is only an annotation here: types.py validates definitions against the topologies,
# which build their prompts with this module, so importing it at run time would be a cycle.
from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swarms.engine.chat import Message

if TYPE_CHECKING:
    from swarms.engine.types import AgentSpec

# The steps an agent call can be; named in the system prompt's last line.
PLAN = "plan"
WORK = "work"
SYNTHESISE = "synthesise"
RELAY = "relay"
ARGUE = "argue"
JUDGE = "judge"

_GUIDANCE = {
    PLAN: "You lead a team of agents. Split the task into independent subtasks that workers can "
    "take on in parallel.",
    WORK: "You are a worker in a team of agents. Work on your subtask only and report concrete "
    "findings.",
    SYNTHESISE: "You combine your team's inputs into one clear, well-structured markdown answer.",
    RELAY: "You are one step in a pipeline of agents, each building on the previous one's output.",
    ARGUE: "You are a debater. Argue your side persuasively and answer the other side's points.",
    JUDGE: "You judge a debate. Weigh the arguments of every side and give a reasoned verdict.",
}


@dataclass(frozen=True)
class Contribution:
    """An earlier agent output quoted in a later prompt."""

    agent_id: str
    text: str
    label: str = ""  # a worker's subtask, or the debate round ("2")


def plan_messages(
    shared: str, manager: AgentSpec, task: str, max_subtasks: int
) -> tuple[Message, ...]:
    return _messages(
        shared,
        manager,
        PLAN,
        f"{_tag('task', task)}\n\nSplit the task into at most {max_subtasks} independent "
        "subtasks, one per worker. Reply with a JSON array of strings only, for example "
        '["first subtask", "second subtask"].',
    )


def work_messages(
    shared: str, worker: AgentSpec, task: str, subtask: str | None
) -> tuple[Message, ...]:
    """A worker's prompt: on one subtask (hierarchical), or on the whole task (parallel)."""
    if subtask is None:
        body = (
            f"{_tag('task', task)}\n\nWork on the task and report your findings in concise "
            "markdown."
        )
    else:
        body = (
            f"{_tag('task', task)}\n\n{_tag('subtask', subtask)}\n\n"
            "Report your findings on the subtask in concise markdown."
        )
    return _messages(shared, worker, WORK, body)


def synthesis_messages(
    shared: str, writer: AgentSpec, task: str, inputs: Sequence[Contribution]
) -> tuple[Message, ...]:
    blocks = "\n\n".join(
        _tag("input", item.text, agent=item.agent_id, about=item.label) for item in inputs
    )
    return _messages(
        shared,
        writer,
        SYNTHESISE,
        f"{_tag('task', task)}\n\n{blocks}\n\n"
        "Write the final answer to the task in markdown, drawing on every input.",
    )


def relay_messages(
    shared: str, agent: AgentSpec, task: str, previous: Contribution | None
) -> tuple[Message, ...]:
    if previous is None:
        body = f"{_tag('task', task)}\n\nYou are the first agent: produce your result for the task."
    else:
        body = (
            f"{_tag('task', task)}\n\n{_tag('previous', previous.text, agent=previous.agent_id)}"
            f"\n\nAs the {agent.role}, improve and extend the previous output into your own "
            "complete result."
        )
    return _messages(shared, agent, RELAY, body)


def argue_messages(
    shared: str,
    debater: AgentSpec,
    task: str,
    transcript: Sequence[Contribution],
    *,
    round_number: int,
    rounds: int,
    side: str,
) -> tuple[Message, ...]:
    return _messages(
        shared,
        debater,
        ARGUE,
        f"{_tag('task', task)}\n\n{_transcript(transcript)}"
        f"Round {round_number} of {rounds}. Your side: {side}. Make your argument and answer the "
        "strongest point made against it.",
    )


def judge_messages(
    shared: str, judge: AgentSpec, task: str, transcript: Sequence[Contribution]
) -> tuple[Message, ...]:
    return _messages(
        shared,
        judge,
        JUDGE,
        f"{_tag('task', task)}\n\n{_transcript(transcript)}"
        "The debate is over. Weigh the arguments of every side and give your verdict in markdown.",
    )


def _transcript(turns: Sequence[Contribution]) -> str:
    if not turns:
        return "The debate starts with you.\n\n"
    blocks = (_tag("turn", t.text, agent=t.agent_id, round=t.label) for t in turns)
    return "\n\n".join(blocks) + "\n\n"


def _messages(shared: str, agent: AgentSpec, step: str, user: str) -> tuple[Message, ...]:
    parts = [shared.strip(), _GUIDANCE[step], agent.instructions.strip()]
    parts.append(f"Agent: {agent.id} | role: {agent.role} | step: {step}")
    system = "\n\n".join(part for part in parts if part)
    return (Message(role="system", content=system), Message(role="user", content=user))


def _tag(name: str, body: str, **attributes: str) -> str:
    # Attributes stay on the tag's line: whitespace collapsed, quotes and brackets escaped.
    attrs = "".join(
        f' {key}="{html.escape(" ".join(value.split()), quote=True)}"'
        for key, value in attributes.items()
        if value
    )
    return f"<{name}{attrs}>\n{body}\n</{name}>"


# --- reading a prompt back (the simulated provider's side) ---------------------------------------


@dataclass(frozen=True)
class PromptFacts:
    agent_id: str = ""
    role: str = ""
    step: str = ""
    task: str = ""
    subtask: str = ""
    max_subtasks: int = 3
    side: str = ""
    round_number: int = 1
    previous: Contribution | None = None
    inputs: tuple[Contribution, ...] = field(default_factory=tuple)


_AGENT_LINE = re.compile(
    r"^Agent: (?P<id>\S+) \| role: (?P<role>\S+) \| step: (?P<step>\w+)$", re.M
)
_BLOCK = re.compile(r"<(?P<name>task|subtask|input|previous|turn)(?P<attrs>[^>\n]*)>\n"
                    r"(?P<body>.*?)\n</(?P=name)>", re.S)  # fmt: skip
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def read_prompt(messages: Sequence[Message]) -> PromptFacts:
    """What the engine asked for, recovered from the messages it built."""
    system = "\n".join(m.content for m in messages if m.role == "system")
    user = "\n".join(m.content for m in messages if m.role == "user")
    facts: dict = {}
    if line := _AGENT_LINE.search(system):
        facts.update(agent_id=line["id"], role=line["role"], step=line["step"])
    inputs = []
    for block in _BLOCK.finditer(user):
        attrs = {key: html.unescape(value) for key, value in _ATTR.findall(block["attrs"])}
        name, body = block["name"], block["body"]
        if name in ("task", "subtask"):
            facts.setdefault(name, body)
        elif name == "previous":
            facts["previous"] = Contribution(attrs.get("agent", ""), body)
        else:
            label = attrs.get("about") or attrs.get("round", "")
            inputs.append(Contribution(attrs.get("agent", ""), body, label))
    if match := re.search(r"at most (\d+) independent subtasks", user):
        facts["max_subtasks"] = int(match[1])
    if match := re.search(r"Round (\d+) of \d+\. Your side: (\w+)\.", user):
        facts.update(round_number=int(match[1]), side=match[2])
    return PromptFacts(inputs=tuple(inputs), **facts)
