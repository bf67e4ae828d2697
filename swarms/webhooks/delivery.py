"""Webhook delivery: on a terminal status the run summary is POSTed, signed (signing.py), to the
run's `webhook_url`, checked by the SSRF guard (ssrf.py) at send time. Standard Webhooks retry
schedule with jitter; only 2xx is success, 410 disables the endpoint, 429/502/504 honour
Retry-After. Redirects are never followed; proxies from the environment are ignored. Every
attempt is a `WebhookDelivery` row, and each is a job (swarms/jobs.py: a Celery task, delays by
countdown, or a timer thread in the embedded mode).
"""

import hashlib
import secrets
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from ulid import ULID

from audit.services import audit_record
from sverm import metrics
from swarms import jobs
from swarms.engine.events import TERMINAL_EVENT
from swarms.models import TERMINAL_STATUSES, Run, WebhookDelivery, WebhookEndpoint
from swarms.serializers import V1RunStatusSerializer
from swarms.webhooks.signing import signed_headers, signing_secrets
from swarms.webhooks.ssrf import Target, WebhookRefused, resolve_target

if TYPE_CHECKING:
    import httpx

JITTER = 0.1  # each delay is stretched by up to 10%
RETRY_AFTER_STATUSES = {429, 502, 504}
MAX_RETRY_AFTER_SECONDS = 86400
_random = secrets.SystemRandom()


# ---------------------------------------------------------------------------------------------
# The message
# ---------------------------------------------------------------------------------------------
def event_type(run: Run) -> str:
    return TERMINAL_EVENT[run.status]


def run_payload(run: Run) -> dict:
    """The `/v1` status body plus `cost_usd`, the error, and a link to the result."""
    body = dict(V1RunStatusSerializer(run).data)
    base = getattr(settings, "SVERM_PUBLIC_URL", "").rstrip("/")
    body.update(
        type=event_type(run),
        cost_usd=body["current_cost_usd"],
        completed_at=run.completed_at.isoformat() if run.completed_at else None,
        error=({"code": run.error_code, "message": run.error_message} if run.error_code else None),
        result_url=f"{base}/v1/swarms/{run.pk}/result",
    )
    return body


def _encode(payload: dict) -> bytes:
    """The body as the API renders it (money as JSON numbers, compact)."""
    return JSONRenderer().render(payload)


# ---------------------------------------------------------------------------------------------
# Sending and scheduling
# ---------------------------------------------------------------------------------------------
def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def endpoint_disabled(workspace_id: str, url: str) -> bool:
    return WebhookEndpoint.objects.filter(
        workspace_id=workspace_id, url_hash=_url_hash(url), disabled_at__isnull=False
    ).exists()


def _endpoint_set_disabled(workspace_id: str, url: str, reason: str | None) -> WebhookEndpoint:
    endpoint, _ = WebhookEndpoint.objects.get_or_create(
        workspace_id=workspace_id, url_hash=_url_hash(url), defaults={"url": url}
    )
    endpoint.disabled_at = timezone.now() if reason else None
    endpoint.disabled_reason = reason or ""
    endpoint.save(update_fields=["disabled_at", "disabled_reason"])
    return endpoint


@transaction.atomic
def webhook_endpoint_enable(*, workspace_id: str, url: str) -> WebhookEndpoint:
    """Deliver to `url` again (it was disabled by a 410); a no-op for an enabled one (which
    records nothing)."""
    current = (
        WebhookEndpoint.objects.select_for_update()
        .filter(workspace_id=workspace_id, url_hash=_url_hash(url))
        .first()
    )
    endpoint = _endpoint_set_disabled(workspace_id, url, None)
    if current is not None and current.disabled_at is not None:
        audit_record(
            action="webhook_endpoint.enable", workspace_id=workspace_id,
            target_type="webhook_endpoint", target_id=endpoint.pk,
            before={"disabled_at": current.disabled_at,
                    "disabled_reason": current.disabled_reason},
            after={"disabled_at": None, "disabled_reason": ""},
        )  # fmt: skip
    return endpoint


def retry_schedule() -> list[float]:
    """The delay before each attempt (settings: Standard Webhooks' schedule by default)."""
    return [float(delay) for delay in settings.SVERM_WEBHOOK_RETRY_SCHEDULE]


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds, capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _post(target: Target, headers: dict[str, str], body: bytes) -> "httpx.Response":
    # Imported by the first delivery: a process that sends none (a web worker, mostly) does
    # not hold the client (~7 MiB).
    import httpx

    timeout = float(settings.SVERM_WEBHOOK_TIMEOUT)
    extensions = {"sni_hostname": target.server_name} if target.url.startswith("https") else {}
    with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        return client.post(
            target.url,
            content=body,
            headers={**headers, "host": target.host_header},
            extensions=extensions,
        )


def _release_connection() -> None:
    """Give this thread's database connection back (to the pool; closed without one), unless a
    caller's transaction is open on it."""
    if not connection.in_atomic_block:
        connection.close()


def webhook_attempt(run_id: str, message_id: str, attempt: int, manual: bool = False) -> None:
    """One delivery attempt, recorded; schedules the next one when it should be retried."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or not run.webhook_url or run.status not in TERMINAL_STATUSES:
        return
    url = run.webhook_url
    record = WebhookDelivery(
        run=run, workspace_id=run.workspace_id, message_id=message_id, attempt=attempt,
        manual=manual, url=url, event_type=event_type(run),
    )  # fmt: skip
    retry, delay_floor = True, 0.0
    if not manual and endpoint_disabled(run.workspace_id, url):
        record.error = "The endpoint is disabled (it answered 410 Gone)."
        record.save()
        metrics.webhook_delivery_observe("endpoint_disabled")
        return
    body = _encode(run_payload(run))
    headers = signed_headers(signing_secrets(run.workspace_id), message_id, int(time.time()), body)
    # Everything the message needs is read: the connection goes back to the process's pool
    # while the name resolves and the receiver answers (up to SVERM_WEBHOOK_TIMEOUT), so slow
    # receivers cannot starve the process's run writes; the outcome is recorded on one again.
    _release_connection()
    started = time.monotonic()
    import httpx

    try:
        target = resolve_target(url)
        response = _post(target, headers, body)
    except WebhookRefused as exc:
        record.error = f"Refused: {exc}"
        retry, outcome = False, "refused"
    except (httpx.HTTPError, OSError, UnicodeError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
        outcome = "network_error"
    else:
        record.status_code = response.status_code
        record.success = 200 <= response.status_code < 300
        outcome = "http_error"
        if record.success:
            retry, outcome = False, "delivered"
            if manual:
                webhook_endpoint_enable(workspace_id=run.workspace_id, url=url)
        elif response.status_code == 410:
            retry, outcome = False, "gone"
            record.error = "410 Gone: the endpoint is disabled."
            _endpoint_set_disabled(run.workspace_id, url, "Answered 410 Gone.")
        else:
            record.error = f"HTTP {response.status_code}"
            if response.status_code in RETRY_AFTER_STATUSES:
                delay_floor = retry_after_seconds(response.headers.get("retry-after")) or 0.0
    record.latency_ms = round((time.monotonic() - started) * 1000)
    schedule = retry_schedule()
    delay = None
    if retry and not manual and attempt < len(schedule):
        delay = max(schedule[attempt] * _random.uniform(1.0, 1.0 + JITTER), delay_floor)
        record.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    record.save()
    metrics.webhook_delivery_observe(outcome)
    if delay is not None:
        _enqueue(run_id, message_id, attempt + 1, delay)


def webhook_schedule(run_id: str) -> str | None:
    """Start delivering a terminal run's webhook (call after commit); returns the message id."""
    run = Run.objects.filter(pk=run_id).only("webhook_url", "status").first()
    if run is None or not run.webhook_url or run.status not in TERMINAL_STATUSES:
        return None
    message_id = f"msg_{str(ULID()).lower()}"
    delay = retry_schedule()[0]
    _enqueue(run_id, message_id, 1, delay)
    return message_id


def webhook_redeliver(*, run: Run) -> str:
    """A manual, one-off redelivery of the run's last message (the same webhook-id), sent even
    to a disabled endpoint; a 2xx re-enables it."""
    if not run.webhook_url:
        raise ValueError(f"Run {run.pk} has no webhook URL.")
    if run.status not in TERMINAL_STATUSES:
        raise ValueError(f"Run {run.pk} is not finished.")
    last = WebhookDelivery.objects.filter(run=run).order_by("-created_at", "-id").first()
    message_id = last.message_id if last else f"msg_{str(ULID()).lower()}"
    attempt = WebhookDelivery.objects.filter(run=run, message_id=message_id).count() + 1
    with transaction.atomic():
        audit_record(action="run.webhook_redeliver", workspace_id=run.workspace_id,
                     target_type="run", target_id=run.pk,
                     after={"message_id": message_id, "attempt": attempt})  # fmt: skip
        # After commit, like every enqueue: a request's transaction that rolls back sends
        # nothing.
        transaction.on_commit(partial(_enqueue, run.pk, message_id, attempt, 0, manual=True))
    return message_id


def _enqueue(run_id: str, message_id: str, attempt: int, delay: float, manual: bool = False):
    jobs.enqueue(jobs.DELIVER_WEBHOOK, run_id, message_id, attempt, manual, countdown=delay)
