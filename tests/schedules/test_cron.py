"""schedules/cron.py on its own: validation, and firing times across real DST changes in
Europe/Oslo and America/New_York (spring forward: once, at the first valid instant after the
gap; fall back: once, at the first occurrence), with monotonicity as a property."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.cron import (
    CronError,
    cron_validate,
    fires_between,
    last_fire_at_or_before,
    local_instant,
    next_fire_after,
    zone_get,
)

OSLO = zone_get("Europe/Oslo")
NEW_YORK = zone_get("America/New_York")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone, *args, fold=0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold).astimezone(UTC)


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "normalised"),
    [("30 2 * * *", "30 2 * * *"), ("  */15   9-17 * * mon-fri ", "*/15 9-17 * * mon-fri"),
     ("@Daily", "@daily"), ("0 0 1 1 *", "0 0 1 1 *")],
)  # fmt: skip
def test_valid_expressions_are_normalised(expression, normalised):
    assert cron_validate(expression) == normalised


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "empty"),
        ("* * *", "has 5"),
        ("* * * * * *", "has 5"),  # seconds only when allowed
        ("61 * * * *", "out of range"),
        ("* 24 * * *", "out of range"),
        ("a b c d e", "not a valid cron expression"),
        ("@reboot", "not a cron alias"),
        ("* * * * " + "1," * 60 + "1", "longer than 100"),
    ],
)
def test_invalid_expressions_say_why(expression, says):
    with pytest.raises(CronError, match=says):
        cron_validate(expression)


def test_a_seconds_field_only_when_allowed():
    assert cron_validate("* * * * * */5", seconds=True) == "* * * * * */5"
    with pytest.raises(CronError, match="has 5 or 6"):
        cron_validate("* * * * * * *", seconds=True)


@pytest.mark.parametrize(
    "name", ["", "CET2", "Europe/Nowhere", "../etc/passwd", "+02:00", "x" * 65]
)
def test_unknown_zones_are_refused(name):
    with pytest.raises(CronError, match="IANA"):
        zone_get(name)


@pytest.mark.parametrize("name", ["UTC", "Europe/Oslo", "America/New_York", "Asia/Kolkata"])
def test_iana_zones_are_accepted(name):
    assert zone_get(name).key == name


# --- the next firing ----------------------------------------------------------------------------
def test_next_fire_is_strictly_after_the_instant():
    at = local(OSLO, 2025, 6, 1, 2, 30)
    assert next_fire_after("30 2 * * *", OSLO, at) == local(OSLO, 2025, 6, 2, 2, 30)
    assert next_fire_after("30 2 * * *", OSLO, at - timedelta(microseconds=1)) == at


def test_an_expression_that_never_fires_has_no_next():
    assert next_fire_after("0 0 31 2 *", OSLO, utc(2025, 1, 1)) is None
    assert next_fire_after("0 0 29 2 *", OSLO, utc(2025, 1, 1)) == local(OSLO, 2028, 2, 29)


def test_the_firing_is_in_the_zone_not_in_utc():
    assert next_fire_after("0 9 * * *", NEW_YORK, utc(2025, 1, 15)) == utc(2025, 1, 15, 14)
    assert next_fire_after("0 9 * * *", NEW_YORK, utc(2025, 7, 15)) == utc(2025, 7, 15, 13)


# --- DST: Europe/Oslo 2025-03-30 02:00 -> 03:00, 2025-10-26 03:00 -> 02:00 ------------------------
def test_oslo_spring_forward_0230_fires_once_at_0300():
    fires = fires_between("30 2 * * *", OSLO, utc(2025, 3, 29), utc(2025, 4, 1))
    assert fires == [
        local(OSLO, 2025, 3, 29, 2, 30),  # +01:00
        local(OSLO, 2025, 3, 30, 3, 0),  # 02:30 does not exist: the first instant after the gap
        local(OSLO, 2025, 3, 31, 2, 30),  # +02:00
    ]
    assert fires[1] == utc(2025, 3, 30, 1, 0)


def test_oslo_fall_back_0230_fires_once_at_its_first_occurrence():
    fires = fires_between("30 2 * * *", OSLO, utc(2025, 10, 25), utc(2025, 10, 28))
    assert fires == [
        local(OSLO, 2025, 10, 25, 2, 30),
        local(OSLO, 2025, 10, 26, 2, 30, fold=0),  # CEST, not the repeat in CET
        local(OSLO, 2025, 10, 27, 2, 30),
    ]
    assert fires[1] == utc(2025, 10, 26, 0, 30)


def test_slots_inside_the_gap_collapse_into_one_firing():
    fires = fires_between("*/15 * * * *", OSLO, utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 1, 30))
    in_oslo = [f.astimezone(OSLO).strftime("%H:%M%z") for f in fires]
    assert in_oslo == ["01:30+0100", "01:45+0100", "03:00+0200", "03:15+0200", "03:30+0200"]


def test_the_repeated_hour_does_not_fire_again():
    fires = fires_between("0,30 * * * *", OSLO, utc(2025, 10, 25, 23, 0), utc(2025, 10, 26, 2, 30))
    in_oslo = [f.astimezone(OSLO).strftime("%H:%M%z") for f in fires]
    assert in_oslo == ["01:00+0200", "01:30+0200", "02:00+0200", "02:30+0200", "03:00+0100",
                       "03:30+0100"]  # fmt: skip


# --- DST: America/New_York 2025-03-09 02:00 -> 03:00, 2025-11-02 02:00 -> 01:00 -------------------
def test_new_york_spring_forward_0230_fires_once_at_0300():
    fires = fires_between("30 2 * * *", NEW_YORK, utc(2025, 3, 8), utc(2025, 3, 11))
    assert fires == [
        local(NEW_YORK, 2025, 3, 8, 2, 30),
        utc(2025, 3, 9, 7, 0),  # 03:00 EDT
        local(NEW_YORK, 2025, 3, 10, 2, 30),
    ]


def test_new_york_fall_back_0130_fires_once_at_its_first_occurrence():
    fires = fires_between("30 1 * * *", NEW_YORK, utc(2025, 11, 1), utc(2025, 11, 4))
    assert fires == [
        local(NEW_YORK, 2025, 11, 1, 1, 30),
        utc(2025, 11, 2, 5, 30),  # 01:30 EDT, not 01:30 EST an hour later
        local(NEW_YORK, 2025, 11, 3, 1, 30),
    ]


def test_new_york_0230_on_fall_back_day_exists_once():
    fires = fires_between("30 2 * * *", NEW_YORK, utc(2025, 11, 2), utc(2025, 11, 3))
    assert fires == [utc(2025, 11, 2, 7, 30)]  # 02:30 EST


def test_after_the_first_occurrence_the_next_is_the_next_day():
    first = utc(2025, 10, 26, 0, 30)  # 02:30 CEST
    in_repeat = utc(2025, 10, 26, 1, 15)  # 02:15 CET, the repeated hour
    assert next_fire_after("30 2 * * *", OSLO, first) == local(OSLO, 2025, 10, 27, 2, 30)
    assert next_fire_after("30 2 * * *", OSLO, in_repeat) == local(OSLO, 2025, 10, 27, 2, 30)


def test_the_last_firing_before_an_instant_in_the_repeated_hour():
    in_repeat = utc(2025, 10, 26, 1, 15)  # 02:15 CET: 02:30 CEST fired 45 minutes earlier
    assert last_fire_at_or_before("*/30 * * * *", OSLO, in_repeat) == utc(2025, 10, 26, 0, 30)
    assert last_fire_at_or_before("30 2 * * *", OSLO, utc(2025, 3, 30, 1, 0)) == utc(
        2025, 3, 30, 1, 0
    )  # the spring-forward firing itself


def test_local_instant_maps_gaps_and_folds():
    assert local_instant(datetime(2025, 3, 30, 2, 59), OSLO) == utc(2025, 3, 30, 1, 0)
    assert local_instant(datetime(2025, 10, 26, 2, 0), OSLO) == utc(2025, 10, 26, 0, 0)
    assert local_instant(datetime(2025, 6, 1, 12, 0), OSLO) == utc(2025, 6, 1, 10, 0)


# --- properties ----------------------------------------------------------------------------------
EXPRESSIONS = ["30 2 * * *", "*/15 * * * *", "0 * * * *", "0,30 1-3 * * *", "5 4 * * sun",
               "0 0 1 * *", "@hourly", "59 23 31 12 *"]  # fmt: skip
ZONES = ["Europe/Oslo", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(expression=st.sampled_from(EXPRESSIONS), zone=st.sampled_from(ZONES), start=instants)
def test_firings_strictly_increase_and_each_local_time_fires_once(expression, zone, start):
    tz = zone_get(zone)
    fires = []
    at = start
    for _ in range(6):
        at = next_fire_after(expression, tz, at)
        fires.append(at)
    assert all(a < b for a, b in itertools.pairwise(fires))
    walls = [f.astimezone(tz).replace(tzinfo=None, fold=0) for f in fires]
    assert len(set(walls)) == len(walls)  # no local time fires twice (fall back)
    for fire in fires:
        assert last_fire_at_or_before(expression, tz, fire) == fire


@settings(max_examples=200, deadline=None)
@given(expression=st.sampled_from(EXPRESSIONS), zone=st.sampled_from(ZONES), at=instants)
def test_nothing_fires_between_the_last_and_the_next(expression, zone, at):
    tz = zone_get(zone)
    previous = last_fire_at_or_before(expression, tz, at)
    following = next_fire_after(expression, tz, at)
    assert previous is not None and previous <= at < following
    assert next_fire_after(expression, tz, previous) == following


@settings(max_examples=200, deadline=None)
@given(a=instants, b=instants, zone=st.sampled_from(ZONES))
def test_next_fire_is_monotonic_in_its_start(a, b, zone):
    tz = zone_get(zone)
    early, late = sorted((a, b))
    assert next_fire_after("*/15 * * * *", tz, early) <= next_fire_after("*/15 * * * *", tz, late)


# --- against brute force, minute by minute across every 2025 transition --------------------------
def _brute_force(expression: str, tz, start: datetime, end: datetime) -> list[datetime]:
    """Walk real time minute by minute: a minute fires when its local time matches and is the
    first occurrence of that local time, or when it ends a gap in which some local time
    matched."""
    fires, t = [], start
    previous_wall = None
    while t <= end:
        here = t.astimezone(tz)
        wall = here.replace(tzinfo=None, fold=0)
        skipped = []
        if previous_wall is not None and wall - previous_wall > timedelta(minutes=1):
            gap = previous_wall + timedelta(minutes=1)
            while gap < wall:
                skipped.append(gap)
                gap += timedelta(minutes=1)
        if (not here.fold and croniter.match(expression, wall)) or any(
            croniter.match(expression, w) for w in skipped
        ):
            fires.append(t)
        previous_wall = wall if not here.fold else max(previous_wall, wall)
        t += timedelta(minutes=1)
    return fires


TRANSITIONS = [
    ("Europe/Oslo", utc(2025, 3, 29, 20)), ("Europe/Oslo", utc(2025, 10, 25, 20)),
    ("America/New_York", utc(2025, 3, 9, 2)), ("America/New_York", utc(2025, 11, 2, 2)),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "start"), TRANSITIONS)
@pytest.mark.parametrize("expression", ["30 2 * * *", "*/20 * * * *", "0 1-3 * * *", "15 * * * *"])
def test_matches_a_minute_by_minute_walk(zone, start, expression):
    tz = zone_get(zone)
    end = start + timedelta(hours=12)
    assert fires_between(expression, tz, start, end) == _brute_force(expression, tz, start, end)


cron_like = st.lists(
    st.one_of(
        st.sampled_from(["*", "*/5", "1-5", "1,2", "L", "5#2", "?", "mon-fri", "jan", "0", "99",
                         "-1", "1-", "/", "*/0", "W", "15W", "H", "@daily", "\u0663", "2-1"]),
        st.text(max_size=4),
    ),
    min_size=1, max_size=7,
).map(" ".join)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(expression=st.one_of(cron_like, st.text(max_size=30)), seconds=st.booleans(), at=instants)
def test_any_text_is_valid_or_a_cron_error_never_a_crash(expression, seconds, at):
    try:
        valid = cron_validate(expression, seconds=seconds)
    except CronError as error:
        assert str(error)
        return
    nxt = next_fire_after(valid, OSLO, at)
    assert nxt is None or nxt > at
