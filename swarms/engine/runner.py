"""Running one swarm: calls under a hard budget, bounded concurrency, events, cancellation.

`run_swarm` never raises for anything that goes wrong inside the run: every outcome is a
RunResult with a status and an error code, and the caller's callbacks have seen exactly one
terminal event; or, when operators must decide (tool calls or steps that need approval, a
budget the run may pause for), a `paused` RunResult with nothing in flight, to be resumed from
its checkpoints. Only the cancellation of the caller's own task propagates.

The engine's longest module (about 900 lines) because one run's state (budget, slots, halt,
usage, progress, pausing) is shared by all its calls, and a turn's calls, tool calls,
reservations, retries and settlements read best next to each other. What stands on its own
lives beside it: cancellation (cancel.py), event delivery (sink.py), the output allowance under
the budget (allowance.py), checkpoint keys and what steps store (checkpoints.py), the tools and
their rules (tools.py) and what operators' decisions do (gates.py).
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from swarms.engine import events
from swarms.engine.allowance import OutputAllowance
from swarms.engine.budget import Budget, Reservation, cost_usd
from swarms.engine.cancel import CancelToken
from swarms.engine.chat import Message
from swarms.engine.checkpoints import (
    TOOL_MODEL_PREFIX,
    TOOL_PROVIDER,
    StepKeys,
    attempt_key,
    call_key,
    pack_outcome,
    pack_output,
    step_approval_key,
    tool_key,
    unpack_outcome,
    unpack_output,
)
from swarms.engine.estimate import OUTPUT_BYTES_PER_TOKEN
from swarms.engine.gates import (
    AGENT_STEP,
    decision_name,
    denied_outcome,
    step_denied_text,
    with_operator_note,
)
from swarms.engine.providers import (
    Completion,
    CompletionRequest,
    Provider,
    ProviderError,
    ProviderRouter,
)
from swarms.engine.sink import EventSink
from swarms.engine.tools import (
    Toolbox,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    empty_toolbox,
    over_limit_outcome,
    unaffordable_outcome,
)
from swarms.engine.topologies import TOPOLOGIES, Job
from swarms.engine.types import (
    AgentSpec,
    ApprovalRequest,
    Decision,
    Event,
    Price,
    RunInput,
    RunResult,
    Step,
    Usage,
    money,
)

logger = logging.getLogger(__name__)

SUMMARY_CHARS = 200


async def run_swarm(
    spec: RunInput,
    *,
    router: ProviderRouter,
    on_event: Callable[[Event], Awaitable[None]] | None = None,
    on_usage: Callable[[Usage], Awaitable[None]] | None = None,
    on_step: Callable[[Step], Awaitable[None]] | None = None,
    on_batch: Callable[[list[Event | Usage | Step]], Awaitable[None]] | None = None,
    cancel: CancelToken | None = None,
    tools: Toolbox | None = None,
) -> RunResult:
    """Run `spec` to a terminal status.

    `on_usage` is awaited once per finished LLM call, before that call's `agent.message` event.
    `on_step` sees each call's checkpoint: `reserved` (awaited before the call starts: if it
    raises, the call does not start), then `settled` right after its usage, or `released` or
    `interrupted`. The callbacks are never called concurrently and see things in the order they
    happened. `on_batch` instead receives all of them that queued up meanwhile, in order, in one
    call (a reservation among them is awaited with its batch). Steps in `spec.checkpoints` are
    replayed: their text is reused, their cost counted, and nothing is called, charged or
    emitted for them again. `tools` are the tools agents may call (none when not given): each
    agent is offered those its definition lists that the toolbox allows.
    """
    sink = EventSink(on_event, on_usage, on_step, on_batch)
    sink.start()
    try:
        run = _Run(spec, router, sink, tools or empty_toolbox())
        return await run.execute(cancel or CancelToken())
    except asyncio.CancelledError:
        sink.abort()
        raise


class _Halt(Exception):
    """The run stops scheduling calls; the reason is in `_Run.halt_reason`."""


# The least a budget pause asks for: a shortfall rounds up to a micro-dollar at least.
MIN_SHORTFALL = Decimal("0.000001")


class _Held(Exception):
    """A call that had not reserved anything yet waits for the run to pause."""


@dataclass(frozen=True)
class _Finished:
    agent_id: str
    label: str
    text: str


class _Run:
    """The state of one run; implements `topologies.Steps`."""

    def __init__(
        self, spec: RunInput, router: ProviderRouter, sink: EventSink, tools: Toolbox
    ) -> None:
        self.spec = spec
        self.router = router
        self.sink = sink
        self.tools = tools
        # Pausing for approvals: the requests made, what is in flight, and the moment nothing is.
        self.pending: list[ApprovalRequest] = []
        self.short_usd: Decimal | None = None  # pausing for budget: how much more it needs
        self._busy = 0
        self._quiet = asyncio.Event()
        self.budget = Budget(spec.budget_usd, held=spec.held_usd)
        self.keys = StepKeys(spec.checkpoints, spec.calls.max_attempts)
        self.slots = asyncio.Semaphore(spec.definition.limits.max_parallel)
        self.allowance = OutputAllowance(spec)
        self.agents = spec.definition.expanded_agents()
        self.usage: list[Usage] = []
        self.finished: list[_Finished] = []
        self.halt_reason: tuple[str, str] | None = None
        self.expected = 0
        self.started = 0
        self.active = 0
        self._settled = asyncio.Event()

    # --- the run as a whole -------------------------------------------------------------------

    async def execute(self, cancel: CancelToken) -> RunResult:
        try:
            self.sink.event(
                events.RUN_STARTED,
                None,
                {
                    "agents_total": len(self.agents),
                    "topology": self.spec.definition.topology,
                    "simulated": self.router.simulated,
                },
            )
            unpriced = sorted({a.model for a in self.agents} - set(self.spec.prices))
            if unpriced:
                message = f"no price configured for model(s): {', '.join(unpriced)}"
                return await self._finish(events.FAILED, "internal_error", message)
            if cancel.cancelled:
                return await self._stopped(cancel)
            body = await self._supervise(cancel)
            return await self._conclude(body, cancel)
        except Exception as exc:  # a bug here must still end the run cleanly
            logger.exception("swarm engine failed outside the topology")
            return await self._finish(events.FAILED, "internal_error", _describe(exc))

    async def _supervise(self, cancel: CancelToken) -> asyncio.Task[str]:
        """Run the topology until it ends, the token is cancelled, or a callback fails."""
        definition = self.spec.definition
        topology = TOPOLOGIES[definition.topology]
        body = asyncio.create_task(topology.run(self, definition, self.spec.task))
        watchers = [
            asyncio.create_task(cancel.wait()),
            asyncio.create_task(self.sink.failed.wait()),
            asyncio.create_task(self._quiet.wait()),
        ]
        try:
            await asyncio.wait([body, *watchers], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for watcher in watchers:
                watcher.cancel()
            body.cancel()  # no-op when it has finished; else aborts the calls in flight
            await asyncio.wait([body, *watchers])  # aborted calls release their reservations
        return body

    async def _stopped(self, cancel: CancelToken) -> RunResult:
        if cancel.reason is not None:
            return await self._finish(events.FAILED, *cancel.reason)
        return await self._finish(events.CANCELLED)

    async def _conclude(self, body: asyncio.Task[str], cancel: CancelToken) -> RunResult:
        if self.sink.failure is not None:
            message = f"recording the run failed: {_describe(self.sink.failure)}"
            return await self._finish(events.FAILED, "internal_error", message)
        if body.cancelled() and self._quiet.is_set() and not cancel.cancelled:
            return await self._paused()
        if body.cancelled():
            return await self._stopped(cancel)
        error = body.exception()
        if error is None:
            return await self._finish(events.COMPLETED, output=body.result())
        if isinstance(error, _Halt) and self.halt_reason is not None:
            return await self._finish(events.FAILED, *self.halt_reason)
        logger.error("swarm engine internal error", exc_info=error)
        return await self._finish(events.FAILED, "internal_error", _describe(error))

    async def _finish(
        self,
        status: str,
        error_code: str | None = None,
        error_message: str | None = None,
        output: str | None = None,
    ) -> RunResult:
        total = self._total()
        if output is None:
            output = self._partial_output()
        if status == events.COMPLETED:
            data = {"output": output, "cost_usd": money(total)}
        elif status == events.FAILED:
            data = {
                "error_code": error_code,
                "error_message": error_message,
                "cost_usd": money(total),
            }
        else:
            data = {"cost_usd": money(total)}
        self.sink.event(events.TERMINAL_EVENT[status], None, data)
        await self.sink.close()
        return RunResult(
            status=status,
            output=output,
            error_code=error_code,
            error_message=error_message,
            usage=tuple(self.usage),
            total_cost_usd=total,
        )

    async def _paused(self) -> RunResult:
        """Nothing in flight, approvals pending: what was recorded is kept, no ending said."""
        await self.sink.close()
        return RunResult(
            status=events.PAUSED,
            output=self._partial_output(),
            error_code=None,
            error_message=None,
            usage=tuple(self.usage),
            total_cost_usd=self._total(),
            pending=tuple(self.pending),
            budget_short_usd=None if self.pending else self.short_usd,
        )

    def _partial_output(self) -> str:
        """What finished before the run stopped, under one heading per call."""
        sections = []
        for item in self.finished:
            label = f" ({_shorten(item.label, 80)})" if item.label else ""
            sections.append(f"## {item.agent_id}{label}\n\n{item.text}")
        return "\n\n".join(sections)

    def _total(self) -> Decimal:
        return sum((usage.cost_usd for usage in self.usage), Decimal(0))

    # --- topologies.Steps ---------------------------------------------------------------------

    def expect_calls(self, count: int) -> None:
        self.expected = count

    def delegate(self, manager: AgentSpec, target: AgentSpec, subtask: str, note: str) -> None:
        data = {"target": target.id, "summary": _shorten(subtask, SUMMARY_CHARS)}
        if note:
            data["note"] = note
        self.sink.event(events.AGENT_DELEGATED, manager.id, data)

    def check(self) -> None:
        if self.halt_reason is not None:
            raise _Halt

    async def fan_out(self, jobs: Sequence[Job]) -> list[str | None]:
        results: list[str | None] = [None] * len(jobs)

        async def one(index: int, job: Job) -> None:
            # A halt refuses the remaining calls but lets the siblings in flight finish.
            with contextlib.suppress(_Halt):
                results[index] = await self.call(job)

        # A TaskGroup, so cancelling the run cancels every call in flight with it.
        async with asyncio.TaskGroup() as group:
            for index, job in enumerate(jobs):
                group.create_task(one(index, job), name=f"swarm-call-{job.agent.id}")
        return results

    async def call(self, job: Job) -> str:
        """One agent turn: a call, or with tools offered, calls and tool calls until the model
        answers in text (at most `limits.max_tool_calls` tool calls, then one call without)."""
        self.check()
        agent = job.agent
        offered = self.tools.specs_for(agent.tools) if agent.tools else ()
        # Keyed before any await, so calls get the same keys in every attempt of the run.
        key = self.keys.key(agent, job.messages)
        replayed = self.keys.settled(key)
        if agent.approve_steps:
            decision = await self._step_decision(job, key)
            if not decision.approved:
                self._turn_started(agent)
                return self._complete(job, step_denied_text(decision), Decimal(0))
            if decision.arguments is not None:
                job = with_operator_note(job, decision.arguments)
                key = self.keys.key(agent, job.messages)
                replayed = self.keys.settled(key)
        if replayed is not None and not offered:
            return self._replay(job, replayed)
        announced = False

        def announce(max_tokens: int) -> None:
            nonlocal announced
            data = {"model": agent.model, "task": _shorten(job.summary, SUMMARY_CHARS)}
            if max_tokens < agent.max_tokens:
                data["max_tokens"] = max_tokens  # clamped to what the budget can pay
            self.sink.event(events.AGENT_STARTED, agent.id, data)
            self.active += 1
            announced = True

        async with self.slots:
            self._turn_started(agent)
            try:
                if offered:
                    text, cost = await self._tool_turn(job, offered, key, replayed, announce)
                else:
                    text, _calls, cost = await self._exchange(job, key, announce)
            finally:
                if announced:
                    self.active -= 1
        # From here on nothing awaits, so a cancel cannot split the bookkeeping of a finished call.
        return self._complete(job, text, cost)

    def _turn_started(self, agent: AgentSpec) -> None:
        if self.started >= self.spec.definition.limits.max_steps:
            raise RuntimeError("limits.max_steps reached: the topology planned too many calls")
        self.started += 1
        self.allowance.call_started(agent.id)

    async def _tool_turn(
        self,
        job: Job,
        offered: tuple[ToolSpec, ...],
        key: str,
        replayed: Step | None,
        announce: Callable[[int], None],
    ) -> tuple[str, Decimal]:
        """The calls of a turn with tools, and what they cost together. Every call is reserved,
        recorded and settled as any other; what a resumed run replays is reused (the tools it
        asked for run again)."""
        agent = job.agent
        left = self.spec.definition.limits.max_tool_calls
        exchange = job
        first: Callable[[int], None] | None = announce
        total = Decimal(0)
        while True:
            choice = "auto" if left > 0 else "none"
            if replayed is not None:
                text, calls, cost = self._replay_exchange(agent, replayed)
            else:
                text, calls, cost = await self._exchange(
                    exchange, key, first, tools=offered, tool_choice=choice
                )
            first = None
            total += cost
            if not calls or choice == "none":
                return text, total
            ran, over = calls[:left], calls[left:]
            left -= len(ran)
            outcomes = await self._run_tools(agent, key, ran, over)
            answers = tuple(
                Message("tool", outcome.content, tool_call_id=call.id)
                for call, outcome in zip(calls, outcomes, strict=True)
            )
            messages = (*exchange.messages, Message("assistant", text, tool_calls=calls), *answers)
            exchange = dataclasses.replace(job, messages=messages)
            self.check()
            key = self.keys.key(agent, messages)
            replayed = self.keys.settled(key)

    async def _run_tools(
        self, agent: AgentSpec, asked: str, ran: Sequence[ToolCall], over: Sequence[ToolCall]
    ) -> list[ToolOutcome]:
        """Run a response's tool calls (asked by the call `asked`) concurrently, but those
        `over` the turn's limit. Each is a checkpoint: on record before it runs, settled with its
        result and price; one an earlier attempt ran is replayed, not run again. Calls that need
        an operator's approval and have no decision yet pause the run (this never returns then).
        Events in the order the model asked."""
        calls = [*ran, *over]
        keys = [tool_key(asked, index) for index in range(len(calls))]
        outcomes: list[ToolOutcome | None] = [None] * len(calls)
        for index, key in enumerate(keys):
            step = self.keys.settled(key)
            if step is not None and step.usage is not None:
                outcomes[index] = unpack_outcome(step.output)
                self.budget.charge(step.usage.cost_usd)
                self.usage.append(step.usage)
        fresh = [index for index, outcome in enumerate(outcomes) if outcome is None]
        decisions: dict[int, Decision] = {}
        waiting = []
        for index in fresh:
            call = calls[index]
            if index >= len(ran) or not self._approval_needed(agent, call.name):
                continue
            decision = self.spec.approvals.get(keys[index])
            if decision is None:
                waiting.append(
                    ApprovalRequest(keys[index], agent.id, call.name, call.id, call.arguments)
                )
            else:
                decisions[index] = decision
        if waiting:
            await self._wait_for_approval(waiting)
        for index in fresh:
            call = calls[index]
            data = {"call_id": call.id, "tool": call.name, "arguments": _clip(call.arguments)}
            if index in decisions:
                decision = decisions[index]
                data["approval"] = decision_name(decision)
                if decision.arguments is not None:
                    data["arguments"] = _clip(decision.arguments)
            self.sink.event(events.TOOL_CALLED, agent.id, data)
        self._busy += 1
        try:
            done = await asyncio.gather(
                *(
                    self._tool_step(
                        agent, keys[index], calls[index], decisions.get(index), index >= len(ran)
                    )
                    for index in fresh
                )
            )
        finally:
            self._busy -= 1
            self._check_quiet()
        for index, outcome in zip(fresh, done, strict=True):
            outcomes[index] = outcome
            call = calls[index]
            data = {
                "call_id": call.id,
                "tool": call.name,
                "duration_ms": outcome.duration_ms,
                "chars": len(outcome.content),
                "summary": _shorten(outcome.content, SUMMARY_CHARS),
            }
            if outcome.truncated:
                data["truncated"] = True
            if outcome.error is not None:
                data["error"] = outcome.error
            if outcome.refused_by is not None:
                data["rule_source"] = outcome.refused_by
            self.sink.event(events.TOOL_RESULT, agent.id, data)
        return [outcome for outcome in outcomes if outcome is not None]

    def _approval_needed(self, agent: AgentSpec, name: str) -> bool:
        tool = self.tools.tools.get(name)
        return agent.approval_needed(name) or (tool is not None and tool.spec.requires_approval)

    async def _tool_step(
        self,
        agent: AgentSpec,
        key: str,
        call: ToolCall,
        decision: Decision | None,
        over_limit: bool,
    ) -> ToolOutcome:
        """One tool call as a checkpoint: its price reserved and on record before it runs,
        then charged (when the tool ran) and settled with its result."""
        tool = self.tools.tools.get(call.name)
        price = tool.spec.price_usd if tool is not None else Decimal(0)
        model = f"{TOOL_MODEL_PREFIX}{call.name}"
        if over_limit or (decision is not None and not decision.approved):
            price = Decimal(0)
        # What later calls need is a walk of the topology: only a priced call asks.
        if price > 0 and price > self.budget.remaining - self.allowance.kept_aside(
            key, agent.id, 0
        ):
            outcome = unaffordable_outcome(price)
            price = Decimal(0)
        else:
            outcome = None
        reservation = self.budget.reserve(price)
        step = Step(key, agent.id, model, "reserved", reservation.amount)
        try:
            await self.sink.step_recorded(step)
        except BaseException:
            self._release(reservation)
            raise
        try:
            if outcome is None:
                if over_limit:
                    outcome = over_limit_outcome()
                elif decision is not None and not decision.approved:
                    outcome = denied_outcome(decision)
                else:
                    arguments = None if decision is None else decision.arguments
                    outcome = await self.tools.run(agent.tools, call, arguments=arguments)
        except BaseException:  # aborted while it ran: it may have cost its price
            self.budget.interrupt(reservation)
            self._wake_reservations()
            self.sink.step(_with_status(step, "interrupted"))
            raise
        cost = self.budget.settle(reservation, price if outcome.invoked else Decimal(0))
        self._wake_reservations()
        usage = Usage(agent.id, model, TOOL_PROVIDER, 0, 0, cost)
        self.usage.append(usage)
        self.sink.usage(usage)
        self.sink.step(
            Step(key, agent.id, model, "settled", step.reserved_usd, usage=usage,
                 output=pack_outcome(outcome))
        )  # fmt: skip
        return outcome

    # --- pausing for approvals -------------------------------------------------------------------

    async def _step_decision(self, job: Job, key: str) -> Decision:
        """An operator's decision on this step of an agent whose steps need one; without one
        yet, ask and hold (the run pauses)."""
        request_key = step_approval_key(key)
        decision = self.spec.approvals.get(request_key)
        if decision is None:
            task = json.dumps({"task": _shorten(job.summary, 2000)})
            await self._wait_for_approval(
                [ApprovalRequest(request_key, job.agent.id, AGENT_STEP, "", task)]
            )
        assert decision is not None
        return decision

    async def _wait_for_approval(self, requests: list[ApprovalRequest]) -> None:
        """Ask for the operators' decisions, then hold: the run pauses once nothing is in
        flight (other calls finish what they started; none starts), and resumes in a later
        attempt that has the decisions."""
        for request in requests:
            self.sink.event(
                events.APPROVAL_REQUESTED,
                request.agent_id,
                {"key": request.key, "call_id": request.call_id, "tool": request.tool,
                 "arguments": _clip(request.arguments)},
            )  # fmt: skip
        self.pending.extend(requests)
        await self._hold()

    def _wait_for_budget(self, agent: AgentSpec, short: Decimal) -> None:
        """The next call cannot fit and the run pauses rather than fail: say how much more
        budget it needs; it pauses once nothing is in flight."""
        self.short_usd = short
        self.sink.event(
            events.RUN_PAUSED,
            None,
            {"reason": "budget", "agent_id": agent.id, "needed_usd": money(short),
             "budget_usd": money(self.budget.limit), "spent_usd": money(self.budget.spent)},
        )  # fmt: skip

    def _pausing(self) -> bool:
        return bool(self.pending) or self.short_usd is not None

    async def _gate(self) -> None:
        """Before anything new starts: hold when the run is pausing."""
        if self._pausing():
            await self._hold()

    async def _hold(self) -> None:
        self._check_quiet()
        await asyncio.Event().wait()  # until the run pauses and cancels its body

    def _check_quiet(self) -> None:
        if self._pausing() and self._busy == 0:
            self._quiet.set()

    async def _exchange(
        self,
        job: Job,
        key: str,
        announce: Callable[[int], None] | None,
        *,
        tools: tuple[ToolSpec, ...] = (),
        tool_choice: str = "auto",
    ) -> tuple[str, tuple[ToolCall, ...], Decimal]:
        """One LLM call of a turn, retried within its deadline, settled. `announce` (the turn's
        first call) is told its first reservation's max_tokens. Returns its text, the tools it
        asked for and its cost."""
        await self._gate()
        self._busy += 1
        try:
            return await self._exchange_busy(job, key, announce, tools, tool_choice)
        except _Held:
            pass
        finally:
            self._busy -= 1
            self._check_quiet()
        await self._hold()
        raise AssertionError("a held call never resumes")  # pragma: no cover

    async def _exchange_busy(
        self,
        job: Job,
        key: str,
        announce: Callable[[int], None] | None,
        tools: tuple[ToolSpec, ...],
        tool_choice: str,
    ) -> tuple[str, tuple[ToolCall, ...], Decimal]:
        agent = job.agent
        provider = self.router.for_model(agent.model)
        price = self.spec.prices[agent.model]
        deadline = asyncio.get_running_loop().time() + self.spec.calls.deadline_seconds
        attempt = 1
        reservation, max_tokens, step = await self._begin(job, provider, price, key, attempt, tools)
        if announce is not None:
            announce(max_tokens)
        while True:
            try:
                completion = await self._attempt(
                    job, provider, max_tokens, deadline, tools, tool_choice
                )
                break
            except ProviderError as exc:
                self._end_attempt(reservation, step, interrupted=exc.maybe_billed)
                now = asyncio.get_running_loop().time()
                delay = self.spec.calls.retry_delay(exc, attempt, now, deadline)
                if delay is None:
                    self.halt("provider_error", self.spec.calls.gave_up(exc, attempt))
                    raise _Halt from exc
                logger.warning(
                    "%s: attempt %s failed (%s); retrying in %.1f s",
                    agent.id, attempt, exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                attempt += 1
                reservation, max_tokens, step = await self._begin(
                    job, provider, price, key, attempt, tools
                )
            except BaseException:  # aborted in flight: the provider may have charged it
                self._end_attempt(reservation, step, interrupted=True)
                raise
        # From here on nothing awaits, so a cancel cannot split the bookkeeping of a finished call.
        return self._settle(job, provider, price, reservation, completion, step, max_tokens)

    async def _begin(
        self,
        job: Job,
        provider: Provider,
        price: Price,
        key: str,
        attempt: int,
        tools: tuple[ToolSpec, ...] = (),
    ) -> tuple[Reservation, int, Step]:
        """Reserve one attempt of a call and put it on record before it starts."""
        reservation, max_tokens = await self._reserve(job, provider, price, key, tools)
        step = Step(
            attempt_key(key, attempt), job.agent.id, job.agent.model, "reserved", reservation.amount
        )
        try:
            await self.sink.step_recorded(step)
        except BaseException:  # not on record (or cancelled meanwhile): the call never starts
            self._release(reservation)
            raise
        return reservation, max_tokens, step

    async def _attempt(
        self,
        job: Job,
        provider: Provider,
        max_tokens: int,
        deadline: float,
        tools: tuple[ToolSpec, ...] = (),
        tool_choice: str = "auto",
    ) -> Completion:
        """One request, within this attempt's timeout and the call's deadline."""
        left = deadline - asyncio.get_running_loop().time()
        timeout = min(self.spec.calls.attempt_timeout_seconds, left)
        if timeout <= 0:
            raise ProviderError(f"{provider.name}: the call's deadline has passed")
        request = CompletionRequest(
            model=job.agent.model,
            messages=job.messages,
            max_tokens=max_tokens,
            agent_id=job.agent.id,
            timeout_seconds=timeout,
            tools=tools,
            tool_choice=tool_choice,
        )
        try:
            async with asyncio.timeout(timeout):
                return await provider.complete(request)
        except TimeoutError as exc:
            raise ProviderError(
                f"{provider.name}: model '{job.agent.model}' gave no answer within {timeout:g} s",
                retryable=True, maybe_billed=True,
            ) from exc  # fmt: skip

    def _end_attempt(self, reservation: Reservation, step: Step, *, interrupted: bool) -> None:
        """A failed or aborted attempt: its reservation is released, or held when the provider
        may have billed it."""
        if interrupted:
            self.budget.interrupt(reservation)
            self._wake_reservations()
            self.sink.step(_with_status(step, "interrupted"))
        else:
            self._release(reservation)
            self.sink.step(_with_status(step, "released"))

    def _replay(self, job: Job, step: Step) -> str:
        """A call an earlier attempt of this run finished: reuse it, count its cost, say nothing
        (its events and its ledger row exist already)."""
        self._turn_started(job.agent)
        text, _calls, _cost = self._replay_exchange(job.agent, step)
        self.finished.append(_Finished(job.agent.id, job.label, text))
        return text

    def _replay_exchange(
        self, agent: AgentSpec, step: Step
    ) -> tuple[str, tuple[ToolCall, ...], Decimal]:
        assert step.usage is not None
        self.allowance.bound_output(agent.id, step.key, len(step.output.encode()))
        self.budget.charge(step.usage.cost_usd)
        self.usage.append(step.usage)
        return (*unpack_output(step.output), step.usage.cost_usd)

    # --- one call's budget and bookkeeping --------------------------------------------------------

    def halt(self, code: str, message: str) -> None:
        if self.halt_reason is None:
            self.halt_reason = (code, message)

    async def _reserve(
        self, job: Job, provider: Provider, price: Price, key: str, tools: tuple[ToolSpec, ...]
    ) -> tuple[Reservation, int]:
        """Reserve the call's worst case: its prompt bound and as many output tokens, up to the
        agent's max_tokens, as the budget can pay after keeping aside what later calls need
        (the clamped max_tokens is returned with it). Below the output floor, wait for calls in
        flight to settle (they usually cost less than they reserved); with none in flight, halt."""
        agent = job.agent
        prompt_tokens = provider.max_prompt_tokens(job.messages, tools)
        floor = self.allowance.floor(agent)
        while True:
            self.check()
            remaining = self.budget.remaining
            tokens = self.allowance.affordable(remaining, agent, key, prompt_tokens, price)
            if tokens >= floor:
                self.allowance.bound_output(agent.id, key, OUTPUT_BYTES_PER_TOKEN * tokens)
                return self.budget.reserve(cost_usd(prompt_tokens, tokens, price)), tokens
            if self._pausing():  # nothing will settle that is not in flight already
                raise _Held
            if self.budget.reserved == 0:
                least = cost_usd(prompt_tokens, floor, price)
                kept = self.allowance.kept_aside(key, agent.id, OUTPUT_BYTES_PER_TOKEN * floor)
                room = remaining - kept
                if self.spec.pause_on_budget:
                    self._wait_for_budget(agent, max(least - room, MIN_SHORTFALL))
                    raise _Held
                self.halt(
                    "budget_exceeded",
                    f"Run stopped at its budget of ${money(self.budget.limit)}: the next call "
                    f"({agent.id}) needs at least ${money(least)} ({floor} output tokens) and "
                    f"${money(max(room, Decimal(0)))} is left for it "
                    f"(${money(self.budget.spent)} spent).",
                )
                raise _Halt
            # Calls in flight usually settle below their reservation, which may make room.
            await self._settled.wait()

    def _settle(
        self,
        job: Job,
        provider: Provider,
        price: Price,
        reservation: Reservation,
        completion: Completion,
        step: Step,
        max_tokens: int,
    ) -> tuple[str, tuple[ToolCall, ...], Decimal]:
        """Charge a finished call and put it on record: its usage, its settled step, and an
        `agent.message` event."""
        agent = job.agent
        text = _within_bytes(completion.text, OUTPUT_BYTES_PER_TOKEN * max_tokens)
        calls = completion.tool_calls
        output = pack_output(text, calls)
        self.allowance.bound_output(agent.id, call_key(step.key), len(output.encode()))
        reported = cost_usd(completion.tokens_in, completion.tokens_out, price)
        cost = self.budget.settle(reservation, reported)
        self._wake_reservations()
        if completion.tokens_out > max_tokens or cost < reported:
            logger.warning(
                "%s: %s reported %s output tokens for max_tokens %s ($%s); charged $%s%s",
                agent.id, provider.name, completion.tokens_out, max_tokens, money(reported),
                money(cost), " (all the run's budget had left)" if cost < reported else "",
            )  # fmt: skip
        usage = Usage(
            agent_id=agent.id,
            model=agent.model,
            provider=provider.name,
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
            cost_usd=cost,
        )
        self.usage.append(usage)
        self.sink.usage(usage)
        self.sink.step(
            Step(
                step.key,
                agent.id,
                agent.model,
                "settled",
                step.reserved_usd,
                usage=usage,
                output=output,
            )
        )
        summary = text
        if calls and not text.strip():
            summary = "asked for " + ", ".join(dict.fromkeys(call.name for call in calls))
        data = {
            "summary": _shorten(summary, SUMMARY_CHARS),
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "cost_usd": money(cost),
        }
        if calls:
            data["tool_calls"] = len(calls)
        self.sink.event(events.AGENT_MESSAGE, agent.id, data)
        return text, calls, cost

    def _complete(self, job: Job, text: str, cost: Decimal) -> str:
        """A turn's answer (`cost`: its calls together): `agent.completed`, and where the run
        stands."""
        agent = job.agent
        self.finished.append(_Finished(agent.id, job.label, text))
        self.sink.event(events.AGENT_COMPLETED, agent.id, {"output": text, "cost_usd": money(cost)})
        done = len(self.finished)
        self.sink.event(
            events.RUN_PROGRESS,
            None,
            {
                "progress": round(min(1.0, done / max(self.expected, done)), 4),
                "cost_usd": money(self._total()),
                "agents_active": self.active,
                "agents_total": len(self.agents),
            },
        )
        return text

    def _release(self, reservation: Reservation) -> None:
        self.budget.release(reservation)
        self._wake_reservations()

    def _wake_reservations(self) -> None:
        self._settled.set()
        self._settled = asyncio.Event()


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _within_bytes(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-8 bytes (on a character boundary): what later prompts may
    quote of an output is bounded by what its call was allowed."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")


def _with_status(step: Step, status: str) -> Step:
    return Step(step.key, step.agent_id, step.model, status, step.reserved_usd)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _describe(error: BaseException) -> str:
    """The first real error inside (possibly nested) exception groups, as `Type: message`."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
