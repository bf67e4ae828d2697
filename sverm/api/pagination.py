"""The paginators: keyset (cursor) pages for every `/api` list, `{"data": [...], "pageInfo": {...}}`
(seeking in sverm.api.keyset), offset pages for `/v1` (seed 002) and event pages by sequence number.
"""

from django.db.models import Model, Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from sverm.api.errors import InvalidRequest
from sverm.api.keyset import (
    decode_cursor,
    encode_cursor,
    order_by_expressions,
    ordering_keys,
    rows_exist,
    rows_fetch,
    seek_parts,
)


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
        keys = ordering_keys(request, view, queryset)
        backward = [key.reversed() for key in keys]
        model = queryset.model
        self.total = queryset.count()
        self.has_next = self.has_previous = False
        if before:
            values = decode_cursor(before, keys, model, "before")
            parts = seek_parts(backward, values, model)
            rows = rows_fetch(queryset, parts, order_by_expressions(backward, model), limit + 1)
            self.has_previous = len(rows) > limit
            rows = rows[:limit][::-1]
            self.has_next = rows_exist(queryset, seek_parts(keys, values, model, inclusive=True))
        else:
            parts = [Q()]
            if after:
                values = decode_cursor(after, keys, model, "after")
                parts = seek_parts(keys, values, model)
                # The cursor's own row (if still there) belongs to the previous page.
                self.has_previous = rows_exist(
                    queryset, seek_parts(backward, values, model, inclusive=True)
                )
            rows = rows_fetch(queryset, parts, order_by_expressions(keys, model), limit + 1)
            self.has_next = len(rows) > limit
            rows = rows[:limit]
        self.start_cursor = encode_cursor(rows[0], keys) if rows else None
        self.end_cursor = encode_cursor(rows[-1], keys) if rows else None
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
        page_info_fields = ["total", "hasNextPage", "hasPreviousPage", "startCursor", "endCursor"]
        return {
            "type": "object",
            "required": ["data", "pageInfo"],
            "properties": {
                "data": schema,
                "pageInfo": {
                    "type": "object",
                    "required": page_info_fields,
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
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
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


class OffsetPagination(BasePagination):
    """`/v1` lists, as seed 000: `{"items", "total", "limit", "offset"}` with `?limit&offset`."""

    default_limit = 50
    max_limit = 1000

    def _int(self, request, name: str, default: int, low: int, high: int) -> int:
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise InvalidRequest(f"`{name}` must be an integer from {low} to {high}.")
        return value

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list[Model]:
        self.limit = self._int(request, "limit", self.default_limit, 1, self.max_limit)
        self.offset = self._int(request, "offset", 0, 0, 10**9)
        self.total = queryset.count()
        return list(queryset[self.offset : self.offset + self.limit])

    def get_paginated_response(self, data) -> Response:
        return Response(
            {"items": data, "total": self.total, "limit": self.limit, "offset": self.offset}
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["items", "total", "limit", "offset"],
            "properties": {
                "items": schema,
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {"name": "limit", "in": "query", "required": False,
             "description": "Page size (1-1000, default 50).",
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "required": False,
             "description": "Rows to skip.", "schema": {"type": "integer", "minimum": 0}},
        ]  # fmt: skip


class SeqPagination(KeysetPagination):
    """Run events: keyset by their sequence number, so `after=<seq>` resumes exactly where a
    reader (or a reconnecting stream) stopped. Cursors are the seq numbers themselves."""

    def _seq(self, request, name: str) -> int | None:
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return None
        if not raw.isdigit():
            raise InvalidRequest(f"`{name}` must be an event sequence number (0 or more).")
        return int(raw)

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list[Model]:
        limit = self._limit(request)
        after, before = self._seq(request, "after"), self._seq(request, "before")
        if after is not None and before is not None:
            raise InvalidRequest("Pass either `after` or `before`, not both.")
        self.total = queryset.count()
        if before is not None:
            rows = list(queryset.filter(seq__lt=before).order_by("-seq")[: limit + 1])
            self.has_previous = len(rows) > limit
            rows = rows[:limit][::-1]
            self.has_next = queryset.filter(seq__gte=before).exists()
        else:
            start = after or 0
            rows = list(queryset.filter(seq__gt=start).order_by("seq")[: limit + 1])
            self.has_next = len(rows) > limit
            rows = rows[:limit]
            self.has_previous = start > 0 and queryset.filter(seq__lte=start).exists()
        self.start_cursor = str(rows[0].seq) if rows else None
        self.end_cursor = str(rows[-1].seq) if rows else None
        return rows

    def get_schema_operation_parameters(self, view) -> list[dict]:
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] in ("after", "before"):
                side = "above" if param["name"] == "after" else "below"
                param["description"] = f"Events with seq {side} this number."
                param["schema"] = {"type": "integer", "minimum": 0}
        return params
