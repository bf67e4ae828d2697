"""The simulated provider: deterministic, role-following, honest token counts; the router; and
providers built by kind."""

import asyncio
import math
import time

import pytest

from swarms.engine import prompts
from swarms.engine.plan import parse_plan
from swarms.engine.prompts import Contribution
from swarms.engine.providers import (
    PROVIDER_KINDS,
    CompletionRequest,
    Message,
    OpenAIProvider,
    Provider,
    ProviderRouter,
    SimulatedProvider,
    provider_from_config,
    utf8_prompt_bound,
)
from swarms.engine.types import AgentSpec

from .fakes import MODEL, TASK

pytestmark = pytest.mark.anyio

MANAGER = AgentSpec("manager", "manager", MODEL)
WORKER = AgentSpec("researcher-1", "worker", MODEL)
WRITER = AgentSpec("writer", "writer", MODEL)


def request(agent: AgentSpec, messages, max_tokens: int = 1024) -> CompletionRequest:
    return CompletionRequest(
        model=MODEL, messages=messages, max_tokens=max_tokens, agent_id=agent.id
    )


async def test_same_request_gives_same_text_and_tokens():
    provider = SimulatedProvider()
    req = request(WORKER, prompts.work_messages("", WORKER, TASK, "Costs"))
    assert await provider.complete(req) == await provider.complete(req)
    other = request(WORKER, prompts.work_messages("", WORKER, TASK, "Policy"))
    assert (await provider.complete(other)).text != (await provider.complete(req)).text


async def test_manager_returns_a_parseable_plan_of_the_requested_size():
    provider = SimulatedProvider()
    completion = await provider.complete(
        request(MANAGER, prompts.plan_messages("", MANAGER, TASK, 3))
    )
    subtasks = parse_plan(completion.text, max_items=10)
    assert len(subtasks) == 3
    assert all("Norwegian hydrogen economy" in subtask for subtask in subtasks)


async def test_worker_reports_on_its_subtask():
    provider = SimulatedProvider()
    completion = await provider.complete(
        request(WORKER, prompts.work_messages("", WORKER, TASK, "Electrolysis costs"))
    )
    assert completion.text.startswith("### Findings: Electrolysis costs")


async def test_writer_quotes_the_gist_of_each_input():
    inputs = [
        Contribution("researcher-1", "### Findings\n\n- Costs fall 30% by 2030.", "Costs"),
        Contribution("researcher-2", "Exports to Germany dominate demand.", "Markets"),
    ]
    completion = await SimulatedProvider().complete(
        request(WRITER, prompts.synthesis_messages("", WRITER, TASK, inputs))
    )
    assert completion.text.startswith("## The Norwegian hydrogen economy")
    assert '**researcher-1** (Costs): "Costs fall 30% by 2030."' in completion.text
    assert '**researcher-2** (Markets): "Exports to Germany dominate demand."' in completion.text


async def test_debater_argues_its_side_and_answers_the_last_turn():
    debater = AgentSpec("con", "debater", MODEL)
    transcript = [Contribution("pro", "Hydrogen is the future of Norwegian industry.", "1")]
    messages = prompts.argue_messages(
        "", debater, TASK, transcript, round_number=1, rounds=2, side="against"
    )
    text = (await SimulatedProvider().complete(request(debater, messages))).text
    assert "arguing against" in text
    assert 'Responding to pro: "Hydrogen is the future of Norwegian industry."' in text


async def test_tokens_follow_text_length_and_never_exceed_max_tokens():
    provider = SimulatedProvider()
    messages = prompts.work_messages("", WORKER, TASK, "Costs")
    completion = await provider.complete(request(WORKER, messages, max_tokens=5))
    assert len(completion.text) == 20
    assert completion.tokens_out == 5
    full = await provider.complete(request(WORKER, messages))
    assert full.tokens_out == math.ceil(len(full.text) / 4) <= 1024
    assert full.tokens_in == math.ceil(sum(len(m.content) for m in messages) / 4)
    assert full.tokens_in == provider.max_prompt_tokens(messages)


async def test_latency_is_an_asyncio_sleep():
    provider = SimulatedProvider(latency_seconds=0.2)
    req = request(WORKER, prompts.work_messages("", WORKER, TASK, "Costs"))
    started = time.monotonic()
    await asyncio.gather(*(provider.complete(req) for _ in range(5)))
    assert time.monotonic() - started < 0.9  # five sleeps overlapped, not 1 s in a row


async def test_unknown_prompts_still_get_a_reply():
    completion = await SimulatedProvider().complete(
        CompletionRequest(MODEL, (Message("user", "Hello there"),), 100, "x")
    )
    assert completion.text == "Simulated reply from x: Hello there"


def test_utf8_bound_counts_bytes_and_overheads():
    messages = [Message("system", "abc"), Message("user", "æøå")]
    assert utf8_prompt_bound(messages) == 3 + 6 + 2 * 8 + 16


def test_router_routes_exact_model_names_and_knows_when_all_is_simulated():
    simulated = SimulatedProvider()
    openai = OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key="k")
    router = ProviderRouter(routes={"gpt-4o": openai}, default=simulated)
    assert router.for_model("gpt-4o") is openai
    assert router.for_model("gpt-4o-mini") is simulated
    assert router.simulated is False
    assert ProviderRouter(routes={"x": SimulatedProvider()}, default=simulated).simulated is True
    only = ProviderRouter.simulated_only(latency_seconds=0.5)
    assert only.simulated is True
    assert only.for_model("anything").latency_seconds == 0.5
    assert isinstance(simulated, Provider) and isinstance(openai, Provider)


# --- providers by kind ----------------------------------------------------------------------------


async def test_configured_providers_are_built_by_kind_openai_compatible_by_default():
    openai = provider_from_config("deepseek", {"api_key": "k", "base_url": "http://x/v1"})
    assert isinstance(openai, OpenAIProvider) and openai.name == "deepseek"
    simulated = provider_from_config("local", {"kind": "simulated", "latency_seconds": 0.5})
    assert isinstance(simulated, SimulatedProvider) and simulated.latency_seconds == 0.5
    assert simulated.name == "simulated"  # runs on it say they are simulated
    assert set(PROVIDER_KINDS) == {"openai-compatible", "simulated"}
    with pytest.raises(ValueError, match="unknown kind 'grpc'"):
        provider_from_config("x", {"kind": "grpc", "api_key": "k"})
    for provider in (openai, simulated):
        assert isinstance(provider, Provider)
        await provider.aclose()  # the simulation holds nothing: the protocol's no-op
