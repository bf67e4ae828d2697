"""Delivery to a real HTTP receiver on 127.0.0.1: runs really execute, their terminal status is
POSTed, signed, retried on the (shortened) schedule, and every attempt is recorded."""

import json
import socket
import time

import pytest
from django.db import connections
from rest_framework.renderers import JSONRenderer

from swarms.models import Run, WebhookDelivery, WebhookEndpoint
from swarms.serializers import V1RunStatusSerializer
from swarms.webhooks import delivery as webhook_delivery
from swarms.webhooks import signing, ssrf
from tests.factories import create_run

from .conftest import attempts_settled, run_ended, verify, wait_deliveries


def test_a_finished_run_is_delivered_signed_after_two_failures(hooks, receiver, workspace):
    secret = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    receiver.script = [(500, {}), (503, {})]
    run = create_run(workspace, webhook_url=receiver.url("/hook?src=sverm"))
    requests = receiver.wait_for(3)
    deliveries = wait_deliveries(run, 3)
    run.refresh_from_db()
    assert run.status == "completed"

    assert [d.status_code for d in deliveries] == [500, 503, 200]
    assert [d.success for d in deliveries] == [False, False, True]
    assert [d.attempt for d in deliveries] == [1, 2, 3]
    assert len({d.message_id for d in deliveries}) == 1
    assert all(d.latency_ms is not None for d in deliveries)
    assert deliveries[0].error == "HTTP 500" and deliveries[2].error == ""
    assert deliveries[0].next_attempt_at is not None and deliveries[2].next_attempt_at is None

    for request in requests:
        assert request.path == "/hook?src=sverm"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == deliveries[0].message_id
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        assert verify(secret, request.headers, request.body)
    body = json.loads(requests[-1].body)
    status_body = json.loads(JSONRenderer().render(V1RunStatusSerializer(run).data))
    assert {key: body[key] for key in status_body} == status_body
    assert body["status"] == "completed" and body["type"] == "run.completed"
    assert body["cost_usd"] == body["current_cost_usd"]
    assert body["result_url"].endswith(f"/v1/swarms/{run.pk}/result")
    attempts_settled()
    assert len(receiver.requests) == 3  # nothing after the success


def test_no_database_connection_is_held_while_the_receiver_answers(hooks, receiver, workspace):
    """The attempt reads what it sends, gives its connection back (to the process's pool) before
    the POST, and takes one again to record the outcome: a receiver that is slow for up to
    SVERM_WEBHOOK_TIMEOUT starves no one of a connection."""
    if connections["default"].vendor == "sqlite":
        pytest.skip("the suite's in-memory SQLite database lives as long as its one connection")
    run = create_run(workspace)  # no webhook_url
    deadline = time.monotonic() + 20
    while not Run.objects.get(pk=run.pk).is_terminal:
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.01)
    Run.objects.filter(pk=run.pk).update(webhook_url=receiver.url())
    sender = connections["default"]  # this thread's, which sends below
    assert sender.connection is not None
    held_while_answering = []

    def slow_receiver():
        held_while_answering.append(sender.connection is not None)
        time.sleep(0.2)  # slow on purpose: the test is about what is held meanwhile

    receiver.while_answering = slow_receiver
    webhook_delivery.webhook_attempt(run.pk, "msg_connectionless", 1, manual=True)
    assert held_while_answering == [False]
    [delivery] = WebhookDelivery.objects.filter(run=run)  # recorded on a connection again
    assert delivery.success and delivery.status_code == 200 and delivery.latency_ms >= 200


def test_attempts_stop_at_the_end_of_the_schedule(hooks, receiver, workspace):
    hooks.SVERM_WEBHOOK_RETRY_SCHEDULE = [0, 0.02, 0.02]
    receiver.script = [(500, {})] * 10
    run = create_run(workspace, webhook_url=receiver.url())
    deliveries = wait_deliveries(run, 3)
    attempts_settled()
    assert len(receiver.requests) == 3
    assert WebhookDelivery.objects.filter(run=run).count() == 3
    assert deliveries[-1].next_attempt_at is None


def test_410_disables_the_endpoint(hooks, receiver, workspace):
    receiver.script = [(410, {})]
    url = receiver.url("/gone")
    first = create_run(workspace, webhook_url=url)
    [delivery] = wait_deliveries(first, 1)
    assert delivery.status_code == 410 and not delivery.success
    attempts_settled()
    assert len(receiver.requests) == 1  # not retried
    endpoint = WebhookEndpoint.objects.get(workspace=workspace, url=url)
    assert endpoint.disabled_at is not None

    second = create_run(workspace, webhook_url=url, task="Another task entirely")
    [skipped] = wait_deliveries(second, 1)
    assert skipped.status_code is None and "disabled" in skipped.error
    assert len(receiver.requests) == 1

    # A manual redelivery still goes, and a 2xx re-enables the endpoint.
    message_id = webhook_delivery.webhook_redeliver(run=Run.objects.get(pk=second.pk))
    receiver.wait_for(2)
    rows = wait_deliveries(second, 2)
    assert rows[-1].manual and rows[-1].success and rows[-1].message_id == message_id
    assert rows[-1].attempt == 2
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is None


def test_retry_after_is_honoured(hooks, receiver, workspace):
    receiver.script = [(429, {"Retry-After": "1"}), (502, {"Retry-After": "1"})]
    run = create_run(workspace, webhook_url=receiver.url())
    requests = receiver.wait_for(3)
    assert requests[1].at - requests[0].at >= 0.95
    assert requests[2].at - requests[1].at >= 0.95
    assert [d.status_code for d in wait_deliveries(run, 3)] == [429, 502, 200]


def test_retry_after_is_ignored_for_other_statuses(hooks, receiver, workspace):
    receiver.script = [(500, {"Retry-After": "5"})]
    run = create_run(workspace, webhook_url=receiver.url())
    requests = receiver.wait_for(2, timeout=3)
    assert requests[1].at - requests[0].at < 2
    wait_deliveries(run, 2)


def test_redirects_are_not_followed(hooks, receiver, workspace):
    receiver.script = [(302, {"Location": receiver.url("/elsewhere")})]
    run = create_run(workspace, webhook_url=receiver.url("/hook"))
    deliveries = wait_deliveries(run, 2)
    assert [d.status_code for d in deliveries] == [302, 200]
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]


def test_rotation_sends_both_signatures(hooks, receiver, workspace):
    old = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    new = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    run = create_run(workspace, webhook_url=receiver.url())
    [request] = receiver.wait_for(1)
    wait_deliveries(run, 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify(old, request.headers, request.body)
    assert verify(new, request.headers, request.body)


def test_connects_to_the_checked_address_with_the_name_as_host(
    hooks, receiver, workspace, monkeypatch
):
    hooks.SVERM_WEBHOOK_ALLOWED_HOSTS = ["hooks.test"]
    calls = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", resolve)
    run = create_run(workspace, webhook_url=f"http://hooks.test:{receiver.port}/named")
    [request] = receiver.wait_for(1)
    wait_deliveries(run, 1)
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    # The name is resolved once, by the guard; the client only ever sees the checked IP.
    assert calls[0] == "hooks.test" and set(calls[1:]) <= {"127.0.0.1"}


def test_a_refused_address_is_recorded_and_not_retried(hooks, receiver, workspace):
    hooks.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    run = create_run(workspace, webhook_url=receiver.url())
    [delivery] = wait_deliveries(run, 1)
    assert delivery.error.startswith("Refused:")
    attempts_settled()
    assert receiver.requests == []
    assert WebhookDelivery.objects.filter(run=run).count() == 1


def test_a_failed_run_is_delivered_too(hooks, receiver, workspace):
    from swarms.services.lifecycle import run_fail

    run = create_run(workspace, webhook_url=receiver.url())
    wait_deliveries(run, 1)
    Run.objects.filter(pk=run.pk).update(status="running")
    run_fail(run_id=run.pk, code="internal_error", message="boom")
    requests = receiver.wait_for(2)
    body = json.loads(requests[-1].body)
    assert body["status"] == "failed" and body["type"] == "run.failed"
    assert body["error"] == {"code": "internal_error", "message": "boom"}


def test_a_run_without_webhook_sends_nothing(hooks, receiver, workspace):
    run = create_run(workspace)  # no webhook_url
    run_ended(run)
    attempts_settled()
    run.refresh_from_db()
    assert run.is_terminal
    assert not WebhookDelivery.objects.filter(run=run).exists()


def test_celery_mode_schedules_with_countdown(settings, monkeypatch):
    from sverm.celery import app

    settings.SVERM_EXECUTOR = "celery"
    sent = []

    def send_task(name, args, countdown):
        sent.append((name, args, countdown))

    monkeypatch.setattr(app, "send_task", send_task)
    webhook_delivery._enqueue("run_x", "msg_y", 3, 300.5)
    assert sent == [("swarms.deliver_webhook", ("run_x", "msg_y", 3, False), 300.5)]
