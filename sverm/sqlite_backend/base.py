"""The embedded mode's database backend: Django's SQLite one, with each write transaction of this
process taking a per-database lock before SQLite's.

SQLite lets one transaction write at a time (every transaction here is `BEGIN IMMEDIATE`, so it
takes the write lock when it starts). A connection that finds the lock taken does not queue: its
busy handler sleeps and tries again, sleeping longer each time, up to 100 ms between tries. With a
hundred runs being created and recorded at once (benchmark 9), most transactions found the lock
taken, and it sat free while they slept. Inside one process a thread lock queues them instead:
the next transaction starts as soon as the last one ends.

The lock only orders this process's transactions: SQLite's own lock still guards the file against
other processes (a `manage.py` command), which wait on its busy handler as before, so correctness
never rests on it. Waiting for it is bounded by the same `timeout` option as SQLite's, and fails
the same way ("database is locked"). An in-memory database (the tests') is left alone: its shared
cache locks tables, not the file, and fails at once rather than waiting.
"""

import threading

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
DEFAULT_TIMEOUT_SECONDS = 5.0  # sqlite3.connect's


def write_lock(name: str) -> threading.Lock:
    """This process's write lock of the database file `name`."""
    with _locks_guard:
        return _locks.setdefault(str(name), threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    holds_write_lock = False

    def _start_transaction_under_autocommit(self):
        if self.is_in_memory_db():
            return super()._start_transaction_under_autocommit()
        timeout = self.settings_dict["OPTIONS"].get("timeout", DEFAULT_TIMEOUT_SECONDS)
        if not write_lock(self.settings_dict["NAME"]).acquire(timeout=timeout):
            raise OperationalError("database is locked")
        self.holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            write_lock(self.settings_dict["NAME"]).release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:  # SQLite rolls back a transaction left open on a closed connection
            self._release_write_lock()
