"""Cron on the nights clocks change, the way classic cron (Vixie, Debian) runs it.

An expression whose minute or hour field starts with `*` (`*/5 * * * *`, `0 * * * *`, `@hourly`)
runs by the clock: at every instant whose local time matches, so a repeated hour runs twice and
a skipped hour not at all. Any other expression (a fixed time such as `30 2 * * *`) keeps the
once rule: a skipped time fires at the end of the gap, a repeated one at its first occurrence.
Checked in 60-, 30- (Australia/Lord_Howe) and 45-minute (Pacific/Chatham) zones, on both changes.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from core.domain.models import Rule, RuleKind
from core.domain.when import describe, next_fire_time, next_fire_times, parse_cron
from tests.when.test_when_properties import brute_force_fires

# (zone, an instant a few hours before spring forward, one before fall back)
B, L, C = "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Chatham"
NIGHTS = [
    (B, datetime(2027, 3, 27, 22, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC)),
    (L, datetime(2026, 10, 3, 12, tzinfo=UTC), datetime(2027, 4, 3, 12, tzinfo=UTC)),
    (C, datetime(2026, 9, 26, 10, tzinfo=UTC), datetime(2027, 4, 3, 10, tzinfo=UTC)),
]


def cron(expression: str, tz: str) -> Rule:
    return Rule(kind=RuleKind.cron, timezone=tz, cron=expression)


def fires_between(rule: Rule, start: datetime, end: datetime) -> list[datetime]:
    found: list[datetime] = []
    fire = next_fire_time(rule, after=start)
    while fire is not None and fire < end:
        found.append(fire)
        fire = next_fire_time(rule, after=fire)
    return found


def cronsim_between(expression: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    found: list[datetime] = []
    for fire in CronSim(parse_cron(expression).expression, start.astimezone(ZoneInfo(tz))):
        if fire.astimezone(UTC) >= end:
            return found
        if not found or found[-1] != fire.astimezone(UTC):  # cronsim may repeat an instant
            found.append(fire.astimezone(UTC))
    return found  # pragma: no cover - CronSim is endless for these expressions


@pytest.mark.parametrize("night", ["spring", "fall"])
@pytest.mark.parametrize(("tz", "spring", "fall"), NIGHTS)
def test_every_5_minutes_runs_every_5_real_minutes_through_the_change(
    tz: str, spring: datetime, fall: datetime, night: str
) -> None:
    start = spring if night == "spring" else fall
    fires = fires_between(cron("*/5 * * * *", tz), start, start + timedelta(hours=8))
    assert len(fires) == 8 * 12 - 1  # the start itself is not after the start
    assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(minutes=5)}


@pytest.mark.parametrize(("tz", "spring", "fall"), NIGHTS)
def test_hourly_runs_in_both_passes_of_a_repeated_hour(
    tz: str, spring: datetime, fall: datetime
) -> None:
    zone = ZoneInfo(tz)
    for expression in ("@hourly", "0 * * * *"):
        fires = fires_between(cron(expression, tz), fall, fall + timedelta(hours=8))
        walls = [f.astimezone(zone) for f in fires]
        assert all(w.minute == 0 for w in walls)
        if tz == "Europe/Berlin":
            # 02:00 happens twice on 25 Oct 2026 and runs twice: every real hour.
            assert len(fires) == 7
            assert [f"{w:%H}{'*' if w.fold else ''}" for w in walls][:4] == [
                "01",
                "02",
                "02*",
                "03",
            ]
        assert fires == cronsim_between(expression, tz, fall, fall + timedelta(hours=8))


def test_hourly_in_lord_howe_spring_fires_on_the_hour_only() -> None:
    """02:00-02:29 do not exist on 4 Oct 2026: no 02:30 fire, only 01:00 then 03:00."""
    tz = "Australia/Lord_Howe"
    start = datetime(2026, 10, 3, 13, 30, tzinfo=UTC)  # 00:00 local
    fires = fires_between(cron("0 * * * *", tz), start, start + timedelta(hours=4))
    assert [f"{f.astimezone(ZoneInfo(tz)):%H:%M}" for f in fires] == [
        "01:00",
        "03:00",
        "04:00",
    ]


@pytest.mark.parametrize(("tz", "spring", "fall"), NIGHTS)
def test_a_fixed_time_keeps_the_once_rule_on_both_changes(
    tz: str, spring: datetime, fall: datetime
) -> None:
    zone = ZoneInfo(tz)
    # A wall time inside each zone's gap (spring) and repeated window (fall).
    gap_time, repeated_time = {
        "Europe/Berlin": ("30 2", "30 2"),
        "Australia/Lord_Howe": ("15 2", "45 1"),
        "Pacific/Chatham": ("0 3", "0 3"),
    }[tz]
    spring_fires = fires_between(cron(f"{gap_time} * * *", tz), spring, spring + timedelta(days=1))
    (gap_fire,) = spring_fires
    assert (gap_fire - timedelta(seconds=1)).astimezone(zone).utcoffset() != (
        gap_fire.astimezone(zone).utcoffset()
    ), "at the end of the gap"
    fall_fires = fires_between(cron(f"{repeated_time} * * *", tz), fall, fall + timedelta(days=1))
    (fold_fire,) = fall_fires
    local = fold_fire.astimezone(zone)
    assert local.fold == 0 and local.replace(fold=1).utcoffset() != local.utcoffset()


# cronsim 2.9 misses these wall times in the zones that change by 30 or 45 minutes (they exist
# and match; the brute force below runs them): 02:30 on Lord Howe's spring night, 02:00-02:20 on
# its autumn night, the second 02:50 in Chatham.
CRONSIM_MISSES = {
    ("Australia/Lord_Howe", "30 * * * *"),
    ("Australia/Lord_Howe", "*/10 2 * * *"),
    ("Pacific/Chatham", "*/10 2 * * *"),
}


@pytest.mark.parametrize(
    "expression",
    ["*/5 * * * *", "*/15 * * * *", "0 * * * *", "30 * * * *", "*/10 2 * * *", "@hourly",
     "30 2 * * *", "0,30 1-3 * * *", "15 2 * * *", "0 3 * * *", "45 1 * * *"],
)  # fmt: skip
@pytest.mark.parametrize(("tz", "spring", "fall"), NIGHTS)
def test_fire_times_on_both_changes_agree_with_cronsim_and_a_brute_force(
    tz: str, spring: datetime, fall: datetime, expression: str
) -> None:
    """cronsim implements Debian cron's DST handling; the one choice made otherwise: several
    fixed times inside one gap fire once at its end (cronsim gives that instant once per time,
    which `cronsim_between` folds into one)."""
    for start in (spring, fall):
        end = start + timedelta(hours=30)
        ours = fires_between(cron(expression, tz), start, end)
        minute = timedelta(minutes=1)
        brute = brute_force_fires(parse_cron(expression), ZoneInfo(tz), start + minute, end)
        assert ours == brute, (expression, tz, start)
        theirs = cronsim_between(expression, tz, start, end)
        if (tz, expression) in CRONSIM_MISSES:
            assert set(theirs) <= set(ours)  # on one of the two nights
        else:
            assert ours == theirs, (expression, tz, start)


def test_only_a_star_in_the_minute_or_hour_field_runs_by_the_clock() -> None:
    assert parse_cron("*/5 * * * *").by_clock
    assert parse_cron("0 * * * *").by_clock
    assert parse_cron("*/10 2 * * *").by_clock
    assert parse_cron("0 */2 * * *").by_clock
    assert parse_cron("@hourly").by_clock
    assert not parse_cron("30 2 * * *").by_clock
    assert not parse_cron("0 0-23/2 * * *").by_clock  # no star: a list of fixed times
    assert not parse_cron("@daily").by_clock


def test_asked_in_the_second_pass_of_a_repeated_hour_a_clock_rule_continues_there() -> None:
    rule = cron("*/30 * * * *", "Europe/Berlin")
    after = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the second 02:10
    assert next_fire_times(rule, after=after, count=3) == [
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 10, 25, 2, 0, tzinfo=UTC),  # 03:00 CET
        datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
    ]


# --- day of month with day of week -----------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 9 */1 * 1", ["Mon 07", "Mon 14", "Mon 21", "Mon 28"]),  # a star: AND
        ("0 9 */2 * 1", ["Mon 07", "Mon 21"]),  # odd days that are Mondays
        ("0 9 1-7 * */3", ["Wed 02", "Sat 05", "Sun 06"]),  # a star in day-of-week: AND
        ("0 9 1,15 * 1", ["Tue 01", "Mon 07", "Mon 14", "Tue 15", "Mon 21", "Mon 28"]),  # OR
        ("0 9 1-31 * 1", [f"{d:%a %d}" for d in (datetime(2026, 12, n) for n in range(1, 29))]),
    ],
)
def test_a_day_field_starting_with_a_star_makes_the_day_fields_and(
    expression: str, days: list[str]
) -> None:
    """Vixie cron: the two day fields are OR-ed only when neither starts with `*`."""
    start, end = datetime(2026, 11, 30, 23, tzinfo=UTC), datetime(2026, 12, 29, tzinfo=UTC)
    fires = fires_between(cron(expression, "UTC"), start, end)
    assert [f"{f:%a %d}" for f in fires] == days
    assert fires == cronsim_between(expression, "UTC", start, end)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 */2 * 1", "cron 0 9 */2 * 1"),
        ("0 9 1 * */2", "cron 0 9 1 * */2"),
        ("0 9 */1 * 1", "every Monday at 09:00"),
        ("0 9 1 * */1", "every month on the 1st at 09:00"),
    ],
)
def test_a_description_never_drops_a_day_field_that_ands(expression: str, words: str) -> None:
    assert describe(cron(expression, "UTC")) == f"{words} (UTC)"
