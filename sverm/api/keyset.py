"""Keyset seeking for `/api` lists: signed cursors and the index ranges of the rows after one.

The order comes from the view's `orderBy` (see `sverm.api.listing`) and always ends with the id,
so it is total: no row is skipped or repeated between pages, nulls included. Cursors are signed
tokens holding the row's order-key values and the order they were made under; a tampered cursor or
one replayed under another order is refused. The rows after a cursor are sought as index ranges
(`seek_parts`), so a page deep in a large list costs about what the first page costs.
"""

import operator
from datetime import date, datetime
from decimal import Decimal
from functools import reduce
from typing import Any

from django.core import signing
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Expression, F, Model, Q, QuerySet, Subquery
from django.db.models.fields.tuple_lookups import (
    Tuple,
    TupleGreaterThan,
    TupleGreaterThanOrEqual,
    TupleLessThan,
    TupleLessThanOrEqual,
)

from sverm.api.errors import InvalidRequest
from sverm.api.listing import OrderKey, parse_order_by

CURSOR_SALT = "sverm.api.cursor"


def _fingerprint(keys: list[OrderKey]) -> str:
    return ",".join(
        f"{'-' if k.descending else ''}{k.path}{'^' if k.nulls_first else '$'}" for k in keys
    )


def _model_field(model: type[Model], path: str):
    field = None
    for part in path.split("__"):
        field = model._meta.get_field(part)
        if field.is_relation and field.related_model is not None:
            model = field.related_model
    return field


def _row_value(row: Model, path: str) -> Any:
    value: Any = row
    for part in path.split("__"):
        if value is None:
            return None
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


def encode_cursor(row: Model, keys: list[OrderKey]) -> str:
    values = [_encode_value(_row_value(row, key.path)) for key in keys]
    return signing.dumps({"o": _fingerprint(keys), "v": values}, salt=CURSOR_SALT, compress=True)


def decode_cursor(token: str, keys: list[OrderKey], model: type[Model], param: str) -> list[Any]:
    bad = InvalidRequest(f"The `{param}` cursor is not valid; use a cursor from pageInfo.")
    try:
        payload = signing.loads(token, salt=CURSOR_SALT)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise bad from None
    if not isinstance(payload, dict) or not isinstance(payload.get("v"), list):
        raise bad
    if payload.get("o") != _fingerprint(keys) or len(payload["v"]) != len(keys):
        raise InvalidRequest(
            f"The `{param}` cursor was made for another orderBy; start again without it."
        )
    values = []
    for key, raw in zip(keys, payload["v"], strict=True):
        try:
            values.append(None if raw is None else _model_field(model, key.path).to_python(raw))
        except (ValidationError, FieldDoesNotExist, TypeError, ValueError):
            raise bad from None
    return values


def _strictly_after(key: OrderKey, value: Any) -> Q:
    """Rows that come after `value` in this one key."""
    nothing = Q(pk__in=[])
    if value is None:
        # Nulls first: every non-null row follows. Nulls last: nothing follows in this key.
        return Q(**{f"{key.path}__isnull": False}) if key.nulls_first else nothing
    after = Q(**{f"{key.path}__{'lt' if key.descending else 'gt'}": value})
    if not key.nulls_first:
        after |= Q(**{f"{key.path}__isnull": True})
    return after


def _equal(key: OrderKey, value: Any) -> Q:
    return Q(**{f"{key.path}__isnull": True}) if value is None else Q(**{key.path: value})


def rows_after(keys: list[OrderKey], values: list[Any], model=None) -> Q:
    """Rows strictly after the position `values` under `keys` (lexicographic), as one condition:
    the `seek_parts` OR-ed together when `model` is given, else the OR-expanded comparisons."""
    if model is not None and _plain_keys(keys, values, model):
        return reduce(operator.or_, seek_parts(keys, values, model))
    return _rows_after_expanded(keys, values)


def _rows_after_expanded(keys: list[OrderKey], values: list[Any]) -> Q:
    condition = Q(pk__in=[])
    for index, key in enumerate(keys):
        step = _strictly_after(key, values[index])
        for prev in range(index):
            step &= _equal(keys[prev], values[prev])
        condition |= step
    return condition


def seek_parts(
    keys: list[OrderKey], values: list[Any], model: type[Model], *, inclusive: bool = False
) -> list[Q]:
    """Rows after the position `values` under `keys` (at or after it when `inclusive`), as
    disjoint conditions in page order: every row of a part comes before every row of the next.

    When every key is a non-null column of `model`, each part is one single-direction range
    that an index in the same order answers as a range scan. For `name asc, created_at desc,
    id desc` after `(n, c, i)`: `name = n AND (created_at, id) < (c, i)`, then `name > n`.
    One comparison OR-ing across directions can only be an index Filter, which walks every row
    before the cursor. Otherwise (nullable or related keys) one part: the OR-expanded
    comparisons, nulls placed as the keys say."""
    if not _plain_keys(keys, values, model):
        if inclusive:
            return [~_rows_after_expanded([key.reversed() for key in keys], values)]
        return [_rows_after_expanded(keys, values)]
    runs: list[tuple[int, int]] = []  # [start, end) of each run of keys sorted one way
    for index, key in enumerate(keys):
        if runs and key.descending == keys[runs[-1][0]].descending:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    paths = [key.path for key in keys]
    parts = []
    for start, end in runs:
        equal = Q(**dict(zip(paths[:start], values[:start], strict=True)))
        last = end == len(keys)
        parts.append(equal & _range(keys[start:end], values[start:end], inclusive and last))
    # The run of the last keys holds the rows nearest the position.
    return parts[::-1]


_RANGES = {
    # (descending, inclusive) -> (lookup for one column, lookup for a row value)
    (False, False): ("gt", TupleGreaterThan),
    (False, True): ("gte", TupleGreaterThanOrEqual),
    (True, False): ("lt", TupleLessThan),
    (True, True): ("lte", TupleLessThanOrEqual),
}


def _range(keys: list[OrderKey], values: list[Any], inclusive: bool) -> Q:
    """Rows after `values` in keys that all sort the same way: `k > v`, or a row-value
    comparison `(a, b) < (x, y)` that an index on (a, b) answers directly."""
    column, row_value = _RANGES[(keys[0].descending, inclusive)]
    if len(keys) == 1:
        return Q(**{f"{keys[0].path}__{column}": values[0]})
    return Q(row_value(Tuple(*(F(key.path) for key in keys)), tuple(values)))


def _plain_keys(keys: list[OrderKey], values: list[Any], model: type[Model]) -> bool:
    """Every key a non-null column of `model` itself, and no null value."""
    if any(value is None for value in values):
        return False
    return all(_non_null_column(key, model) for key in keys)


def _non_null_column(key: OrderKey, model: type[Model]) -> bool:
    if "__" in key.path:
        return False
    field = model._meta.pk if key.path == "pk" else model._meta.get_field(key.path)
    return field.concrete and not field.null


class _UnionAll(Expression):
    """`(SELECT * FROM (<part 1>) AS seek0 UNION ALL SELECT * FROM (<part 2>) AS seek1 ...)`:
    one subquery of the parts' ids for `pk__in`, each part keeping its own ORDER BY and LIMIT
    (a plain `.union()` of sliced querysets is refused on SQLite)."""

    def __init__(self, querysets: list[QuerySet]):
        super().__init__()
        self.subqueries = [Subquery(queryset) for queryset in querysets]

    def get_source_expressions(self) -> list:
        return self.subqueries

    def set_source_expressions(self, exprs) -> None:
        self.subqueries = list(exprs)

    def as_sql(self, compiler, connection):
        sqls, params = [], []
        for index, subquery in enumerate(self.subqueries):
            sql, subquery_params = compiler.compile(subquery)  # values stay parameters
            sqls.append(f"SELECT * FROM {sql} AS seek{index}")  # noqa: S608
            params.extend(subquery_params)
        return f"({' UNION ALL '.join(sqls)})", params


def rows_fetch(queryset: QuerySet, parts: list[Q], order: list, count: int) -> list[Model]:
    """Up to `count` rows of `parts` (from `seek_parts`) in `order`, in one query. With several
    parts each is its own ordered, LIMITed subquery (so each stays an index range scan) and
    only the at most `count` ids of each are merged and sorted."""
    if len(parts) == 1:
        return list(queryset.filter(parts[0]).order_by(*order)[:count])
    nearest = [queryset.filter(part).order_by(*order).values("pk")[:count] for part in parts]
    return list(queryset.filter(pk__in=_UnionAll(nearest)).order_by(*order)[:count])


def rows_exist(queryset: QuerySet, parts: list[Q]) -> bool:
    if len(parts) == 1:
        return queryset.filter(parts[0]).exists()
    anyone = [queryset.filter(part).values("pk")[:1] for part in parts]
    return queryset.filter(pk__in=_UnionAll(anyone)).exists()


def order_by_expressions(keys: list[OrderKey], model: type[Model] | None = None) -> list:
    """ORDER BY for `keys`. Keys on non-null columns of `model` say nothing of nulls: `id DESC`
    is the order of an index on (..., -id), `id DESC NULLS LAST` (the same rows, in the same
    order) is not to PostgreSQL, which then sorts what the index would have given in order."""
    expressions = []
    for key in keys:
        nulls = {"nulls_first": True} if key.nulls_first else {"nulls_last": True}
        if model is not None and _non_null_column(key, model):
            nulls = {}
        field = F(key.path)
        expressions.append(field.desc(**nulls) if key.descending else field.asc(**nulls))
    return expressions


def ordering_keys(request, view, queryset: QuerySet) -> list[OrderKey]:
    spec = getattr(view, "list_spec", None)
    if spec is not None:
        return parse_order_by(request.query_params.get("orderBy"), spec)
    keys = []
    for item in list(queryset.query.order_by) or list(queryset.model._meta.ordering):
        descending = item.startswith("-")
        keys.append(OrderKey(item.lstrip("-"), descending, descending))
    pk = queryset.model._meta.pk.name
    if not any(k.path in (pk, "pk") for k in keys):
        keys.append(OrderKey(pk, bool(keys and keys[-1].descending), False))
    return keys
