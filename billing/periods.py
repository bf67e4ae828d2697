"""Calendar months and day ranges as billing counts them: in UTC, start inclusive, end exclusive."""

import re
from datetime import UTC, date, datetime, time

from django.utils import timezone

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# Year 9999's December has no "next month" to end it; nobody bills in it.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def month_of(moment: datetime) -> date:
    """The first day of the UTC month `moment` falls in."""
    return moment.astimezone(UTC).date().replace(day=1)


def current_month() -> date:
    return month_of(timezone.now())


def month_after(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_parse(text: str) -> date:
    """`YYYY-MM` -> the month's first day; ValueError on anything else."""
    match = MONTH_PATTERN.match(text)
    if match is None or not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
        raise ValueError(f"Expected a month as YYYY-MM between {FIRST_YEAR} and {LAST_YEAR}.")
    return date(int(match[1]), int(match[2]), 1)


def day_start(day: date) -> datetime:
    """00:00 UTC of `day`."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def month_span(month: date) -> tuple[datetime, datetime]:
    """[00:00 UTC on the 1st, 00:00 UTC on the 1st of the next month)."""
    return day_start(month), day_start(month_after(month))
