"""The estimates, the floors and the budget clamping of every template and a set of edge teams,
against numbers recorded before the topologies became classes and the estimate a dry run of them.

Money behaviour must not move when the engine is restructured: `estimate_golden.json` holds what
`estimate_cost`, `minimum_cost` and `call_floors` answered then, and what a simulated run at a few
budgets did (its status, cost and the max_tokens each call was clamped to). To re-record after a
deliberate change: `.venv/bin/python -m tests.engine.test_estimate_golden`.
"""

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarms.definitions import default_definition
from swarms.engine.estimate import call_floors, estimate_cost, minimum_cost
from swarms.engine.types import Definition, Price

from .fakes import QUICK_RETRIES, definition_dict, run, run_input

GOLDEN = Path(__file__).with_name("estimate_golden.json")
BUILTIN = Path(__file__).resolve().parents[2] / "templates_app" / "builtin"

PRICES = {
    "gpt-4o-mini": Price(Decimal("0.15"), Decimal("0.60")),
    "deepseek-chat": Price(Decimal("0.27"), Decimal("1.10")),
    "gpt-4o": Price(Decimal("2.50"), Decimal("10.00")),
    "odd-model": Price(Decimal("0.0123"), Decimal("7.777")),
}
TASKS = {
    "one-char": "x",
    "short": "Investigate the Norwegian hydrogen economy",
    "typical": "x" * 300,
    "over-subtask-cap": "Compare heat pumps and district heating. " * 15,
    "unicode": "Ærlig talt: hvorfor er 🚀 dyrt? " * 40,
}
MIN_OUTPUTS = (1, 64, 500)
OUTPUT_BOUNDS = {
    "default": None,
    "max_tokens": lambda agent: 6 * agent.max_tokens,
    "flat": lambda agent: 37,
}


def _agent(agent_id: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"id": agent_id, "role": role, "model": extra.pop("model", "gpt-4o-mini"), **extra}


def definitions() -> dict[str, dict[str, Any]]:
    """Every built-in template, the default team, and teams at the edges of each topology."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(BUILTIN.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        found[path.stem] = {k: v for k, v in data.items() if k not in ("name", "description")}
    found["default-one-model"] = default_definition(models=["gpt-4o-mini"])
    found["default-three-models"] = default_definition(
        models=["gpt-4o-mini", "deepseek-chat", "gpt-4o"], instructions="Sé breve. ✨"
    )
    for topology in ("hierarchical", "sequential", "parallel", "debate"):
        found[f"fake-{topology}"] = definition_dict(topology)
    found["hierarchical-63-workers"] = {
        "topology": "hierarchical",
        "limits": {"max_steps": 500, "max_parallel": 8},
        "agents": [
            _agent("boss", "manager", max_tokens=300),
            *(_agent(f"w{n}", "worker", replicas=r, max_tokens=40 + n)
              for n, r in enumerate((16, 16, 16, 15))),
        ],
    }  # fmt: skip
    found["hierarchical-slots-cut"] = {
        "topology": "hierarchical",
        "limits": {"max_steps": 4},
        "agents": [
            _agent("boss", "manager", model="odd-model"),
            _agent("w", "worker", replicas=5, max_tokens=3000, model="gpt-4o"),
        ],
    }
    found["debate-three-sides"] = {
        "topology": "debate",
        "instructions": "Débattez. " * 30,
        "limits": {"rounds": 3, "max_steps": 10},
        "agents": [
            _agent("d", "debater", replicas=3, max_tokens=700, model="deepseek-chat"),
            _agent("judge", "judge", max_tokens=20),
        ],
    }
    found["parallel-wide"] = {
        "topology": "parallel",
        "limits": {"max_steps": 9, "max_parallel": 2},
        "agents": [
            _agent("a", "worker", replicas=5, max_tokens=10),
            _agent("b", "worker", max_tokens=4000, model="odd-model"),
            _agent("merge", "aggregator", max_tokens=64),
        ],
    }
    found["sequential-mixed"] = {
        "topology": "sequential",
        "agents": [
            _agent("tiny", "drafter", max_tokens=10),
            _agent("mid", "editor", max_tokens=64, model="deepseek-chat"),
            _agent("big", "critic", max_tokens=5000, instructions="Ü" * 100, model="gpt-4o"),
            _agent("last", "summariser", max_tokens=65),
        ],
    }
    return found


def _money(value: Decimal) -> str:
    return format(value, "f")


def estimates() -> dict[str, Any]:
    recorded: dict[str, Any] = {}
    for name, data in definitions().items():
        definition = Definition.from_dict(data)
        for task_name, task in TASKS.items():
            expected, worst = estimate_cost(definition, task, PRICES)
            entry: dict[str, Any] = {"expected": _money(expected), "worst": _money(worst)}
            for least in MIN_OUTPUTS:
                entry[f"minimum@{least}"] = _money(minimum_cost(definition, task, PRICES, least))
            for bound_name, bound in OUTPUT_BOUNDS.items():
                floors = call_floors(definition, task, PRICES, 64, bound)
                entry[f"floors/{bound_name}"] = [[agent, _money(cost)] for agent, cost in floors]
            recorded[f"{name} | {task_name}"] = entry
    return recorded


RUN_DEFINITIONS = (
    "research-swarm-v1", "debate-swarm-v1", "pipeline-swarm-v1", "brainstorm-swarm-v1",
    "code-review-swarm-v1", "writing-swarm-v1", "default-three-models", "sequential-mixed",
    "parallel-wide", "hierarchical-slots-cut",
)  # fmt: skip


async def runs() -> dict[str, Any]:
    """Simulated runs at budgets from just above the floor to the worst case: how each ended
    and the max_tokens every call was started with."""
    found = definitions()
    recorded: dict[str, Any] = {}
    for name in RUN_DEFINITIONS:
        definition = Definition.from_dict(found[name])
        task = TASKS["typical"]
        least = minimum_cost(definition, task, PRICES, 64)
        expected, worst = estimate_cost(definition, task, PRICES)
        budgets = {
            "below-minimum": least * Decimal("0.9"),
            "minimum": least,
            "minimum+10%": least * Decimal("1.1"),
            "expected": expected,
            "worst": worst,
        }
        for budget_name, budget in budgets.items():
            spec = run_input(definition, budget=str(budget), task=task, prices=PRICES)
            assert spec.calls == QUICK_RETRIES
            result, log = await run(spec)
            started = [
                [event.agent_id, event.data.get("max_tokens")]
                for event in log.of_type("agent.started")
            ]
            recorded[f"{name} | {budget_name}"] = {
                "budget": _money(budget),
                "status": result.status,
                "error_code": result.error_code,
                "cost": _money(result.total_cost_usd),
                "started": started,
            }
    return recorded


def record() -> dict[str, Any]:
    return {"estimates": estimates(), "runs": asyncio.run(runs())}


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_estimates_floors_and_minimums_are_unchanged(golden):
    now = estimates()
    assert now.keys() == golden["estimates"].keys()
    for key, entry in now.items():
        assert entry == golden["estimates"][key], key


@pytest.mark.anyio
async def test_budget_clamping_and_refusal_of_runs_are_unchanged(golden):
    now = await runs()
    assert now.keys() == golden["runs"].keys()
    for key, entry in now.items():
        assert entry == golden["runs"][key], key


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
