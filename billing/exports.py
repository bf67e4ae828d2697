"""Usage reports as CSV: the renderer `/api/usage` answers `text/csv` with, and the text the
admin report's download is, from the same rows and columns as the JSON."""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from rest_framework.renderers import BaseRenderer

CSV_MEDIA_TYPE = "text/csv"
# The first column: a group's row, or the totals (the last line).
ROW_COLUMN, GROUP_ROW, TOTAL_ROW = "row", "group", "total"
# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): names are typed by users.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A value as its CSV text: money (Decimal) in fixed point with at least 6 decimals, never
    a float's; null empty; text that a spreadsheet would take for a formula quoted with `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        places = max(6, -exponent) if isinstance(exponent, int) else 6
        return f"{value:.{places}f}"
    if isinstance(value, float):  # not expected: money is Decimal end to end
        return f"{Decimal(str(value)):.6f}"
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """RFC 4180 text (CRLF line ends), a header line then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()


def usage_csv(body: dict, columns: Sequence[str]) -> str:
    """`/api/usage`'s body as CSV: a `row` column (`group`, or `total` for the last line), then
    the rows' columns; the totals line leaves empty what totals do not have (key, labels)."""
    lines = [[GROUP_ROW, *(group.get(column) for column in columns)] for group in body["data"]]
    totals = body["totals"]
    lines.append([TOTAL_ROW, *(totals.get(column) for column in columns)])
    return csv_text([ROW_COLUMN, *columns], lines)


def usage_csv_filename(*, workspace_id: str | None, start: datetime, end: datetime,
                       group_by: str) -> str:  # fmt: skip
    """`usage_<workspace or all>_<from>_<to>_by-<grouping>.csv` (`to` excluded, as queried)."""
    scope = workspace_id or "all"
    return f"usage_{scope}_{start:%Y-%m-%d}_{end:%Y-%m-%d}_by-{group_by}.csv"


class UsageCSVRenderer(BaseRenderer):
    """`text/csv` for `/api/usage` (`Accept: text/csv` or `?format=csv`): the view passes the
    columns of its grouping in the renderer context."""

    media_type = CSV_MEDIA_TYPE
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, (bytes, str)):
            return data.encode() if isinstance(data, str) else data
        columns = (renderer_context or {}).get("usage_columns")
        if columns is None:
            columns = sorted({key for group in data.get("data", []) for key in group})
        return usage_csv(data, columns).encode(self.charset)
