"""How tests wait: for a condition, checked until a deadline, never for a fixed while. A test that
must show something did NOT happen first waits for a sign the system has done its work (a later
event, a drained queue, no attempt pending) and then looks."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

DEADLINE_SECONDS = 20.0
POLL_SECONDS = 0.01


def wait_for(
    condition: Callable[[], T],
    what: str = "the condition",
    *,
    timeout: float = DEADLINE_SECONDS,
    interval: float = POLL_SECONDS,
) -> T:
    """`condition()`'s first truthy value, checked every `interval` seconds; the test fails,
    saying `what` did not happen, once `timeout` seconds have passed without one."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(interval)
    return value


async def wait_for_async(
    condition: Callable[[], T | Awaitable[T]],
    what: str = "the condition",
    *,
    timeout: float = DEADLINE_SECONDS,
    interval: float = POLL_SECONDS,
) -> T:
    """`wait_for` on an event loop, which it leaves free between checks; `condition` may be a
    coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(interval)
