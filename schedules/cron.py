"""Cron expressions evaluated in an IANA time zone: croniter parses and steps through local wall
times, and this module turns each into one instant, with the daylight-saving rules below.

croniter walks naive local wall-clock times (no zone, so no DST arithmetic in it at all); each
matching wall time becomes an instant here:
- a local time that does not exist (the clock jumps from 02:00 to 03:00 in spring) fires once,
  at the first valid instant after the gap (03:00); several slots in one gap (`*/15` at 02:00,
  02:15...) are that one firing;
- a local time that happens twice (the clock falls back from 03:00 to 02:00 in autumn) fires
  once, at its first occurrence (02:30 summer time); so the repeated hour has no firing of its
  own, even for a `*/15` schedule (use the zone `UTC` for intervals in real elapsed time).
Everything returned is an aware datetime in UTC, strictly increasing from one firing to the next.

Plain Python (croniter and zoneinfo only), so it is tested on its own.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

MAX_EXPRESSION_LENGTH = 100
MAX_ZONE_LENGTH = 64
# croniter's nicknames; `@reboot` has no time to compute and is refused.
ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Candidates looked at for one answer before giving up: a repeated hour of a per-second
# schedule skips up to 3600 of them; no real expression needs more.
MAX_STEPS = 10_000


class CronError(ValueError):
    """An expression or zone that cannot be used; its message says why, for a person."""


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_get(name: str) -> ZoneInfo:
    """The IANA zone `name` (`Europe/Oslo`, `UTC`); CronError for anything else (abbreviations
    such as `CET` that are not zone names, offsets, paths)."""
    if not isinstance(name, str) or not name or len(name) > MAX_ZONE_LENGTH:
        raise CronError("Give an IANA time zone name such as 'Europe/Oslo' or 'UTC'.")
    if name not in _zone_names():
        raise CronError(
            f"'{name}' is not an IANA time zone name; use one such as 'Europe/Oslo', "
            "'America/New_York' or 'UTC'."
        )
    return ZoneInfo(name)


def cron_validate(expression: str, *, seconds: bool = False) -> str:
    """The expression, normalised (single spaces); CronError naming the problem. Five fields
    (minute hour day-of-month month day-of-week) or an alias such as `@daily`; with `seconds`, a
    sixth field of seconds is allowed too (croniter's: last)."""
    if not isinstance(expression, str):
        raise CronError("Give the cron expression as text, e.g. '30 2 * * *'.")
    text = " ".join(expression.split())
    if not text:
        raise CronError("The cron expression is empty; e.g. '30 2 * * *' (02:30 every day).")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CronError(f"The cron expression is longer than {MAX_EXPRESSION_LENGTH} characters.")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise CronError(f"'{text}' is not a cron alias; use one of {', '.join(ALIASES)}.")
        return text.lower()
    fields = text.split(" ")
    allowed = (5, 6) if seconds else (5,)
    if len(fields) not in allowed:
        what = "5 or 6 (the sixth: seconds)" if seconds else "5"
        raise CronError(
            f"A cron expression has {what} fields (minute hour day-of-month month day-of-week); "
            f"'{text}' has {len(fields)}."
        )
    try:
        croniter(text, datetime(2000, 1, 1))
    except CroniterError as exc:
        raise CronError(f"'{text}' is not a valid cron expression ({_reason(exc)}).") from None
    return text


def _reason(exc: Exception) -> str:
    message = str(exc)
    # croniter's messages repeat the expression in brackets first.
    message = message.split("] ", 1)[-1] if message.startswith("[") else message
    if "out of range" in message:
        return "a value is out of range: minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7"
    if message.strip() == "is not acceptable":
        return "a field is not a number, range, list, step or name it understands"
    return message


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return value


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) a naive local wall time fires at: itself where it exists once; its
    first occurrence where it exists twice (fall back); the first valid instant after the gap
    where it does not exist (spring forward)."""
    first = wall.replace(tzinfo=zone, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) == wall:
        return as_utc  # exists (fold=0 is the first occurrence when it exists twice)
    # In a gap: the transition lies between the wall time read with the offset after it (an
    # instant before it) and read with the offset before it (an instant after it).
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = as_utc
    if before > after:
        before, after = after, before
    offset_after = after.astimezone(zone).utcoffset()
    low, high = before, after  # low: old offset, high: new offset
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _walls(expression: str, start: datetime, backwards: bool = False) -> Iterator[datetime]:
    """Naive wall times that match, from `start` (exclusive) onwards (or backwards)."""
    steps = croniter(expression, start)
    step = steps.get_prev if backwards else steps.get_next
    for _ in range(MAX_STEPS):
        try:
            yield step(datetime)
        except (CroniterBadDateError, ValueError, OverflowError):
            return  # no such date, or none before year 9999 (after year 1)


def next_fire_after(expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first firing strictly after the instant `after` (UTC), or None when there is none
    (an expression such as `0 0 31 2 *` never fires)."""
    after = _aware(after).astimezone(UTC)
    try:
        wall = after.astimezone(zone).replace(tzinfo=None, fold=0)
    except OverflowError:
        return None
    # Every wall time up to `after`'s own maps to an instant at or before it (the mapping keeps
    # order), so the walk starts there; in a repeated hour it skips the first pass's times.
    for candidate in _walls(expression, wall):
        instant = _instant_or_none(candidate, zone)
        if instant is None:
            return None
        if instant > after:
            return instant
    return None


def last_fire_at_or_before(expression: str, zone: ZoneInfo, at: datetime) -> datetime | None:
    """The latest firing at or before the instant `at` (UTC), or None."""
    at = _aware(at).astimezone(UTC)
    local = at.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0, microsecond=0)
    if local.fold:
        # The second pass of a repeated hour: every wall time of that hour (those after this
        # one too) fired in the first pass, before `at`; start past them all.
        wall += local.replace(fold=0).utcoffset() - local.utcoffset()
    # croniter's steps are exclusive, and seconds the finest grain: `+1 s` includes `at`.
    wall += timedelta(seconds=1)
    for candidate in _walls(expression, wall, backwards=True):
        instant = _instant_or_none(candidate, zone)
        if instant is None:
            return None
        if instant <= at:
            return instant
    return None


def _instant_or_none(wall: datetime, zone: ZoneInfo) -> datetime | None:
    try:
        return local_instant(wall, zone)
    except (OverflowError, ValueError):
        return None  # at the ends of the calendar (years 1 and 9999)


def fires_between(
    expression: str, zone: ZoneInfo, start: datetime, end: datetime, *, limit: int = 1000
) -> list[datetime]:
    """The firings in [start, end], at most `limit` of them, in order."""
    found: list[datetime] = []
    cursor = _aware(start).astimezone(UTC) - timedelta(microseconds=1)
    end = _aware(end).astimezone(UTC)
    while len(found) < limit:
        instant = next_fire_after(expression, zone, cursor)
        if instant is None or instant > end:
            break
        found.append(instant)
        cursor = instant
    return found


def cron_describe_problem(expression: str, zone: ZoneInfo, now: datetime) -> str | None:
    """Why a valid expression cannot be scheduled (it never fires), or None."""
    if next_fire_after(expression, zone, now) is None:
        return f"'{expression}' never fires (no date matches it); check the day and month."
    return None
