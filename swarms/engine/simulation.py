"""The simulated provider's writing: plausible, deterministic replies for each agent step.

Choices come from a SHA-256 of the request (not `random`), so the same request gives the same text
in every process, and tests and demos are reproducible.
"""

import hashlib
import json
import re
from collections.abc import Sequence

from swarms.engine import prompts
from swarms.engine.chat import Message
from swarms.engine.prompts import Contribution, PromptFacts
from swarms.engine.tools import ToolCall, ToolSpec

_ANGLES = (
    "background and key facts",
    "current state and main actors",
    "economics and costs",
    "risks and open questions",
    "technology and feasibility",
    "policy and regulation",
    "outlook for the next five years",
    "comparison with the alternatives",
)
_FINDINGS = (
    "The most cited sources on {s} agree on the broad picture but disagree on timing.",
    "Cost is the deciding factor for {s}; estimates move with energy and labour prices.",
    "Regulation is the main open variable for {s}, with several proposals still pending.",
    "Early adopters report measurable gains from {s}, though the samples are small.",
    "Data on {s} is uneven: figures before 2020 are sparse and hard to compare.",
    "Local conditions matter more than national averages when judging {s}.",
    "Experts expect {s} to grow steadily rather than in a single breakthrough.",
    "The strongest counter-argument on {s} concerns infrastructure, not demand.",
)
_CONFIDENCE = ("moderate", "fairly high", "limited")
_VERDICTS = ("for", "against")
_VERBS = {
    "analyse", "analyze", "assess", "compare", "describe", "evaluate", "explain", "explore",
    "investigate", "research", "review", "study", "summarise", "summarize", "write",
}  # fmt: skip


def reply(model: str, agent_id: str, messages: Sequence[Message]) -> str:
    """The simulated answer to one request."""
    facts = prompts.read_prompt(messages)
    seed = "\x00".join([model, agent_id, *(m.content for m in messages)])
    writers = {
        prompts.PLAN: _plan,
        prompts.WORK: _work,
        prompts.SYNTHESISE: _synthesis,
        prompts.RELAY: _relay,
        prompts.ARGUE: _argument,
        prompts.JUDGE: _verdict,
    }
    writer = writers.get(facts.step)
    if writer is None:
        text = "\n".join(m.content for m in messages if m.role == "user")
        return f"Simulated reply from {agent_id or 'an agent'}: {gist(text)}"
    text = writer(facts, seed)
    # What the tools answered, but calls that failed or were refused: those are no source.
    results = [
        m.content for m in messages if m.role == "tool" and not m.content.startswith(NOT_A_SOURCE)
    ]
    if results and facts.step != prompts.PLAN:  # a plan stays a plan: its JSON is read
        sources = "\n".join(f"- {_source(result)}" for result in results)
        text = f"{text}\n\n{SOURCES_HEADING}\n\n{sources}"
    return text


# --- tools: the simulation calls them deterministically, so runs exercise the loop offline ------

MAX_SIMULATED_FETCHES = 3
SOURCES_HEADING = "Sources consulted:"
# How the toolbox words a call that brought nothing back (swarms/engine/tools.py).
NOT_A_SOURCE = ("Tool call failed", "Tool call refused", "Tool call not run")
_URL = re.compile(r"https?://[^\s<>\"'`]+")


def tool_calls(
    model: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
) -> tuple[ToolCall, ...]:
    """The tools a simulated model calls: none once a tool has answered (it then writes its
    reply); else each offered tool whose required arguments it can fill from the prompt: a
    `url` argument once per distinct URL of the subtask, or of the task (at most 3), any other
    string argument with the task's topic. Tools needing anything else are not called."""
    if any(message.role == "tool" for message in messages):
        return ()
    facts = prompts.read_prompt(messages)
    urls = list(dict.fromkeys(u.rstrip(".,;:)]") for u in _URL.findall(facts.subtask)))
    urls = urls or list(dict.fromkeys(u.rstrip(".,;:)]") for u in _URL.findall(facts.task)))
    seed = "\x00".join([model, *(m.content for m in messages)])
    calls = []
    for spec in tools:
        for arguments in _fill(spec, urls[:MAX_SIMULATED_FETCHES], _topic(facts.task)):
            digest = hashlib.sha256(f"{seed}\x00{spec.name}\x00{len(calls)}".encode()).hexdigest()
            calls.append(ToolCall(f"call_{digest[:16]}", spec.name, json.dumps(arguments)))
    return tuple(calls)


def _fill(spec: ToolSpec, urls: list[str], topic: str) -> list[dict]:
    properties = spec.parameters.get("properties", {})
    required = spec.parameters.get("required", [])
    url_fields = [name for name in required if "url" in name.lower()]
    if any(properties.get(name, {}).get("type") != "string" for name in required):
        return []
    if url_fields and not urls:
        return []
    texts = {name: topic for name in required if name not in url_fields}
    if not url_fields:
        return [texts]
    return [{**texts, **{name: url for name in url_fields}} for url in urls]


def tool_preamble(calls: Sequence[ToolCall]) -> str:
    names = ", ".join(dict.fromkeys(call.name for call in calls))
    return f"Let me use {names} first."


def _source(result: str) -> str:
    """One line on what a tool returned: a fetched page's title and address, else its gist."""
    fields = dict(line.split(": ", 1) for line in result.splitlines()[:6] if ": " in line)
    if "URL" in fields:
        title = fields.get("Title", "").strip()
        return f"{title} ({fields['URL'].strip()})" if title else fields["URL"].strip()
    return gist(result) or "(empty result)"


def _plan(facts: PromptFacts, seed: str) -> str:
    topic = _topic(facts.task)
    start = _index(seed, "angles", len(_ANGLES))
    subtasks = []
    for number in range(facts.max_subtasks):
        angle = _ANGLES[(start + number) % len(_ANGLES)]
        if number >= len(_ANGLES):
            angle = f"{angle} (part {number // len(_ANGLES) + 1})"
        subtasks.append(f"{angle[:1].upper()}{angle[1:]}: {topic}")
    return f"Here is the plan.\n\n```json\n{json.dumps(subtasks, indent=2)}\n```"


def _work(facts: PromptFacts, seed: str) -> str:
    topic = _topic(facts.task)
    start = _index(seed, "findings", len(_FINDINGS))
    findings = [_FINDINGS[(start + k) % len(_FINDINGS)].format(s=topic) for k in (0, 3, 5)]
    confidence = _CONFIDENCE[_index(seed, "confidence", len(_CONFIDENCE))]
    bullets = "\n".join(f"- {finding}" for finding in findings)
    heading = _clip(" ".join((facts.subtask or facts.task).split()), 120)
    return f"### Findings: {heading}\n\n{bullets}\n\nConfidence: {confidence} (simulated research)."


def _synthesis(facts: PromptFacts, seed: str) -> str:
    topic = _topic(facts.task)
    points = "\n".join(_quote(item) for item in facts.inputs) or "- (no inputs were available)"
    text = (
        f"## {_title(topic)}\n\n"
        f"This answer combines {len(facts.inputs)} contributions from the team.\n\n"
        f"### Key points\n\n{points}\n\n"
        "### Conclusion\n\n"
        f"Taken together, the inputs give a consistent picture of {topic}: the direction is "
        "clear, while costs and regulation decide the pace."
    )
    cited = _cited(facts.inputs)
    if cited:
        text += "\n\n### Sources\n\n" + "\n".join(cited)
    return text


def _cited(inputs: Sequence[Contribution]) -> list[str]:
    """The sources the inputs list under "Sources consulted:", once each, in order."""
    cited: dict[str, None] = {}
    for item in inputs:
        _before, marker, after = item.text.partition(SOURCES_HEADING)
        if marker:
            for line in after.splitlines():
                if line.startswith("- "):
                    cited[line] = None
    return list(cited)


def _relay(facts: PromptFacts, seed: str) -> str:
    topic = _topic(facts.task)
    title = facts.role.capitalize() or "Agent"
    finding = _FINDINGS[_index(seed, "relay", len(_FINDINGS))].format(s=topic)
    if facts.previous is None:
        return (
            f"## {title} draft: {_title(topic)}\n\n{finding}\n\n"
            "- First point to develop\n- Open question"
        )
    return (
        f"## {title} pass: {_title(topic)}\n\n"
        f'Building on {facts.previous.agent_id}\'s output ("{gist(facts.previous.text)}"), this '
        f"pass tightens the argument and adds one point.\n\n{finding}"
    )


def _argument(facts: PromptFacts, seed: str) -> str:
    topic = _topic(facts.task)
    side = facts.side or "for"
    claim = _FINDINGS[_index(seed, "claim", len(_FINDINGS))].format(s=topic)
    rebuttal = ""
    if facts.inputs:
        last = facts.inputs[-1]
        rebuttal = f' Responding to {last.agent_id}: "{gist(last.text)}" overlooks the evidence.'
    return (
        f"**{facts.agent_id}** (round {facts.round_number}, arguing {side}): "
        f"I argue {side} the motion on {topic}. {claim}{rebuttal}"
    )


def _verdict(facts: PromptFacts, seed: str) -> str:
    winner = _VERDICTS[_index(seed, "verdict", len(_VERDICTS))]
    latest: dict[str, Contribution] = {}
    for turn in facts.inputs:
        latest[turn.agent_id] = turn
    points = "\n".join(_quote(turn) for turn in latest.values()) or "- (no arguments were made)"
    return (
        f"## Verdict: {_title(_topic(facts.task))}\n\n"
        f"The debate ran {len(facts.inputs)} turns. Final positions:\n\n{points}\n\n"
        f"**Decision:** on balance, the side arguing {winner} the motion was more convincing."
    )


def gist(text: str, limit: int = 140) -> str:
    """The first meaningful line of a text (a heading only when there is nothing else), without
    markdown decoration, at most `limit` characters."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("```")]
    for line in [line for line in lines if not line.startswith("#")] or lines:
        line = re.sub(r"^[#>*\-\s\d.]+", "", line).replace("**", "").strip()
        if line:
            return _clip(line, limit)
    return ""


def _quote(item: Contribution) -> str:
    label = f" ({_clip(item.label, 60)})" if item.label and not item.label.isdigit() else ""
    return f'- **{item.agent_id}**{label}: "{gist(item.text)}"'


def _topic(task: str) -> str:
    """A short name for what the task is about: its start, minus a leading instruction verb."""
    words = task.split()
    if len(words) > 1 and words[0].lower() in _VERBS:
        words = words[1:]
    return _clip(" ".join(words), 80).rstrip(" .,;:?!") or "the task"


def _title(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _index(seed: str, salt: str, modulo: int) -> int:
    digest = hashlib.sha256(f"{salt}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulo
