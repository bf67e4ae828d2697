"""The embedded mode's database backend: Django's SQLite one, with each write transaction of this
process taking a per-database lock before SQLite's.

SQLite lets one transaction write at a time (every transaction here is `BEGIN IMMEDIATE`, so it
takes the write lock when it starts). A connection that finds the lock taken does not queue: its
busy handler sleeps and tries again, sleeping longer each time, up to 100 ms between tries. With a
hundred runs being created and recorded at once (benchmark 9), most transactions found the lock
taken, and it sat free while they slept. Inside one process a thread lock queues them instead:
the next transaction starts as soon as the last one ends. A write statement outside a transaction
(an `UPDATE` in autocommit mode, such as a run's claim) is a transaction of its own and queues on
the same lock.

The lock only orders this process's transactions: SQLite's own lock still guards the file against
other processes (a `manage.py` command), which wait on its busy handler as before, so correctness
never rests on it. Waiting for it is bounded by the same `timeout` option as SQLite's, and fails
the same way ("database is locked"). An in-memory database (the tests') is left alone: its shared
cache locks tables, not the file, and fails at once rather than waiting.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
DEFAULT_TIMEOUT_SECONDS = 5.0  # sqlite3.connect's
# What a statement that writes starts with (the ORM's; a CTE or DDL outside a transaction, rare
# here, still waits in SQLite's busy handler as before).
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def write_lock(name: str) -> threading.Lock:
    """This process's write lock of the database file `name`."""
    with _locks_guard:
        return _locks.setdefault(str(name), threading.Lock())


class LockingCursorWrapper(base.SQLiteCursorWrapper):
    """A cursor whose write statements outside a transaction take the write lock while they run."""

    database: "DatabaseWrapper"

    def execute(self, query, params=None):
        with self.database.autocommit_write(query):
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self.database.autocommit_write(query):
            return super().executemany(query, param_list)


class DatabaseWrapper(base.DatabaseWrapper):
    holds_write_lock = False

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=LockingCursorWrapper)
        cursor.database = self
        return cursor

    def write_lock(self) -> threading.Lock:
        return write_lock(self.settings_dict["NAME"])

    def _acquire_write_lock(self) -> None:
        timeout = self.settings_dict["OPTIONS"].get("timeout", DEFAULT_TIMEOUT_SECONDS)
        if not self.write_lock().acquire(timeout=timeout):
            raise OperationalError("database is locked")

    @contextmanager
    def autocommit_write(self, query: str) -> Iterator[None]:
        """Holds the write lock around `query` when it writes outside a transaction."""
        alone = not (self.holds_write_lock or self.in_atomic_block or self.is_in_memory_db())
        if not (alone and query.lstrip()[:7].upper().startswith(WRITE_VERBS)):
            yield
            return
        self._acquire_write_lock()
        try:
            yield
        finally:
            self.write_lock().release()

    def _start_transaction_under_autocommit(self):
        if self.is_in_memory_db():
            return super()._start_transaction_under_autocommit()
        self._acquire_write_lock()
        self.holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            self.write_lock().release()

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
