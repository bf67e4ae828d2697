"""`Idempotency-Key` on run-creating POSTs (the IETF Idempotency-Key draft, Stripe's semantics).

A POST carrying the header is recorded per workspace and endpoint. A retry with the same key and
the same body within 24 h gets the stored first response again (same status and body, with
`Idempotent-Replayed: true`) and starts nothing; the same key with a different body is 422
`idempotency_key_reused`; a retry while the first request is still being processed is 409
`idempotency_key_in_flight`.

Only deterministic outcomes are stored: 2xx responses and the 4xx errors in STORED_ERROR_CODES
(e.g. 422 `budget_exceeded`). Any other error or exception deletes the record, so the client can
retry with the same key. A successful response is stored in the same transaction as the work
that produced it (the run row), so a stored record and its run commit together.
"""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from sverm.api.errors import (
    ApplicationError,
    InvalidRequest,
    error_body,
    is_v1_path,
)
from sverm.api.middleware import current_request_id, error_mark
from sverm.models import IdempotencyRecord, IdempotencyStatus

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Printable ASCII (space to tilde), 1-255 characters.
_VALID_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
# Errors whose outcome depends only on the request (and prices), so a retry would get them too.
STORED_ERROR_CODES = frozenset({"budget_exceeded"})
# How often a request re-tries to claim a key whose record vanished or expired under it.
_CLAIM_ATTEMPTS = 3

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Makes the POST safe to retry (1-255 printable ASCII characters, per workspace, "
    "kept 24 h). The same key and body return the stored first response (same run, status and "
    "body, with `Idempotent-Replayed: true`) and start nothing new; the same key with another "
    "body is 422 `idempotency_key_reused`; while the first request is still processing, 409 "
    "`idempotency_key_in_flight`.",
)
IDEMPOTENCY_409 = (
    "Conflicts with the resource's current state, or `idempotency_key_in_flight`: a request with "
    "the same Idempotency-Key is still being processed (see Retry-After)."
)
IDEMPOTENCY_422 = (
    "Refused, e.g. `budget_exceeded` (the cheapest completing path is above the budget) or "
    "`idempotency_key_reused` (the Idempotency-Key was used with another request body)."
)


class IdempotencyKeyReused(ApplicationError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"
    default_message = "This Idempotency-Key was already used with a different request."


class IdempotencyKeyInFlight(ApplicationError):
    status, code, title = 409, "idempotency_key_in_flight", "Idempotency key in flight"
    default_message = (
        "A request with this Idempotency-Key is still being processed; retry once it finished."
    )

    def __init__(self, message: str | None = None, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": "1"})
        super().__init__(message, **kwargs)


def idempotency_key(request: Request) -> str | None:
    """The request's key, or None without the header; 400 for an empty, too long or non-printable
    ASCII key. The draft's quoted form (`"abc"`) is the same key as `abc`."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not _VALID_KEY.fullmatch(key):
        raise InvalidRequest(
            f"The {HEADER} header must be 1-{MAX_KEY_LENGTH} printable ASCII characters."
        )
    return key


def endpoint_of(request: Request) -> str:
    """Method and route name: the same key on two endpoints names two records."""
    match = request._request.resolver_match
    route = match.view_name if match is not None else request.path
    return f"{request.method} {route}"[:200]


def request_fingerprint(request: Request, data: Any = None) -> str:
    """SHA-256 of the method, path and canonical JSON of the parsed body, or of `data`: what a
    view that takes more than a JSON body (an upload, settings in the query) says the request
    asks for."""
    data = request.data if data is None else data
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def live_records():
    """Records that still count: expired ones are treated as absent."""
    return IdempotencyRecord.objects.filter(expires_at__gt=timezone.now())


def _rendered(data: Any) -> Any:
    """`data` as JSON types, exactly as the renderer would send it."""
    return json.loads(JSONRenderer().render(data))


def _replay(request: Request, record) -> HttpResponse:
    body = record.response_body
    if record.response_status >= 400:
        # The stored error, under this request's correlation id (the X-Request-ID header).
        body = json.loads(json.dumps(body))
        error = body.get("error") if is_v1_path(request.path) else body
        if isinstance(error, dict) and "correlation_id" in error:
            error["correlation_id"] = current_request_id()
        content_type = (
            "application/json" if is_v1_path(request.path) else "application/problem+json"
        )
        response = HttpResponse(
            json.dumps(body), status=record.response_status, content_type=content_type
        )
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or ""
            error_mark(response, str(error.get("code", "-")), str(message))
    else:
        response = Response(body, status=record.response_status)
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(*, workspace_id: str, key: str, endpoint: str, fingerprint: str):
    """(record, None) when this request now owns the key, (None, response) for a replay;
    raises 422 for another body under the key and 409 while its first request is in flight."""
    lookup = {"workspace_id": workspace_id, "key": key, "endpoint": endpoint}
    for _attempt in range(_CLAIM_ATTEMPTS):
        now = timezone.now()
        try:
            # Its own transaction: concurrent requests see the claim as soon as it is made.
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    **lookup,
                    request_fingerprint=fingerprint,
                    status=IdempotencyStatus.PROCESSING,
                    created_at=now,
                    expires_at=now + TTL,
                )
            return record, None
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(**lookup).first()
        if existing is None:
            continue  # the first request failed and released the key meanwhile
        if existing.expires_at <= now:
            IdempotencyRecord.objects.filter(pk=existing.pk, expires_at__lte=now).delete()
            continue
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if existing.status == IdempotencyStatus.PROCESSING:
            raise IdempotencyKeyInFlight()
        return None, existing
    raise IdempotencyKeyInFlight()


def idempotent(
    request: Request,
    *,
    workspace_id: str,
    produce: Callable[[], Response],
    fingerprint_data: Any = None,
) -> HttpResponse:
    """`produce()`'s response, made idempotent under the request's `Idempotency-Key` in
    `workspace_id` (call it once the body is validated and the caller's role checked). Without
    the header this is just `produce()`. `fingerprint_data`: what the request asks for, when it
    is more than its parsed body (see `request_fingerprint`)."""
    key = idempotency_key(request)
    if key is None:
        return produce()
    record, existing = _claim(
        workspace_id=workspace_id,
        key=key,
        endpoint=endpoint_of(request),
        fingerprint=request_fingerprint(request, fingerprint_data),
    )
    if existing is not None:
        return _replay(request, existing)
    mine = IdempotencyRecord.objects.filter(pk=record.pk)
    try:
        with transaction.atomic():
            response = produce()
            if 200 <= response.status_code < 300:
                mine.update(
                    status=IdempotencyStatus.DONE,
                    response_status=response.status_code,
                    response_body=_rendered(response.data),
                )
            else:
                mine.delete()
    except ApplicationError as error:
        if 400 <= error.status < 500 and error.code in STORED_ERROR_CODES:
            body, _content_type = error_body(request.path, error)
            mine.update(
                status=IdempotencyStatus.DONE,
                response_status=error.status,
                response_body=_rendered(body),
            )
        else:
            mine.delete()
        raise
    except BaseException:
        mine.delete()
        raise
    return response
