"""PerProcess: one object per process for what owns a thread, made again once its thread died."""

import os

from sverm.per_process import PerProcess


class Owner:
    def __init__(self) -> None:
        self.alive = True


def test_one_object_per_process_until_its_thread_dies(monkeypatch):
    owners = PerProcess(Owner)
    first = owners.get()
    assert owners.get() is first
    first.alive = False
    second = owners.get()
    assert second is not first and second.alive
    # A forked child (another pid) gets its own, and leaves the parent's alone.
    monkeypatch.setattr(os, "getpid", lambda: -1)
    child = owners.get()
    assert child is not second
    monkeypatch.undo()
    assert owners.get() is second
