"""How the `sverm` CLI shows things: money from Decimal, one-line errors, exact JSON, tables."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.console import Console
from rich.table import Column

CENT = Decimal("0.01")


def to_decimal(value: Any) -> Decimal | None:
    """A money amount as Decimal: Decimals pass, numbers go through their shortest text (which
    is the wire's text for a JSON number read as float), anything else is None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        return None


def money(value: Any) -> str:
    """USD as the server states it, never through float: at least cents ($2.50), and every
    decimal the amount has ($0.000173); "-" when unknown."""
    amount = to_decimal(value)
    if amount is None or not amount.is_finite():
        return "-"
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(CENT)
    sign = "-" if amount < 0 else ""
    return f"{sign}${format(abs(amount), 'f')}"


def spent(cost: Any, budget: Any) -> str:
    """Cost so far against the budget, "$0.0123 / $2.50" (the cost alone with no budget)."""
    if to_decimal(budget) is None:
        return money(cost)
    return f"{money(cost)} / {money(budget)}"


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return "-" if value in (None, "") else str(value)


def error_line(message: str, *, code: str | None = None, correlation_id: str | None = None) -> str:
    """`error: <message> (code <code>, correlation id <id>)`, always one line."""
    text = " ".join(str(message).split()) or "unknown error"
    extra = [f"code {code}"] if code else []
    if correlation_id:
        extra.append(f"correlation id {correlation_id}")
    return f"error: {text}" + (f" ({', '.join(extra)})" if extra else "")


def print_error(message: str, **details: str | None) -> None:
    # Not through Rich: it would wrap a long line at the terminal's width.
    sys.stderr.write(error_line(message, **details) + "\n")
    sys.stderr.flush()


# --- JSON ----------------------------------------------------------------------------------------
def json_text(value: Any) -> str:
    """JSON for `value` with numbers written from their exact text (Decimal stays Decimal: the
    standard encoder would go through float)."""
    parts: list[str] = []
    _encode(value, parts, 0)
    return "".join(parts)


def _encode(value: Any, out: list[str], depth: int) -> None:
    pad, inner = "\n" + "  " * depth, "\n" + "  " * (depth + 1)
    if isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            out.append(("," if index else "") + inner + json.dumps(str(key)) + ": ")
            _encode(item, out, depth + 1)
        out.append(pad + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for index, item in enumerate(value):
            out.append(("," if index else "") + inner)
            _encode(item, out, depth + 1)
        out.append(pad + "]")
    elif isinstance(value, Decimal):
        out.append(str(value) if value.is_finite() else "null")
    elif isinstance(value, float):
        out.append(repr(value) if math.isfinite(value) else "null")
    elif isinstance(value, datetime):
        out.append(json.dumps(value.isoformat()))
    elif value is None or isinstance(value, bool | int | str):
        out.append(json.dumps(value))
    else:
        out.append(json.dumps(str(value)))


def print_json(value: Any) -> None:
    """The one JSON document a `--json` command writes on stdout."""
    sys.stdout.write(json_text(value) + "\n")
    sys.stdout.flush()


# --- consoles ------------------------------------------------------------------------------------
# Tables written to a pipe or file: wide enough not to cut ids and amounts (a terminal's own
# width rules on a terminal; $COLUMNS rules when set).
PIPE_WIDTH = 160


def stdout_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def id_column(header: str, ids: list[Any]) -> Column:
    """A table column of ids: never cut or wrapped (other columns give way), ids being what a
    reader copies into the next command."""
    width = max((len(str(value)) for value in ids if value), default=len(header))
    return Column(header, no_wrap=True, min_width=max(width, len(header)))
