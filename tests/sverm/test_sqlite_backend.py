"""The embedded mode's SQLite backend: this process's write transactions queue on a lock (so the
next starts when the last ends, rather than when SQLite's busy handler next wakes up), the lock is
always given back; commits wait for the disk (synchronous=FULL) unless told not to."""

import threading

import pytest
from django.db import OperationalError, connection
from django.db.backends.sqlite3.base import DatabaseWrapper as StockWrapper

from sverm.sqlite_backend.base import DatabaseWrapper, write_lock

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend")


def _settings(path, timeout: float) -> dict:
    settings = {
        **connection.settings_dict,
        "NAME": str(path),
        "ENGINE": "sverm.sqlite_backend",
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": timeout,
        },
    }
    return settings


@pytest.fixture
def file_db(tmp_path, django_db_blocker):
    """Connections to a database file of their own (not the tests' in-memory database)."""
    made = []

    def connect(wrapper=DatabaseWrapper, timeout: float = 5.0):
        db = wrapper(_settings(tmp_path / "lock.sqlite3", timeout), alias=f"lock{len(made)}")
        db.inc_thread_sharing()  # the tests hand some to a second thread
        made.append(db)
        return db

    with django_db_blocker.unblock():
        first = connect()
        with first.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS t (n integer)")
        yield connect
        for db in made:
            db.close()
            db.dec_thread_sharing()


def _begin_traced(db, seen: list[str], holder_done: threading.Event) -> None:
    """Every statement `db` starts, tagged with whether the holder had ended by then."""
    db.ensure_connection()
    db.connection.set_trace_callback(
        lambda sql: seen.append(f"{sql.split()[0]} {'after' if holder_done.is_set() else 'during'}")
    )


@pytest.mark.parametrize("wrapper", [DatabaseWrapper, StockWrapper], ids=["ours", "stock"])
def test_a_second_writer_waits_for_the_first_to_end_before_it_asks_sqlite(file_db, wrapper):
    """Ours: the second transaction's BEGIN reaches SQLite only after the first one committed (it
    queued on the lock). Django's stock backend sends it at once, into SQLite's busy handler,
    which sleeps and retries; that is what this backend replaces."""
    holder, waiter = file_db(wrapper), file_db(wrapper)
    seen: list[str] = []
    ended = threading.Event()
    _begin_traced(waiter, seen, ended)

    def write() -> None:
        with waiter.cursor() as cursor:
            waiter.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
            cursor.execute("INSERT INTO t VALUES (2)")
            waiter.commit()
            waiter.set_autocommit(True)
        waiter.close()

    holder.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    with holder.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1)")
    second = threading.Thread(target=write)
    second.start()
    second.join(0.3)  # the waiter is blocked: on our lock, or in SQLite's busy handler
    assert second.is_alive()
    ended.set()
    holder.commit()
    holder.set_autocommit(True)
    second.join(5)
    assert not second.is_alive()
    begins = [line for line in seen if line.startswith("BEGIN")]
    if wrapper is DatabaseWrapper:
        assert begins == ["BEGIN after"]
    else:
        assert begins == ["BEGIN during"]
    with holder.cursor() as cursor:
        cursor.execute("SELECT n FROM t ORDER BY n")
        assert [n for (n,) in cursor.fetchall()] == [1, 2]


def _hold_then(db, end: str) -> None:
    db.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    with db.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1)")
    assert db.holds_write_lock and write_lock(db.settings_dict["NAME"]).locked()
    if end == "commit":
        db.commit()
    elif end == "rollback":
        db.rollback()
    else:
        db.close()
    if end != "close":
        db.set_autocommit(True)


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_lock_is_given_back_however_the_transaction_ends(file_db, end):
    db = file_db()
    _hold_then(db, end)
    assert not db.holds_write_lock
    assert not write_lock(db.settings_dict["NAME"]).locked()
    other = file_db()
    other.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    other.rollback()
    other.set_autocommit(True)


def test_a_writer_that_waits_past_the_timeout_fails_as_sqlite_would(file_db):
    holder, waiter = file_db(), file_db(timeout=0.1)
    holder.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    failed: list[Exception] = []

    def write() -> None:
        try:
            waiter.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
        except OperationalError as error:
            failed.append(error)
        waiter.close()

    second = threading.Thread(target=write)
    second.start()
    second.join(5)
    holder.rollback()
    holder.set_autocommit(True)
    assert [str(error) for error in failed] == ["database is locked"]
    assert not waiter.holds_write_lock


def test_the_embedded_database_waits_for_the_disk_at_each_commit_by_default(settings):
    """synchronous=FULL: a recorded charge survives an OS crash (SVERM_SQLITE_SYNCHRONOUS)."""
    assert settings.SQLITE_SYNCHRONOUS == "FULL"
    assert "PRAGMA synchronous=FULL" in settings.DATABASES["default"]["OPTIONS"]["init_command"]


def test_the_init_command_sets_synchronous(file_db):
    """The settings' init_command reaches SQLite: NORMAL (1), not SQLite's FULL (2)."""
    db = file_db()
    with db.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize("wrapper", [DatabaseWrapper, StockWrapper], ids=["ours", "stock"])
def test_a_write_outside_a_transaction_queues_on_the_lock_too(file_db, wrapper):
    """An autocommit UPDATE (a run's claim) is a transaction of its own: ours sends it to SQLite
    once the transaction holding the lock has ended; the stock backend sends it into SQLite's
    busy handler at once. Reads are not held back."""
    holder, waiter = file_db(wrapper), file_db(wrapper)
    seen: list[str] = []
    ended = threading.Event()
    _begin_traced(waiter, seen, ended)
    with waiter.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")  # a read while nobody writes
    holder.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    with holder.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1)")
    read: list[int] = []

    def write() -> None:
        with waiter.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM t")
            read.append(cursor.fetchone()[0])
            cursor.execute("UPDATE t SET n = n + 1")
        waiter.close()

    second = threading.Thread(target=write)
    second.start()
    second.join(0.3)
    assert second.is_alive() and read == [0]  # the read went through; the write waits
    ended.set()
    holder.commit()
    holder.set_autocommit(True)
    second.join(5)
    assert not second.is_alive()
    updates = [line for line in seen if line.startswith("UPDATE")]
    assert updates == (["UPDATE after"] if wrapper is DatabaseWrapper else ["UPDATE during"])
    assert not write_lock(holder.settings_dict["NAME"]).locked()
    with holder.cursor() as cursor:
        cursor.execute("SELECT n FROM t")
        assert cursor.fetchall() == [(2,)]
