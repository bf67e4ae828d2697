"""`sverm run --follow` and `sverm runs follow`: a run's live progress bar, fed by its stream."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column

from .cli_output import money, spent, stderr_console, to_decimal

TERMINAL = {"run.completed": "completed", "run.failed": "failed", "run.cancelled": "cancelled"}
# How long a cancelled run may take to say so (a running one stops within a quarter second).
CANCEL_WAIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RunView:
    """Where a run stands as its events tell it, for the progress bar."""

    run_id: str
    status: str
    budget: Decimal | None
    progress: float = 0.0
    cost: Decimal = Decimal(0)
    agents_active: int = 0
    agents_total: int | None = None
    step: str = "waiting for the first event"

    @classmethod
    def start(cls, run: Any) -> RunView:
        """Before its first event: the run's budget and size; the rest comes from replaying
        its events from the start (so nothing is counted twice)."""
        return cls(
            run_id=run.id,
            status=run.status,
            budget=to_decimal(run.max_budget_usd),
            agents_total=run.agents_total or None,
        )

    def apply(self, event: Any) -> RunView:
        """The view after one event (the server's fold, swarms/engine/events.py, for the bar)."""
        data = event.data if isinstance(event.data, dict) else {}
        view = replace(self, step=" ".join(filter(None, (event.type, event.agent_id))))
        if event.type == "run.started":
            view = replace(view, status="running")
            if data.get("agents_total"):
                view = replace(view, agents_total=int(data["agents_total"]))
        elif event.type == "run.progress":
            cost = to_decimal(data.get("cost_usd"))
            view = replace(
                view,
                progress=min(max(float(data.get("progress", 0)), 0.0), 1.0),
                cost=view.cost if cost is None else cost,
                agents_active=int(data.get("agents_active", view.agents_active)),
                agents_total=int(data.get("agents_total") or view.agents_total or 0) or None,
            )
        elif event.type == "agent.started":  # no agent starts while a run is pausing
            view = replace(view, status="running", agents_active=view.agents_active + 1)
        elif event.type == "agent.completed":
            view = replace(view, agents_active=max(view.agents_active - 1, 0))
        elif event.type in TERMINAL:
            cost = to_decimal(data.get("cost_usd"))
            view = replace(
                view,
                status=TERMINAL[event.type],
                agents_active=0,
                progress=1.0 if event.type == "run.completed" else view.progress,
                cost=view.cost if cost is None else cost,
            )
        elif event.type == "approval.requested":
            view = replace(view, status="awaiting_approval")
        elif event.type == "run.paused":  # reason "budget": the next call does not fit
            needed = to_decimal(data.get("needed_usd"))
            step = f"needs {money(needed)} more budget" if needed is not None else view.step
            view = replace(view, status="awaiting_budget", step=step)
        elif event.type == "run.budget_raised":
            budget = to_decimal(data.get("to_usd"))
            view = replace(view, budget=view.budget if budget is None else budget)
        return view

    @property
    def agents(self) -> str:
        return f"agents {self.agents_active}/{self.agents_total or '?'}"

    def fields(self) -> dict[str, str]:
        return {
            "cost": spent(self.cost, self.budget),
            "agents": self.agents,
            "step": self.step,
            "status": self.status,
        }

    def line(self) -> str:
        """The plain-text progress line, for a stderr that is not a terminal."""
        return (
            f"{self.run_id} {self.status} {round(self.progress * 100):3d}% "
            f"{spent(self.cost, self.budget)} {self.agents} {self.step}"
        )


@dataclass(frozen=True, slots=True)
class Followed:
    """How following ended: the run as it stands, and whether Ctrl-C ended it (`cancelled`:
    the user chose to cancel the run)."""

    run: Any
    interrupted: bool = False
    cancelled: bool = False


def progress_bar(console: Console) -> Progress:
    """One line that fits any width: the bar and the latest step share what the status, the
    percentage, cost / budget, agents and elapsed time leave (the step is cut first)."""
    fixed = Column(no_wrap=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True, min_width=9)),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=10)),
        TaskProgressColumn(table_column=fixed),
        TextColumn("{task.fields[cost]}", table_column=fixed),
        TextColumn("{task.fields[agents]}", table_column=fixed),
        TimeElapsedColumn(table_column=fixed),
        TextColumn(
            "[dim]{task.fields[step]}[/]",
            table_column=Column(no_wrap=True, overflow="ellipsis", ratio=2, min_width=8),
        ),
        console=console,
        expand=True,
        refresh_per_second=8,
    )


def follow_run(client: Any, run_id: str, *, quiet: bool = False) -> Followed:
    """Watch the run until its terminal event; on Ctrl-C ask whether to cancel it."""
    run = client.runs.get(run_id)
    if run.finished:
        return Followed(run)
    console = stderr_console()
    view = RunView.start(run)
    try:
        view = _watch(client, view, console, quiet=quiet)
    except KeyboardInterrupt:
        return _interrupted(client, view, console)
    return Followed(client.runs.get(run_id))


def _watch(client: Any, view: RunView, console: Console, *, quiet: bool) -> RunView:
    stream = client.runs.stream(view.run_id, after=0)
    try:
        if console.is_terminal:
            console.print(
                f"Following [bold]{view.run_id}[/] (Ctrl-C to cancel it or detach)",
                soft_wrap=True,
            )
            with progress_bar(console) as bar:
                task = bar.add_task(view.run_id, total=100, **view.fields())
                for event in stream:
                    view = view.apply(event)
                    bar.update(task, completed=view.progress * 100, **view.fields())
        else:
            for event in stream:
                view = view.apply(event)
                if not quiet and (event.type.startswith("run.")):
                    console.print(view.line(), soft_wrap=True, markup=False, highlight=False)
    finally:
        with contextlib.suppress(Exception):
            getattr(stream, "close", lambda: None)()
    return view


def _interrupted(client: Any, view: RunView, console: Console) -> Followed:
    try:
        answer = click.confirm(f"Cancel run {view.run_id}?", default=False, err=True)
    except click.Abort:  # Ctrl-C or end of input at the prompt: not a yes
        console.print()
        answer = False
    if not answer:
        console.print(
            f"Detached from {view.run_id}; it goes on. Follow it again with: "
            f"sverm runs follow {view.run_id}",
            soft_wrap=True,
        )
        return Followed(client.runs.get(view.run_id), interrupted=True)
    run = client.runs.cancel(view.run_id)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while not run.finished and time.monotonic() < deadline:
        time.sleep(0.25)
        run = client.runs.get(view.run_id)
    if run.status == "cancelled":
        console.print(
            f"Run {run.id} [bold]cancelled[/]: spent {spent(run.cost_usd, run.max_budget_usd)}.",
            soft_wrap=True,
        )
    else:
        console.print(f"Run {run.id} is {run.status} (cancel requested).", soft_wrap=True)
    return Followed(run, interrupted=True, cancelled=True)
