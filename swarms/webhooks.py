"""Run webhooks: on a terminal status the run summary is POSTed to the run's `webhook_url`,
signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

- Secrets: one `whsec_…` per workspace (`WebhookSecret`), shown once by `webhook_secret_rotate`.
  They must be readable to sign, so they are stored Fernet-encrypted under a key derived from
  SECRET_KEY (SECRET_KEY_FALLBACKS still decrypt) and never logged. After a rotation the previous
  secret keeps signing, alongside the new one, until its grace period ends.
- SSRF guard (`webhook_url_check` at creation, `resolve_target` at send time): loopback, private,
  link-local, multicast, reserved, unspecified and IPv4-mapped IPv6 addresses are refused in every
  spelling, after DNS resolution, unless the host is in SVERM_WEBHOOK_ALLOWED_HOSTS. The request
  then connects to the very address that was checked (Host header and TLS SNI carry the name), so
  DNS rebinding cannot slip through. Redirects are never followed; proxies from the environment
  are ignored.
- Delivery: Standard Webhooks retry schedule with jitter; only 2xx is success, 410 disables the
  endpoint, 429/502/504 honour Retry-After. Every attempt is a `WebhookDelivery` row. Attempts run
  as a Celery task (`SVERM_EXECUTOR == "celery"`, delays by countdown) or on timer threads.
"""

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from ulid import ULID

from swarms.engine.events import TERMINAL_EVENT
from swarms.models import (
    TERMINAL_STATUSES,
    Run,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)

logger = logging.getLogger("sverm.webhooks")

SECRET_PREFIX = "whsec_"
JITTER = 0.1  # each delay is stretched by up to 10%
RETRY_AFTER_STATUSES = {429, 502, 504}
MAX_RETRY_AFTER_SECONDS = 86400
ROTATION_GRACE = timedelta(hours=24)
USER_AGENT = "sverm-webhooks/1"
_random = secrets.SystemRandom()


class WebhookRefused(ValueError):
    """A URL the SSRF guard will not send to."""


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------
def _fernet() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(hashlib.sha256(f"sverm-webhooks:{k}".encode()).digest())
            )
            for k in keys
        ]
    )


def _encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def _decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_secret_rotate(*, workspace_id: str, grace: timedelta = ROTATION_GRACE) -> str:
    """Create the workspace's secret, or replace it keeping the old one signing for `grace`.
    Returns the new secret: the only time it is shown."""
    secret, _row = webhook_secret_issue(workspace_id=workspace_id, grace=grace)
    return secret


def webhook_secret_issue(
    *, workspace_id: str, grace: timedelta = ROTATION_GRACE
) -> tuple[str, WebhookSecret]:
    """`webhook_secret_rotate`, also returning the row as saved (the API shows its dates beside
    the new secret, from the same write)."""
    secret = new_secret()
    now = timezone.now()
    with transaction.atomic():
        row = WebhookSecret.objects.select_for_update().filter(workspace_id=workspace_id).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = WebhookSecret.objects.create(
                        workspace_id=workspace_id, current_encrypted=_encrypt(secret)
                    )
                return secret, row
            except IntegrityError:
                # Created concurrently (another rotation, or a first delivery): rotate that one.
                row = WebhookSecret.objects.select_for_update().get(workspace_id=workspace_id)
        row.previous_encrypted = row.current_encrypted
        row.previous_expires_at = now + grace
        row.current_encrypted = _encrypt(secret)
        row.rotated_at = now
        row.save()
    return secret, row


@dataclass(frozen=True)
class WebhookSecretInfo:
    """What may be shown about a workspace's secret: never the secret itself."""

    workspace_id: str
    exists: bool
    created_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None


def webhook_secret_info(
    *, workspace_id: str, row: WebhookSecret | None = None
) -> WebhookSecretInfo:
    """The secret's dates; `previous_valid_until` only while the previous secret still signs."""
    if row is None:
        row = WebhookSecret.objects.filter(workspace_id=workspace_id).first()
    if row is None:
        return WebhookSecretInfo(workspace_id, False, None, None, None)
    previous_until = row.previous_expires_at
    if not row.previous_encrypted or previous_until is None or previous_until <= timezone.now():
        previous_until = None
    return WebhookSecretInfo(workspace_id, True, row.created_at, row.rotated_at, previous_until)


def signing_secrets(workspace_id: str) -> list[str]:
    """The secrets that sign now: the current one, then the previous one during its grace.
    A workspace without a secret gets one (read it by rotating)."""
    row = WebhookSecret.objects.filter(workspace_id=workspace_id).first()
    if row is None:
        webhook_secret_rotate(workspace_id=workspace_id)
        row = WebhookSecret.objects.get(workspace_id=workspace_id)
    found = [_decrypt(row.current_encrypted)]
    if (
        row.previous_encrypted
        and row.previous_expires_at
        and row.previous_expires_at > (timezone.now())
    ):
        try:
            found.append(_decrypt(row.previous_encrypted))
        except InvalidToken:
            logger.warning("previous webhook secret of %s cannot be decrypted", workspace_id)
    return found


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{msg_id}.{timestamp}.{body}` under the `whsec_` key."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# ---------------------------------------------------------------------------------------------
# SSRF guard
# ---------------------------------------------------------------------------------------------
def _allowed_hosts() -> set[str]:
    return {h.strip().lower().strip("[]") for h in settings.SVERM_WEBHOOK_ALLOWED_HOSTS if h}


def literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host means, in any spelling (`127.1`, `0x7f000001`, `2130706433`,
    `0177.0.0.1`, `::ffff:127.0.0.1`); None for a name."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public destination, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        for embedded in (ip.sixtofour, ip.teredo and ip.teredo[1]):
            if embedded is not None and address_refusal(embedded):
                return "an IPv6 address embedding a non-public IPv4 address"
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, reason in checks:
        if getattr(ip, attribute):
            return reason
    if not ip.is_global:
        return "not a public address"
    return None


def _split(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("Only http and https webhook URLs are allowed.")
    if not parts.hostname:
        raise WebhookRefused("The webhook URL has no host.")
    if parts.username or parts.password:
        raise WebhookRefused("The webhook URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("The webhook URL has an invalid port.") from None
    return parts, parts.hostname.lower().rstrip("."), port


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked address, and the name for Host and SNI."""

    url: str  # the URL with the checked IP as its host
    host_header: str
    server_name: str
    ip: str


def _check_addresses(host: str, addresses, allowed: bool) -> None:
    if allowed:
        return
    for ip in addresses:
        reason = address_refusal(ip)
        if reason:
            raise WebhookRefused(f"The webhook host {host} points to {reason} ({ip}).")


def resolve_target(url: str) -> Target:
    """Check `url` (after DNS resolution) and pin the address to connect to.
    Raises WebhookRefused for a refused destination, OSError when the name does not resolve."""
    parts, host, port = _split(url)
    allowed_hosts = _allowed_hosts()
    ip = literal_ip(host)
    allowed = host in allowed_hosts or (ip is not None and str(ip) in allowed_hosts)
    if ip is not None:
        addresses = [ip]
    else:
        if not allowed and (host == "localhost" or host.endswith(".localhost")):
            raise WebhookRefused(f"The webhook host {host} is a loopback name.")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OSError(f"{host} did not resolve")
    _check_addresses(host, addresses, allowed)
    chosen = addresses[0]
    ip_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    default_port = 443 if parts.scheme == "https" else 80
    netloc = ip_host if port == default_port else f"{ip_host}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == default_port else f"{name}:{port}"
    return Target(url=pinned, host_header=host_header, server_name=host, ip=str(chosen))


def webhook_url_check(url: str) -> None:
    """Creation-time check (literal addresses in every spelling, and names that resolve now);
    a name that does not resolve yet is accepted: it is checked again at send time."""
    if not url:
        return
    try:
        resolve_target(url)
    except WebhookRefused:
        raise
    except (OSError, UnicodeError):
        return


def webhook_url_validator(value: str) -> None:
    """Serializer/model field validator: refuses non-public webhook destinations."""
    try:
        webhook_url_check(value)
    except WebhookRefused as exc:
        raise ValidationError(str(exc), code="webhook_url_refused") from None


# ---------------------------------------------------------------------------------------------
# The message
# ---------------------------------------------------------------------------------------------
def event_type(run: Run) -> str:
    return TERMINAL_EVENT[run.status]


def run_payload(run: Run) -> dict:
    """The `/v1` status body plus `cost_usd`, the error, and a link to the result."""
    from swarms.serializers import V1RunStatusSerializer

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


def webhook_endpoint_enable(*, workspace_id: str, url: str) -> WebhookEndpoint:
    """Deliver to `url` again (it was disabled by a 410); a no-op for an enabled one."""
    return _endpoint_set_disabled(workspace_id, url, None)


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


def _post(target: Target, headers: dict[str, str], body: bytes) -> httpx.Response:
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
        return
    body = _encode(run_payload(run))
    headers = signed_headers(signing_secrets(run.workspace_id), message_id, int(time.time()), body)
    # Everything the message needs is read: the connection goes back to the process's pool
    # while the name resolves and the receiver answers (up to SVERM_WEBHOOK_TIMEOUT), so slow
    # receivers cannot starve the process's run writes; the outcome is recorded on one again.
    _release_connection()
    started = time.monotonic()
    try:
        target = resolve_target(url)
        response = _post(target, headers, body)
    except WebhookRefused as exc:
        record.error = f"Refused: {exc}"
        retry = False
    except (httpx.HTTPError, OSError, UnicodeError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
    else:
        record.status_code = response.status_code
        record.success = 200 <= response.status_code < 300
        if record.success:
            retry = False
            if manual:
                webhook_endpoint_enable(workspace_id=run.workspace_id, url=url)
        elif response.status_code == 410:
            retry = False
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
    # After commit, like every enqueue: a request's transaction that rolls back sends nothing.
    transaction.on_commit(partial(_enqueue, run.pk, message_id, attempt, 0, manual=True))
    return message_id


# Embedded mode: attempts on timer threads (lost if the process stops; Celery mode is durable).
_timers: set[threading.Timer] = set()
_timers_lock = threading.Lock()
_in_flight = 0


def _enqueue(run_id: str, message_id: str, attempt: int, delay: float, manual: bool = False):
    if settings.SVERM_EXECUTOR == "celery":
        from swarms.tasks import deliver_webhook_task

        deliver_webhook_task.apply_async(
            (run_id, message_id, attempt, manual), countdown=max(delay, 0)
        )
        return
    timer = threading.Timer(max(delay, 0), _attempt_in_thread)
    timer.args = (timer, run_id, message_id, attempt, manual)
    timer.daemon = True
    timer.name = f"sverm-webhook-{run_id[-6:]}-{attempt}"
    with _timers_lock:
        _timers.add(timer)
    timer.start()


def _attempt_in_thread(timer, run_id, message_id, attempt, manual) -> None:
    global _in_flight
    with _timers_lock:
        _in_flight += 1
        _timers.discard(timer)
    try:
        webhook_attempt(run_id, message_id, attempt, manual)
    except Exception:
        logger.exception("webhook attempt %s #%s for run %s crashed", message_id, attempt, run_id)
    finally:
        with _timers_lock:
            _in_flight -= 1
        close_old_connections()
        connection.close()


def pending_threads() -> int:
    """Timer attempts waiting or running in this process (tests wait for none)."""
    with _timers_lock:
        return len(_timers) + _in_flight


def cancel_pending() -> None:
    """Drop waiting timer attempts (tests, shutdown)."""
    with _timers_lock:
        timers = list(_timers)
        _timers.clear()
    for timer in timers:
        timer.cancel()
