"""Stopping a run from outside it: a token any thread may cancel, and a poller that cancels it
when the run's cancel request shows up elsewhere (a database row)."""

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable


class CancelToken:
    """A cancellation request for one run; `cancel()` is safe from any thread.

    The flag is a threading.Event and each waiting loop is woken with call_soon_threadsafe, so a
    watcher thread (or a Celery signal handler) can cancel a run executing on another loop.
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.reason: tuple[str, str] | None = None

    def fail(self, code: str, message: str) -> None:
        """Stop the run like cancel(), but end it `failed` with this error (a time limit)."""
        with self._lock:
            if self.reason is None and not self._flag.is_set():
                self.reason = (code, message)
        self.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._flag.set()
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody to wake
                loop.call_soon_threadsafe(event.set)

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    async def wait(self) -> None:
        """Return once cancel() has been called."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._flag.is_set():
                return
            self._waiters.append(waiter)
        try:
            await event.wait()
        finally:
            with self._lock:
                self._waiters.remove(waiter)


async def cancel_when(
    requested: Callable[[], Awaitable[bool]], token: CancelToken, *, interval: float = 0.5
) -> None:
    """Poll `requested()` every `interval` seconds and cancel `token` once it returns True.

    For executors where the cancel request arrives elsewhere (an API process writing the run's
    status): run this as a task beside `run_swarm` and cancel the task when the run returns.
    """
    while not token.cancelled:
        if await requested():
            token.cancel()
            return
        await asyncio.sleep(interval)
