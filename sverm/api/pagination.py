"""Keyset (cursor) pagination for every `/api` list: `{"data": [...], "pageInfo": {...}}`.

The cursor is an opaque token holding the ordering key values of a row plus a fingerprint of the
ordering it was made under, so a cursor cannot be replayed against another sort. The ordering always
ends with the primary key, which makes it total: no row is skipped or repeated between pages.
"""

import base64
import binascii
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Model, Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from sverm.api.errors import InvalidRequest

Ordering = list[tuple[str, bool]]  # (field path, descending)


def ordering_of(queryset: QuerySet) -> Ordering:
    """The queryset's ordering as (field, descending) pairs, made total with the primary key."""
    raw = list(queryset.query.order_by) or list(queryset.model._meta.ordering)
    ordering: Ordering = []
    for item in raw:
        if not isinstance(item, str):
            raise TypeError("keyset pagination needs plain field orderings")
        descending = item.startswith("-")
        name = item.lstrip("-")
        name = "pk" if name == queryset.model._meta.pk.name else name
        ordering.append((name, descending))
    if not any(name == "pk" for name, _ in ordering):
        ordering.append(("pk", bool(ordering and ordering[-1][1])))
    return ordering


def _fingerprint(ordering: Ordering) -> str:
    return ",".join(("-" if desc else "") + name for name, desc in ordering)


def _model_field(model: type[Model], path: str):
    if path == "pk":
        return model._meta.pk
    field = None
    for part in path.split("__"):
        field = model._meta.get_field(part)
        if field.is_relation and field.related_model is not None:
            model = field.related_model
    return field


def _row_value(row: Model, path: str) -> Any:
    value: Any = row
    for part in path.split("__"):
        value = getattr(value, part)
        if isinstance(value, Model):
            value = value.pk
    return value


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def encode_cursor(row: Model, ordering: Ordering) -> str:
    payload = {
        "o": _fingerprint(ordering),
        "v": [_encode_value(_row_value(row, n)) for n, _ in ordering],
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, ordering: Ordering, model: type[Model], param: str) -> list[Any]:
    bad = InvalidRequest(f"The `{param}` cursor is not valid; use a cursor from pageInfo.")
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad from None
    if not isinstance(payload, dict) or not isinstance(payload.get("v"), list):
        raise bad
    if payload.get("o") != _fingerprint(ordering) or len(payload["v"]) != len(ordering):
        raise InvalidRequest(
            f"The `{param}` cursor was made for another ordering; start again without it."
        )
    values = []
    for (name, _), raw_value in zip(ordering, payload["v"], strict=True):
        try:
            values.append(_model_field(model, name).to_python(raw_value))
        except (ValidationError, FieldDoesNotExist, TypeError, ValueError):
            raise bad from None
    return values


def _beyond(ordering: Ordering, values: list[Any], forward: bool) -> Q:
    """Rows strictly after (forward) or strictly before the position `values` in `ordering`."""
    condition = Q(pk__in=[])
    for index, (name, descending) in enumerate(ordering):
        # Moving forward through an ascending column, or backward through a descending one.
        greater = descending != forward
        step = Q(**{f"{name}__{'gt' if greater else 'lt'}": values[index]})
        for prev in range(index):
            step &= Q(**{ordering[prev][0]: values[prev]})
        condition |= step
    return condition


def _at(ordering: Ordering, values: list[Any]) -> Q:
    return Q(**{name: value for (name, _), value in zip(ordering, values, strict=True)})


class KeysetPagination(BasePagination):
    default_limit = 100
    max_limit = 100

    def _limit(self, request) -> int:
        raw = request.query_params.get("limit")
        if raw in (None, ""):
            return self.default_limit
        try:
            limit = int(raw)
        except ValueError:
            raise InvalidRequest(
                f"`limit` must be an integer from 1 to {self.max_limit}."
            ) from None
        if not 1 <= limit <= self.max_limit:
            raise InvalidRequest(f"`limit` must be an integer from 1 to {self.max_limit}.")
        return limit

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list[Model]:
        limit = self._limit(request)
        after = request.query_params.get("after")
        before = request.query_params.get("before")
        if after and before:
            raise InvalidRequest("Pass either `after` or `before`, not both.")
        ordering = ordering_of(queryset)
        model = queryset.model
        order_by = [("-" if desc else "") + name for name, desc in ordering]
        reverse_by = [("" if desc else "-") + name for name, desc in ordering]
        self.total = queryset.count()
        self.has_next = self.has_previous = False
        if before:
            values = decode_cursor(before, ordering, model, "before")
            rows = list(
                queryset.filter(_beyond(ordering, values, False)).order_by(*reverse_by)[: limit + 1]
            )
            self.has_previous = len(rows) > limit
            rows = rows[:limit][::-1]
            self.has_next = queryset.filter(
                _beyond(ordering, values, True) | _at(ordering, values)
            ).exists()
        else:
            base = queryset.order_by(*order_by)
            if after:
                values = decode_cursor(after, ordering, model, "after")
                base = base.filter(_beyond(ordering, values, True))
                self.has_previous = queryset.filter(
                    _beyond(ordering, values, False) | _at(ordering, values)
                ).exists()
            rows = list(base[: limit + 1])
            self.has_next = len(rows) > limit
            rows = rows[:limit]
        self.start_cursor = encode_cursor(rows[0], ordering) if rows else None
        self.end_cursor = encode_cursor(rows[-1], ordering) if rows else None
        return rows

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "data": data,
                "pageInfo": {
                    "total": self.total,
                    "hasNextPage": self.has_next,
                    "hasPreviousPage": self.has_previous,
                    "startCursor": self.start_cursor,
                    "endCursor": self.end_cursor,
                },
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["data", "pageInfo"],
            "properties": {
                "data": schema,
                "pageInfo": {
                    "type": "object",
                    "required": [
                        "total",
                        "hasNextPage",
                        "hasPreviousPage",
                        "startCursor",
                        "endCursor",
                    ],
                    "properties": {
                        "total": {"type": "integer"},
                        "hasNextPage": {"type": "boolean"},
                        "hasPreviousPage": {"type": "boolean"},
                        "startCursor": {"type": "string", "nullable": True},
                        "endCursor": {"type": "string", "nullable": True},
                    },
                },
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        def param(name: str, description: str, schema: dict) -> dict:
            return {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": schema,
            }

        return [
            param(
                "limit",
                "Page size (1-100, default 100).",
                {"type": "integer", "minimum": 1, "maximum": 100},
            ),
            param(
                "after",
                "Keyset cursor: return the page after this row (next page).",
                {"type": "string"},
            ),
            param(
                "before",
                "Keyset cursor: return the page before this row (prev page).",
                {"type": "string"},
            ),
        ]
