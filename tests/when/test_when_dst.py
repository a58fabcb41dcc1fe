"""Daylight saving time: what the rules do on the days clocks change.

Rules (issue 2): a recurring 09:00 stays 09:00 local; a local time that does not exist
fires once at the next valid instant (the end of the gap); a local time that occurs twice fires
once (its first occurrence). A cron expression with a star in its minute or hour field runs by
the clock instead (test_when_cron_dst).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import (  # type: ignore[import-untyped, unused-ignore]
    CronTrigger,
)
from croniter import croniter

from core.domain.errors import InvalidWhen
from core.domain.models import Rule, RuleKind
from core.domain.when import RuleTrigger, describe, format_local, next_fire_times, parse_when

# (zone, day of spring forward, day of fall back, the repeated local time on fall back day)
CHANGES = [
    ("Europe/Berlin", datetime(2027, 3, 28), datetime(2026, 10, 25), "02:30"),
    ("America/New_York", datetime(2027, 3, 14), datetime(2026, 11, 1), "01:30"),
    ("Australia/Sydney", datetime(2026, 10, 4), datetime(2027, 4, 4), "02:30"),
]


def daily(hhmm: str, tz: str) -> Rule:
    hour, minute = hhmm.split(":")
    return Rule(kind=RuleKind.cron, timezone=tz, cron=f"{int(minute)} {int(hour)} * * *")


def fires_around(rule: Rule, day: datetime) -> list[datetime]:
    """Local fire times from two days before `day` to two days after."""
    zone = ZoneInfo(rule.timezone)
    start = (day - timedelta(days=2)).replace(tzinfo=zone).astimezone(UTC)
    end = (day + timedelta(days=3)).replace(tzinfo=zone).astimezone(UTC)
    found = [t for t in next_fire_times(rule, after=start, count=20) if t < end]
    return [t.astimezone(zone) for t in found]


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated"), CHANGES)
def test_a_daily_0900_stays_0900_local_across_both_changes(
    tz: str, spring: datetime, fall: datetime, repeated: str
) -> None:
    for day in (spring, fall):
        fires = fires_around(daily("09:00", tz), day)
        assert [f"{t:%H:%M}" for t in fires] == ["09:00"] * 5
        assert [t.day for t in fires] == [(day + timedelta(days=d)).day for d in range(-2, 3)]
        # The offset changes on the day, so the UTC instants are not 24 h apart there.
        assert len({t.utcoffset() for t in fires}) == 2


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated"), CHANGES)
def test_a_time_skipped_by_spring_forward_fires_once_at_the_end_of_the_gap(
    tz: str, spring: datetime, fall: datetime, repeated: str
) -> None:
    fires = fires_around(daily("02:30", tz), spring)
    assert [f"{t:%d %H:%M}" for t in fires] == [
        f"{(spring + timedelta(days=d)).day:02} {'03:00' if d == 0 else '02:30'}"
        for d in range(-2, 3)
    ]
    gap_fire = fires[2]
    # The end of the gap: one second earlier the clocks still showed the old offset.
    assert (gap_fire - timedelta(seconds=1)).astimezone(ZoneInfo(tz)).utcoffset() != (
        gap_fire.utcoffset()
    )


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated"), CHANGES)
def test_a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence(
    tz: str, spring: datetime, fall: datetime, repeated: str
) -> None:
    fires = fires_around(daily(repeated, tz), fall)
    assert [f"{t:%H:%M}" for t in fires] == [repeated] * 5
    assert len({t.date() for t in fires}) == 5
    on_the_day = fires[2]
    assert on_the_day.fold == 0
    assert on_the_day.replace(fold=1).utcoffset() != on_the_day.utcoffset()  # it was repeated


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated"), CHANGES)
def test_a_0230_rule_fires_every_day_exactly_once_through_both_changes(
    tz: str, spring: datetime, fall: datetime, repeated: str
) -> None:
    for day in (spring, fall):
        fires = fires_around(daily("02:30", tz), day)
        assert len(fires) == len({t.date() for t in fires}) == 5
        assert fires == sorted(fires)


def test_a_half_hourly_cron_runs_by_the_clock_through_the_repeated_hour_and_the_gap() -> None:
    rule = Rule(kind=RuleKind.cron, timezone="Europe/Berlin", cron="*/30 * * * *")
    fall = next_fire_times(rule, after=datetime(2026, 10, 24, 23, 50, tzinfo=UTC), count=6)
    assert [format_local(t, rule.timezone) for t in fall] == [
        "Sun 25 Oct 2026 02:00 CEST",
        "Sun 25 Oct 2026 02:30 CEST",
        "Sun 25 Oct 2026 02:00 CET",
        "Sun 25 Oct 2026 02:30 CET",
        "Sun 25 Oct 2026 03:00",
        "Sun 25 Oct 2026 03:30",
    ]
    spring = next_fire_times(rule, after=datetime(2027, 3, 28, 0, 10, tzinfo=UTC), count=4)
    assert [f"{t:%H:%M}" for t in spring] == ["00:30", "01:00", "01:30", "02:00"]  # UTC


NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def test_a_one_time_rule_in_a_gap_resolves_to_the_end_of_the_gap_and_says_so() -> None:
    rule = parse_when("2027-03-28 02:30", tz="Europe/Berlin", now=NOW)
    assert rule.at == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert describe(rule) == (
        "once on Sun 28 Mar 2027 at 03:00 (Europe/Berlin; 02:00-02:59 do not exist that night, "
        "it goes at 03:00)"
    )


def test_a_one_time_rule_in_a_repeated_hour_takes_the_first_and_says_which() -> None:
    rule = parse_when("25.10.2026 02:30", tz="Europe/Berlin", now=NOW)
    assert rule.at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert describe(rule) == (
        "once on Sun 25 Oct 2026 at 02:30 CEST (Europe/Berlin; 02:30 happens twice that "
        "night, this is the first)"
    )
    second = Rule(kind=RuleKind.once, timezone="Europe/Berlin", at=rule.at + timedelta(hours=1))
    assert describe(second).endswith("this is the second)")
    assert "02:30 CET " in describe(second)
    # The name of the clock after the time reads each back.
    assert parse_when("once on Sun 25 Oct 2026 at 02:30 CEST", tz="Europe/Berlin", now=NOW) == rule
    assert parse_when("25.10.2026 02:30 CET", tz="Europe/Berlin", now=NOW) == second


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated"), CHANGES)
def test_one_time_rules_in_gaps_and_folds_are_deterministic(
    tz: str, spring: datetime, fall: datetime, repeated: str
) -> None:
    before = datetime(2026, 9, 1, tzinfo=UTC)
    gap = parse_when(f"{spring:%Y-%m-%d} 02:30", tz=tz, now=before)
    fold = parse_when(f"{fall:%Y-%m-%d} {repeated}", tz=tz, now=before)
    assert gap.at is not None and fold.at is not None
    assert f"{gap.at.astimezone(ZoneInfo(tz)):%H:%M}" == "03:00"
    assert fold.at.astimezone(ZoneInfo(tz)).fold == 0
    assert parse_when(f"{spring:%Y-%m-%d} 02:30", tz=tz, now=before) == gap


def test_the_trigger_for_apscheduler_has_the_same_dst_rules() -> None:
    rule = daily("02:30", "Europe/Berlin")
    trigger = RuleTrigger(rule)
    now = datetime(2026, 10, 24, 12, tzinfo=UTC)
    first = trigger.get_next_fire_time(None, now)
    assert first is not None
    second = trigger.get_next_fire_time(first, first)
    assert second is not None
    third = trigger.get_next_fire_time(second, second)
    assert [first, second, third] == next_fire_times(rule, after=now, count=3)
    # On the first call a fire time equal to now counts (APScheduler's convention).
    assert trigger.get_next_fire_time(None, first) == first


# --- what the libraries do on their own (found by running them; pinned so an upgrade shows) --


def test_apscheduler_3_11_alone_gets_dst_days_wrong() -> None:
    """Why `core.domain.when` maps wall times itself, not trusting CronTrigger's zones."""
    berlin = ZoneInfo("Europe/Berlin")
    trigger = CronTrigger(hour=2, minute=30, timezone=berlin)
    # Spring forward: 02:30 does not exist; APScheduler fires at 03:30, an hour past the gap.
    spring = trigger.get_next_fire_time(None, datetime(2027, 3, 28, 0, 0, tzinfo=UTC))
    assert spring.astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    # Fall back, called the way the scheduler calls it (previous fire time, then now): it fires
    # at both 02:30s, then keeps answering the second one again, which is not after it. The
    # scheduler's catch-up loop (`while next_run_time <= now`) would never leave that hour.
    first = trigger.get_next_fire_time(None, datetime(2026, 10, 25, 0, 0, tzinfo=UTC))
    assert first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    again = trigger.get_next_fire_time(second, second + timedelta(seconds=1))
    assert again == second


def test_apscheduler_3_11_from_crontab_counts_monday_as_zero() -> None:
    trigger = CronTrigger.from_crontab("0 9 * * 1", timezone=ZoneInfo("UTC"))
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 28, tzinfo=UTC))
    assert f"{fire:%a}" == "Tue"  # standard cron means Monday
    rule = Rule(kind=RuleKind.cron, timezone="UTC", cron="0 9 * * 1")
    (ours,) = next_fire_times(rule, after=datetime(2026, 11, 28, tzinfo=UTC), count=1)
    assert f"{ours:%a}" == "Mon"


def test_croniter_agrees_in_gaps_but_fires_a_repeated_time_twice() -> None:
    """croniter's DST semantics: a skipped time moves to the first minute after the gap (as
    ours), but a repeated time fires at both occurrences (ours: only the first). The random
    cross-check in test_when_properties therefore leaves out the days around changes."""
    berlin = ZoneInfo("Europe/Berlin")
    spring = croniter("30 2 * * *", datetime(2027, 3, 28, 0, 0, tzinfo=berlin))
    assert spring.get_next(datetime).astimezone(UTC) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    fall = croniter("30 2 * * *", datetime(2026, 10, 25, 0, 0, tzinfo=berlin))
    both = [fall.get_next(datetime).astimezone(UTC) for _ in range(2)]
    assert both == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]
    rule = daily("02:30", "Europe/Berlin")
    ours = next_fire_times(rule, after=datetime(2026, 10, 24, 23, tzinfo=UTC), count=2)
    assert ours[1] - ours[0] == timedelta(hours=25)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("25.10.2026 12:30 CEST", "25.10.2026 12:30 CEST is not a time in Europe/Berlin; "
         "try '25.10.2026 12:30 CET'."),
        ("25.10.2026 02:30 +11", "try '25.10.2026 02:30 CEST' or '25.10.2026 02:30 CET'."),
        ("28.03.2027 02:30 CET", "28.03.2027 02:30 does not exist in Europe/Berlin (the clocks "
         "skip it); try '28.03.2027 02:30'."),
        ("25.10.2026 02:30 xyz", "I don't know the word 'xyz'"),
        ("tomorrow 9:00 and", "I can't read 'tomorrow 9:00 and' as a time"),
    ],
)  # fmt: skip
def test_a_clock_name_that_does_not_fit_the_time_is_refused_with_the_ones_that_do(
    text: str, says: str
) -> None:
    with pytest.raises(InvalidWhen) as refused:
        parse_when(text, tz="Europe/Berlin", now=NOW)
    assert says in str(refused.value)


def test_a_clock_name_that_fits_is_accepted_on_any_day() -> None:
    rule = parse_when("25.10.2026 12:30 CET", tz="Europe/Berlin", now=NOW)
    assert rule.at == datetime(2026, 10, 25, 11, 30, tzinfo=UTC)
    lord_howe = parse_when("4.4.2027 01:45 +1030", tz="Australia/Lord_Howe", now=NOW)
    assert lord_howe.at == datetime(2027, 4, 3, 15, 15, tzinfo=UTC)  # the second 01:45
