"""The peer's graph for benchmark 9: manager -> 3 parallel workers -> writer, each node one
simulated 0.5 s call (sverm's shape in bench/b9_peer.py), served by `langgraph dev`."""

import asyncio
import operator
import os
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

LATENCY = float(os.environ.get("PEER_SIMULATED_LATENCY", "0.5"))
WORKERS = ("worker_1", "worker_2", "worker_3")


class State(TypedDict, total=False):
    task: str
    plan: str
    findings: Annotated[list[str], operator.add]
    report: str


async def manager(state: State) -> State:
    await asyncio.sleep(LATENCY)
    return {"plan": f"three angles on {state.get('task', '')}"}


def _worker(name: str):
    async def work(state: State) -> State:
        await asyncio.sleep(LATENCY)
        return {"findings": [f"{name}: findings on {state.get('plan', '')}"]}

    return work


async def writer(state: State) -> State:
    await asyncio.sleep(LATENCY)
    return {"report": "\n".join(state.get("findings", []))}


builder = StateGraph(State)
builder.add_node("manager", manager)
builder.add_node("writer", writer)
builder.add_edge(START, "manager")
for name in WORKERS:
    builder.add_node(name, _worker(name))
    builder.add_edge("manager", name)
builder.add_edge(list(WORKERS), "writer")
builder.add_edge("writer", END)
graph = builder.compile()
