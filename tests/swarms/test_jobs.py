"""Jobs (swarms/jobs.py): sent to Celery by name, with what an unreachable broker means for each,
or run in this process by the handler registered for them."""

import logging
import threading
import time

import pytest
from kombu.exceptions import OperationalError as BrokerUnreachable

from sverm.api.errors import ServiceUnavailable
from sverm.celery import app
from swarms import jobs


@pytest.fixture
def celery_mode(settings, monkeypatch):
    settings.SVERM_EXECUTOR = "celery"
    sent = []

    def send_task(name, args, countdown):
        sent.append((name, args, countdown))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent


@pytest.fixture
def broker_down(settings, monkeypatch):
    settings.SVERM_EXECUTOR = "celery"

    def send_task(name, args, countdown):
        raise BrokerUnreachable("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", send_task)


@pytest.fixture
def handlers(monkeypatch):
    """A registry of its own for the test: the app's handlers are back afterwards."""
    monkeypatch.setattr(jobs, "_handlers", {})
    monkeypatch.setattr(jobs, "_cancellers", [])


def test_every_job_sent_by_name_is_a_registered_task_and_has_a_local_handler():
    app.loader.import_default_modules()
    for name in (jobs.EXECUTE_RUN, jobs.DELIVER_WEBHOOK):
        assert name in app.tasks
        assert name in jobs._handlers


def test_celery_mode_sends_the_job_by_name(celery_mode):
    jobs.enqueue(jobs.EXECUTE_RUN, "run_1", True)
    jobs.enqueue(jobs.DELIVER_WEBHOOK, "run_1", "msg_1", 2, False, countdown=30)
    assert celery_mode == [
        ("swarms.execute_run", ("run_1", True), None),
        ("swarms.deliver_webhook", ("run_1", "msg_1", 2, False), 30),
    ]


def test_a_run_start_the_broker_did_not_take_is_left_to_the_reaper(broker_down, caplog):
    with caplog.at_level(logging.WARNING, logger="sverm.jobs"):
        jobs.enqueue(jobs.EXECUTE_RUN, "run_1")
    [record] = caplog.records
    assert "run_1" in record.getMessage() and "the reaper sends it again" in record.getMessage()


def test_any_other_job_the_broker_did_not_take_answers_503_with_retry_after(broker_down):
    with pytest.raises(ServiceUnavailable) as refused:
        jobs.enqueue(jobs.DELIVER_WEBHOOK, "run_1", "msg_1", 1, True)
    assert refused.value.headers == {"Retry-After": str(jobs.BROKER_RETRY_AFTER_SECONDS)}


def test_an_inline_handler_is_called_in_the_callers_thread(settings, handlers):
    settings.SVERM_EXECUTOR = "thread"
    calls = []
    jobs.register_local(
        "tests.inline", lambda *args: calls.append((args, threading.get_ident())), inline=True
    )
    jobs.enqueue("tests.inline", "a", 1)
    assert calls == [(("a", 1), threading.get_ident())]
    assert jobs.pending_threads() == 0


def test_a_handler_runs_on_a_timer_thread_after_its_countdown(settings, handlers, caplog):
    settings.SVERM_EXECUTOR = "thread"
    calls = []
    done = threading.Event()

    def handler(*args):
        calls.append((args, threading.current_thread().name))
        done.set()
        raise RuntimeError("boom")  # logged; the thread ends cleanly

    jobs.register_local("tests.later", handler)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="sverm.jobs"):
        jobs.enqueue("tests.later", "x", countdown=0.1)
        assert jobs.pending_threads() == 1
        assert done.wait(5)
        deadline = time.monotonic() + 5
        while jobs.pending_threads() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert time.monotonic() - started >= 0.1
    assert calls == [(("x",), "sverm-job-later")]
    assert jobs.pending_threads() == 0
    assert "job tests.later('x',) crashed" in caplog.text


def test_waiting_timer_jobs_can_be_dropped(settings, handlers):
    settings.SVERM_EXECUTOR = "thread"
    calls = []
    jobs.register_local("tests.dropped", calls.append)
    jobs.enqueue("tests.dropped", "x", countdown=60)
    assert jobs.pending_threads() == 1
    jobs.cancel_pending()
    assert jobs.pending_threads() == 0
    assert calls == []


def test_a_job_without_a_handler_is_refused(settings, handlers):
    settings.SVERM_EXECUTOR = "thread"
    with pytest.raises(LookupError, match=r"tests\.nobody"):
        jobs.enqueue("tests.nobody")


def test_a_cancel_reaches_every_registered_canceller_once(handlers):
    cancelled = []
    jobs.register_canceller(cancelled.append)
    jobs.register_canceller(cancelled.append)
    jobs.cancel_local("run_1")
    assert cancelled == ["run_1"]
