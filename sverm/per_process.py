"""One object per process for what owns a thread (the run host, the stream publisher): a forked
worker starts its own, since threads do not survive fork, and one whose thread died is made
again."""

import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Threaded(Protocol):
    @property
    def alive(self) -> bool: ...


T = TypeVar("T", bound=Threaded)


class PerProcess(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: dict[int, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        pid = os.getpid()
        with self._lock:
            made = self._made.get(pid)
            if made is None or not made.alive:
                made = self._made[pid] = self._factory()
            return made
