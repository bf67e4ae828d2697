"""The list engine shared by every `/api` list: a declared field map per resource, the JSON
`filter` (AND/OR/NOT, per-field operators, relation traversal), the JSON `orderBy` (with the four
nulls variants) and `ids`. Every bad input is an `InvalidRequest` naming where it went wrong.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import F, Q, Value
from django.db.models.functions import Left, Right, StrIndex
from django.db.models.lookups import Exact, GreaterThan
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.filters import BaseFilterBackend

from sverm.api.errors import InvalidRequest

MAX_FILTER_DEPTH = 6
MAX_FILTER_CONDITIONS = 50
MAX_IN_VALUES = 100
MAX_PARAM_LENGTH = 8192
MAX_TEXT_VALUE_LENGTH = 1000
MAX_IDS = 100
MAX_ORDER_KEYS = 5

STRING, INTEGER, DATETIME, ENUM, BOOLEAN = "string", "integer", "datetime", "enum", "boolean"
_INT64 = -(2**63)

_COMPARISON = {"eq", "neq", "in", "notIn", "lt", "lte", "gt", "gte", "isNull"}
OPERATORS = {
    STRING: _COMPARISON | {"contains", "startsWith", "endsWith", "mode"},
    INTEGER: _COMPARISON,
    DATETIME: _COMPARISON,
    ENUM: {"eq", "neq", "in", "notIn", "isNull"},
    BOOLEAN: {"eq", "neq", "isNull"},
}
_LOOKUPS = {
    "eq": "exact",
    "lt": "lt",
    "lte": "lte",
    "gt": "gt",
    "gte": "gte",
    "in": "in",
    "contains": "contains",
    "startsWith": "startswith",
    "endsWith": "endswith",
}
_INSENSITIVE = {"exact": "iexact", "contains": "icontains", "startswith": "istartswith",
                "endswith": "iendswith"}  # fmt: skip
DIRECTIONS = {
    # direction -> (descending, nulls_first). Plain asc/desc treat null as the largest value.
    "asc": (False, False),
    "desc": (True, True),
    "asc_nulls_first": (False, True),
    "asc_nulls_last": (False, False),
    "desc_nulls_first": (True, True),
    "desc_nulls_last": (True, False),
}


@dataclass(frozen=True)
class FieldSpec:
    path: str  # ORM path, e.g. "created_at" or "user__email"
    type: str = STRING
    nullable: bool = False
    choices: tuple[str, ...] = ()
    sortable: bool = True


@dataclass(frozen=True)
class ListSpec:
    """What a resource's list exposes: its fields (API name -> FieldSpec), the relations a filter
    may traverse (API name -> (ORM path, ListSpec)), and the default orderBy."""

    name: str
    fields: dict[str, FieldSpec]
    relations: dict[str, tuple[str, "ListSpec"]] = field(default_factory=dict)
    default_order: tuple[tuple[str, str], ...] = (("createdAt", "desc"),)
    id_field: str = "id"


@dataclass(frozen=True)
class OrderKey:
    path: str
    descending: bool
    nulls_first: bool

    def reversed(self) -> "OrderKey":
        return OrderKey(self.path, not self.descending, not self.nulls_first)


# ---------------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------------
def parse_json_param(raw: str, param: str) -> Any:
    if len(raw) > MAX_PARAM_LENGTH:
        raise InvalidRequest(f"`{param}` is longer than {MAX_PARAM_LENGTH} characters.")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"`{param}` is not valid JSON: {exc}.") from None
    except RecursionError:
        raise InvalidRequest(f"`{param}` nests too deeply.") from None


def check_text(value: str, where: str) -> str:
    """Text the databases can store and compare: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise InvalidRequest(f"{where}: must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{where}: must be valid Unicode (no lone surrogates).") from None
    return value


def _coerce(value: Any, spec: FieldSpec, where: str) -> Any:
    if spec.type == STRING:
        if not isinstance(value, str):
            raise InvalidRequest(f"{where}: expected a string.")
        if len(value) > MAX_TEXT_VALUE_LENGTH:
            raise InvalidRequest(f"{where}: longer than {MAX_TEXT_VALUE_LENGTH} characters.")
        return check_text(value, where)
    if spec.type == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int) or not _INT64 <= value < -_INT64:
            raise InvalidRequest(f"{where}: expected an integer (64-bit).")
        return value
    if spec.type == BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidRequest(f"{where}: expected true or false.")
        return value
    if spec.type == ENUM:
        if not isinstance(value, str) or value not in spec.choices:
            raise InvalidRequest(f"{where}: expected one of {', '.join(spec.choices)}.")
        return value
    if spec.type == DATETIME:
        bad = InvalidRequest(f"{where}: expected an ISO 8601 date-time.")
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
            if parsed is None:
                raise bad
            return as_utc(parsed)
        except (ValueError, OverflowError):
            raise bad from None
    raise AssertionError(f"unknown field type {spec.type}")


def as_utc(value: datetime) -> datetime:
    """An aware date-time in UTC, as databases store it (PostgreSQL refuses offsets past
    ±15:59, which ISO 8601 and Python allow). ValueError or OverflowError when it cannot be
    (years 1 and 9999 may not convert)."""
    value = make_aware(value) if is_naive(value) else value
    return value.astimezone(UTC)


class UTCIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return as_utc(parsed)
        except (ValueError, OverflowError):
            raise ValidationError(f"{value} is out of range.", code="invalid") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, its value converted to UTC before it reaches SQL."""

    field_class = UTCIsoDateTimeField


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _case_sensitive(path: str, lookup: str, value: str) -> Q:
    """contains/startsWith/endsWith that respect case on every database: SQLite's LIKE, which
    Django uses for them, ignores ASCII case. Nulls never match (and stay in negations)."""
    column = F(path)
    if not value:
        return Q(**{f"{path}__isnull": False})
    if lookup == "contains":
        expression = GreaterThan(StrIndex(column, Value(value)), 0)
    elif lookup == "startswith":
        expression = Exact(Left(column, len(value)), Value(value))
    else:
        expression = Exact(Right(column, len(value)), Value(value))
    return Q(expression) & Q(**{f"{path}__isnull": False})


class _FilterCompiler:
    def __init__(self):
        self.conditions = 0

    def node(self, node: Any, spec: ListSpec, prefix: str, where: str, depth: int) -> Q:
        if depth > MAX_FILTER_DEPTH:
            raise InvalidRequest(f"{where}: the filter nests deeper than {MAX_FILTER_DEPTH}.")
        if not isinstance(node, dict):
            raise InvalidRequest(f"{where}: expected an object ({spec.name}Filter).")
        result = Q()
        for key, value in node.items():
            at = f"{where}.{key}"
            if key in ("AND", "OR"):
                if not isinstance(value, list) or not value:
                    raise InvalidRequest(f"{at}: expected a non-empty array of filters.")
                parts = [
                    self.node(item, spec, prefix, f"{at}[{i}]", depth + 1)
                    for i, item in enumerate(value)
                ]
                combined = parts[0]
                for part in parts[1:]:
                    combined = combined & part if key == "AND" else combined | part
                result &= combined
            elif key == "NOT":
                result &= ~self.node(value, spec, prefix, at, depth + 1)
            elif key in spec.relations:
                path, related = spec.relations[key]
                if value is None:
                    self._count(at)
                    result &= Q(**{f"{prefix}{path}__isnull": True})
                else:
                    result &= self.node(value, related, f"{prefix}{path}__", at, depth + 1)
            elif key in spec.fields:
                result &= self.field(value, spec.fields[key], prefix, at)
            else:
                known = sorted([*spec.fields, *spec.relations, "AND", "OR", "NOT"])
                raise InvalidRequest(
                    f"{at}: unknown field {key!r} for {spec.name}Filter; known: {', '.join(known)}."
                )
        return result

    def _count(self, where: str) -> None:
        self.conditions += 1
        if self.conditions > MAX_FILTER_CONDITIONS:
            raise InvalidRequest(
                f"{where}: the filter has more than {MAX_FILTER_CONDITIONS} conditions."
            )

    def field(self, ops: Any, spec: FieldSpec, prefix: str, where: str) -> Q:
        if not isinstance(ops, dict) or not ops:
            raise InvalidRequest(f'{where}: expected an object of operators, e.g. {{"eq": …}}.')
        allowed = OPERATORS[spec.type]
        unknown = sorted(set(ops) - allowed)
        if unknown:
            raise InvalidRequest(
                f"{where}: unknown operator {unknown[0]!r} for {_article(spec.type)} field; "
                f"allowed: {', '.join(sorted(allowed))}."
            )
        if set(ops) == {"mode"}:
            raise InvalidRequest(f"{where}: `mode` needs an operator beside it, e.g. contains.")
        mode = ops.get("mode", "default")
        if mode not in ("default", "insensitive"):
            raise InvalidRequest(f'{where}.mode: expected "default" or "insensitive".')
        insensitive = mode == "insensitive"
        path = prefix + spec.path
        result = Q()
        for op, value in ops.items():
            if op == "mode":
                continue
            at = f"{where}.{op}"
            self._count(at)
            if op == "isNull":
                if not isinstance(value, bool):
                    raise InvalidRequest(f"{at}: expected true or false.")
                result &= Q(**{f"{path}__isnull": value})
                continue
            if op in ("in", "notIn"):
                if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
                    raise InvalidRequest(
                        f"{at}: expected an array of at most {MAX_IN_VALUES} values."
                    )
                values = [_coerce(v, spec, f"{at}[{i}]") for i, v in enumerate(value)]
                if insensitive:
                    raise InvalidRequest(
                        f'{at}: mode "insensitive" applies to eq, neq, contains, '
                        "startsWith and endsWith."
                    )
                condition = Q(**{f"{path}__in": values})
                result &= condition if op == "in" else ~condition
                continue
            if value is None and op in ("eq", "neq"):
                condition = Q(**{f"{path}__isnull": True})
                result &= condition if op == "eq" else ~condition
                continue
            coerced = _coerce(value, spec, at)
            lookup = _LOOKUPS["eq" if op == "neq" else op]
            if insensitive:
                if lookup not in _INSENSITIVE:
                    raise InvalidRequest(
                        f'{at}: mode "insensitive" applies to eq, neq, contains, '
                        "startsWith and endsWith."
                    )
                lookup = _INSENSITIVE[lookup]
            if lookup in ("contains", "startswith", "endswith"):
                condition = _case_sensitive(path, lookup, coerced)
            else:
                condition = Q(**{f"{path}__{lookup}": coerced})
            result &= ~condition if op == "neq" else condition
        return result


def compile_filter(raw: str, spec: ListSpec) -> Q:
    """`filter` JSON -> Q. `neq`, `notIn` and `NOT` keep rows whose value is null."""
    return _FilterCompiler().node(parse_json_param(raw, "filter"), spec, "", "filter", 1)


def parse_order_by(raw: str | None, spec: ListSpec) -> list[OrderKey]:
    """`orderBy` JSON -> order keys, made total by the id (in the last key's direction)."""
    if raw in (None, ""):
        items: list[Any] = [dict([pair]) for pair in spec.default_order]
    else:
        items = parse_json_param(raw, "orderBy")
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list) or not items:
            raise InvalidRequest("`orderBy` must be a non-empty array of {field: direction}.")
        if len(items) > MAX_ORDER_KEYS:
            raise InvalidRequest(f"`orderBy` takes at most {MAX_ORDER_KEYS} keys.")
    keys: list[OrderKey] = []
    seen = set()
    sortable = sorted(name for name, f in spec.fields.items() if f.sortable)
    for index, item in enumerate(items):
        where = f"orderBy[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise InvalidRequest(f"{where}: expected one {{field: direction}} pair.")
        ((name, direction),) = item.items()
        if name not in spec.fields or not spec.fields[name].sortable:
            raise InvalidRequest(
                f"{where}: cannot order by {name!r}; sortable: {', '.join(sortable)}."
            )
        if not isinstance(direction, str) or direction not in DIRECTIONS:
            raise InvalidRequest(
                f"{where}: unknown direction {direction!r}; use {', '.join(DIRECTIONS)}."
            )
        if name in seen:
            raise InvalidRequest(f"{where}: {name!r} appears twice.")
        seen.add(name)
        descending, nulls_first = DIRECTIONS[direction]
        keys.append(OrderKey(spec.fields[name].path, descending, nulls_first))
    id_path = spec.fields[spec.id_field].path
    if not any(key.path == id_path for key in keys):
        keys.append(OrderKey(id_path, keys[-1].descending, False))
    return keys


def parse_ids(raw: str) -> list[str]:
    ids = [check_text(item.strip(), "ids") for item in raw.split(",") if item.strip()]
    if not ids:
        raise InvalidRequest("`ids` must list at least one id, comma-separated.")
    if len(ids) > MAX_IDS:
        raise InvalidRequest(f"`ids` takes at most {MAX_IDS} ids.")
    return ids


# ---------------------------------------------------------------------------------------------
# DRF filter backend: `filter` and `ids` for any view that declares `list_spec`
# ---------------------------------------------------------------------------------------------
def _describe(spec: ListSpec) -> str:
    fields = ", ".join(f"`{name}` ({f.type})" for name, f in spec.fields.items())
    relations = ", ".join(
        f"`{name}` -> {rel.name}Filter" for name, (_, rel) in spec.relations.items()
    )
    return f"Fields: {fields}." + (f" Relations: {relations}." if relations else "")


class ListFilterBackend(BaseFilterBackend):
    def filter_queryset(self, request, queryset, view):
        spec: ListSpec | None = getattr(view, "list_spec", None)
        if spec is None or getattr(view, "action", None) != "list":
            return queryset
        raw_filter = request.query_params.get("filter")
        if raw_filter not in (None, ""):
            queryset = queryset.filter(compile_filter(raw_filter, spec))
        raw_ids = request.query_params.get("ids")
        if raw_ids is not None:
            id_field = spec.fields[spec.id_field]
            ids: list = parse_ids(raw_ids)
            if id_field.type == INTEGER:
                if not all(item.isascii() and item.isdigit() and len(item) < 19 for item in ids):
                    raise InvalidRequest(f"`ids` must be {spec.id_field} numbers here.")
                ids = [int(item) for item in ids]
            queryset = queryset.filter(**{f"{id_field.path}__in": ids})
        return queryset

    def get_schema_operation_parameters(self, view):
        spec: ListSpec | None = getattr(view, "list_spec", None)
        if spec is None:
            return []
        sortable = ", ".join(f"`{n}`" for n, f in spec.fields.items() if f.sortable)
        return [
            {
                "name": "ids",
                "in": "query",
                "required": False,
                "description": "Comma-separated list of IDs. Narrows results to these IDs within "
                "the caller's accessible scope (does not bypass access checks).",
                "schema": {"type": "string"},
            },
            {
                "name": "filter",
                "in": "query",
                "required": False,
                "description": (
                    f"Nested filter expression (`{spec.name}Filter`), JSON-encoded: `AND`/`OR` "
                    "(arrays), `NOT` (object), and per field an object of operators `eq`, `neq`, "
                    "`in`, `notIn`, `lt`, `lte`, `gt`, `gte`, `contains`, `startsWith`, "
                    '`endsWith`, `isNull`, with `"mode": "insensitive"` for text. '
                    f"{_describe(spec)} Example: "
                    '`{"OR": [{"name": {"contains": "bot", "mode": "insensitive"}}, '
                    '{"NOT": {"createdAt": {"lt": "2026-01-01T00:00:00Z"}}}]}`.'
                ),
                "schema": {"type": "string"},
            },
            {
                "name": "orderBy",
                "in": "query",
                "required": False,
                "description": (
                    f"Multi-key sort (`{spec.name}OrderBy[]`), JSON-encoded array of "
                    "`{field: direction}` applied in order. Directions: `asc`, `desc`, "
                    "`asc_nulls_first`, `asc_nulls_last`, `desc_nulls_first`, `desc_nulls_last`. "
                    f"Sortable: {sortable}. Ties are broken by id."
                ),
                "schema": {"type": "string"},
            },
        ]


class ShorthandFilterBackend(DjangoFilterBackend):
    """django-filter for a list's shorthand query parameters; never narrows single-object
    lookups (a soft-deleted swarm is still retrievable by id)."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        return super().filter_queryset(request, queryset, view)
