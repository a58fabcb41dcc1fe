"""Schedules that end: `until DATE`, `N times` and `for N weeks` after a repeating rule.

`until` runs through the end of that local day, `N times` ends at the N-th occurrence's instant
(computed once, exact across DST), `for N weeks` counts local wall time from the first
occurrence. What cannot work is refused with what to type instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.domain.errors import InvalidWhen
from core.domain.models import Rule
from core.domain.when import (
    MOST_LEFT_COUNTED,
    describe,
    end_words,
    next_fire_time,
    next_fire_times,
    occurrences_left,
    parse_when,
)

NOW = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # Monday 21:00 in Berlin
MS = timedelta(milliseconds=1)


def parse(text: str, tz: str = "Europe/Berlin", now: datetime = NOW) -> Rule:
    return parse_when(text, tz=tz, now=now)


def fires(rule: Rule, now: datetime = NOW, most: int = 2000) -> list[datetime]:
    return next_fire_times(rule, after=now, count=most)


def local(instant: datetime, tz: str) -> str:
    return f"{instant.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M}"


def end_of_day(day: datetime, tz: str) -> datetime:
    """The last millisecond of local day `day` (naive) in `tz`."""
    return (day + timedelta(days=1)).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC) - MS


# --- the forms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "every day at 9:00 until 31.12.2026",
        "every day at 9:00 until 2026-12-31",
        "every day at 9:00 until 31 dec",
        "every day at 9:00 until dec 31",
        "every day at 9:00, until 31 December 2026",
        "every day at 9:00 until 31.12",
        "every day at 9:00 till thu 31 dec",
    ],
)
def test_until_runs_through_the_end_of_that_local_day(text: str) -> None:
    rule = parse(text)
    assert rule.ends_at == end_of_day(datetime(2026, 12, 31), "Europe/Berlin")
    assert rule.times is None
    times = fires(rule)
    assert [local(t, "Europe/Berlin") for t in times[:1] + times[-1:]] == [
        "2026-12-08 09:00",
        "2026-12-31 09:00",
    ]
    assert len(times) == 24
    assert next_fire_time(rule, after=times[-1]) is None
    assert describe(rule) == "every day at 09:00 (Europe/Berlin), until Thu 31 Dec 2026"


def test_until_includes_a_midnight_that_day_and_not_the_next() -> None:
    rule = parse("every day at midnight until 10.12.2026")
    assert [local(t, "Europe/Berlin") for t in fires(rule)] == [
        "2026-12-08 00:00",
        "2026-12-09 00:00",
        "2026-12-10 00:00",
    ]


def test_until_a_date_and_time_ends_at_that_instant_inclusive() -> None:
    rule = parse("every day at 18:00 until 10.12.2026 18:00")
    assert [local(t, "Europe/Berlin") for t in fires(rule)] == [
        "2026-12-08 18:00",
        "2026-12-09 18:00",
        "2026-12-10 18:00",
    ]
    assert end_words(rule) == "until Thu 10 Dec 2026 18:00"


def test_until_a_time_alone_is_its_next_coming() -> None:
    # 21:00 in Berlin: 22:00 is today, 18:00 tomorrow.
    rule = parse("every 15 minutes until 22:00")
    assert [local(t, "Europe/Berlin")[11:] for t in fires(rule)] == [
        "21:15",
        "21:30",
        "21:45",
        "22:00",
    ]
    rule = parse("every hour until 6pm")
    assert rule.ends_at is not None
    assert local(rule.ends_at, "Europe/Berlin") == "2026-12-08 18:00"
    assert end_words(rule) == "until Tue 8 Dec 2026 18:00"


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("every day at 9:00 5 times", 5),
        ("every weekday at 8:30, 5 times", 5),
        ("every 2 hours 1 time", 1),
        ("every day at 9:00 twice", 2),
        ("every day at 9:00 three times", 3),
        ("cron 0 9 * * 1-5 10 times", 10),
        ("every day at 9:00 1000 times", 1000),
    ],
)
def test_n_times_ends_at_the_nth_occurrence(text: str, count: int) -> None:
    rule = parse(text)
    times = fires(rule)
    assert len(times) == count
    assert rule.ends_at == times[-1]
    assert rule.times == count
    assert occurrences_left(rule, times[0]) == count
    assert occurrences_left(rule, times[-1]) == 1
    assert occurrences_left(rule, None) == 0
    assert describe(rule).endswith(f", {count} time{'s' if count > 1 else ''}")


@pytest.mark.parametrize(
    ("text", "count", "last"),
    [
        ("every monday at 9:00 for 4 weeks", 4, "2027-01-04 09:00"),
        ("every day at 9:00 for 10 days", 10, "2026-12-17 09:00"),
        ("every day at 9:00 for 1 month", 31, "2027-01-07 09:00"),
        ("every 2 hours for 1 day", 12, "2026-12-08 21:00"),
        ("every 15 minutes for 2 hours", 8, "2026-12-07 23:00"),
        # 31 Dec, 31 Jan (no 31 Feb); 31 Mar at 10:00 is three months on, the end
        ("every month on the 31st at 10:00 for 3 months", 2, "2027-01-31 10:00"),
    ],
)
def test_for_counts_from_the_first_occurrence(text: str, count: int, last: str) -> None:
    rule = parse(text)
    times = fires(rule)
    assert len(times) == count
    assert local(times[-1], "Europe/Berlin") == last


def test_a_for_end_reads_the_same_whatever_fraction_of_a_second_it_is() -> None:
    # An interval starts now, at a fraction of a second; its `for` end is still read as the
    # instant it ends before, and the count is the same.
    now = NOW.replace(microsecond=654321)
    rule = parse("every 2 hours for 1 day", now=now)
    assert rule.ends_at is not None and rule.ends_at.microsecond == 999000
    assert len(fires(rule, now)) == 12
    assert end_words(rule) == "ends before Tue 8 Dec 2026 23:00"
    rule = parse("every 10 minutes for 1 hour", now=now)
    assert len(fires(rule, now)) == 6
    assert end_words(rule) == "ends before Mon 7 Dec 2026 22:10"


def test_an_until_rule_counts_what_is_left_up_to_a_cap_and_a_count_exactly() -> None:
    near = parse("every day at 9:00 until 31.12.2026")
    assert occurrences_left(near, fires(near)[0]) == 24  # 8 to 31 Dec: exact below the cap
    far = parse("every weekday at 9:00 until 31.12.2030")
    assert len(fires(far)) > 1000
    assert occurrences_left(far, fires(far)[0]) == MOST_LEFT_COUNTED + 1  # "more than 100"
    many = parse("every day at 9:00 1000 times")
    assert occurrences_left(many, fires(many)[0]) == 1000


def test_a_rule_without_an_end_is_unchanged() -> None:
    rule = parse("every day at 9:00")
    assert rule.ends_at is None and rule.times is None
    assert occurrences_left(rule, NOW) is None
    assert end_words(rule) == ""
    assert describe(rule) == "every day at 09:00 (Europe/Berlin)"


# --- daylight saving time --------------------------------------------------------------------

# (zone, spring-forward day, fall-back day)
CHANGES = [
    ("Europe/Berlin", datetime(2027, 3, 28), datetime(2027, 10, 31)),
    ("America/New_York", datetime(2027, 3, 14), datetime(2027, 11, 7)),
    ("Australia/Lord_Howe", datetime(2027, 10, 3), datetime(2027, 4, 4)),
]


@pytest.mark.parametrize(("tz", "spring", "fall"), CHANGES)
def test_until_a_change_day_ends_at_that_days_local_end(
    tz: str, spring: datetime, fall: datetime
) -> None:
    for day in (spring, fall):
        now = (day - timedelta(days=3)).replace(hour=12, tzinfo=ZoneInfo(tz))
        rule = parse(f"every day at 9:00 until {day:%d.%m.%Y}", tz=tz, now=now)
        assert rule.ends_at == end_of_day(day, tz)
        assert rule.ends_at.astimezone(ZoneInfo(tz)).replace(tzinfo=None) == day.replace(
            hour=23, minute=59, second=59, microsecond=999000
        )
        times = fires(rule, now)
        assert [local(t, tz)[11:] for t in times] == ["09:00"] * 3
        assert local(times[-1], tz)[:10] == f"{day:%Y-%m-%d}"


@pytest.mark.parametrize(("tz", "spring", "fall"), CHANGES)
def test_n_times_across_a_change_keeps_the_local_time_and_the_count(
    tz: str, spring: datetime, fall: datetime
) -> None:
    for day in (spring, fall):
        now = (day - timedelta(days=2)).replace(hour=12, tzinfo=ZoneInfo(tz))
        rule = parse("every day at 9:00 5 times", tz=tz, now=now)
        times = fires(rule, now)
        assert [local(t, tz)[11:] for t in times] == ["09:00"] * 5
        assert rule.ends_at == times[-1]
        assert local(times[1], tz)[:10] == f"{day:%Y-%m-%d}"  # the change day is the second


@pytest.mark.parametrize(("tz", "spring", "fall"), CHANGES)
def test_for_weeks_across_a_change_counts_local_wall_time(
    tz: str, spring: datetime, fall: datetime
) -> None:
    for day in (spring, fall):
        now = (day - timedelta(days=8)).replace(hour=12, tzinfo=ZoneInfo(tz))
        rule = parse("every day at 9:00 for 2 weeks", tz=tz, now=now)
        times = fires(rule, now)
        # 14 days of 09:00, though one of them is 23 or 25 hours long (Lord Howe: 23.5, 24.5)
        assert len(times) == 14
        assert {local(t, tz)[11:] for t in times} == {"09:00"}
        first = times[0].astimezone(ZoneInfo(tz)).replace(tzinfo=None)
        assert (
            rule.ends_at
            == (first + timedelta(days=14)).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC) - MS
        )


def test_an_hourly_rule_for_a_day_with_a_change_counts_the_days_hours() -> None:
    # Berlin, 28 Mar 2027: 02:00-02:59 do not exist; `for 1 day` is wall time, 23 hours here,
    # so an hourly rule from 00:30 fires 23 times and the next day's 00:30 is past the end.
    tz = "Europe/Berlin"
    now = datetime(2027, 3, 27, 23, 30, tzinfo=ZoneInfo(tz))
    rule = parse("every hour for 1 day", tz=tz, now=now)
    times = fires(rule, now)
    assert local(times[0], tz) == "2027-03-28 00:30"
    assert local(times[-1], tz) == "2027-03-28 23:30"
    assert len(times) == 23


# --- refusals --------------------------------------------------------------------------------


def refusal(text: str, tz: str = "Europe/Berlin") -> str:
    with pytest.raises(InvalidWhen) as caught:
        parse(text, tz=tz)
    message = str(caught.value)
    assert "; try '" in message
    return message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tomorrow 9:00 5 times", "'tomorrow 9:00' is one time, so it cannot end '5 times'"),
        ("in 10 minutes until 31.12.2026", "is one time, so it cannot end"),
        ("24.12.2026 18:00 for 2 weeks", "is one time, so it cannot end"),
        ("every day at 9:00 0 times", "say how many times, at least 1"),
        ("every day at 9:00 1001 times", "1001 times is too many: at most 1000"),
        ("every day at 9:00 until 1.12.2026", "it would end before its first time"),
        ("every day at 9:00 until 7.12.2026", "it would end before its first time"),
        ("every day at 9:00 until 2037-01-01", "an end can be at most 10 years ahead"),
        ("every day at 9:00 for 11 years", "an end can be at most 10 years ahead"),
        ("every day at 9:00 for 200 months", "an end can be at most 10 years ahead"),
        ("every day at 9:00 for 0 days", "'for 0 days' is no time at all"),
        ("every day at 9:00 5 times for 2 weeks", "give one end, not two"),
        ("every day at 9:00 until someday", "'until someday': say the last day"),
        ("every day at 9:00 until 31.02.2027", "31.02.2027 is not a date"),
        ("every day at 9:00 until 32 dec", "'32 dec' is not a date"),
        ("every day at 9:00 for 2 fortnights", "I don't know the word 'fortnights'"),
        ("every day at 9:00 untill 31.12.2026", "did you mean 'until'?"),
    ],
)
def test_what_cannot_work_is_refused_with_what_to_type(text: str, says: str) -> None:
    message = refusal(text)
    assert says in message


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow 9:00 5 times",
        "every day at 9:00 0 times",
        "every day at 9:00 until 1.12.2026",
        "every day at 9:00 5 times for 2 weeks",
        "every day at 9:00 until someday",
        "every weekday at 8:30 1001 times",
    ],
)
def test_the_suggestions_of_a_refusal_parse(text: str) -> None:
    message = refusal(text)
    suggestions = message.split("; try ", 1)[1].rstrip(".").split(" or ")
    for suggestion in suggestions:
        parse(suggestion.strip("'"))


def test_an_end_beyond_datetimes_range_is_refused_not_crashed() -> None:
    assert "at most 10 years" in refusal("every day at 9:00 for 999999999999 years")
    assert "at most 10 years" in refusal("every minute for 999999999999 hours")
    assert "too many" in refusal(f"every day at 9:00 {'9' * 40} times")


# --- any end ---------------------------------------------------------------------------------

REPEATS = [
    "every day at 9:00",
    "every 2 hours",
    "cron */30 * * * *",
    "every month on the 31st at 8:00",
    "tomorrow 9:00",
    "every year on 29.02 at 9:00",
]
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Kiritimati", "UTC"]


@settings(deadline=None, derandomize=True, database=None, max_examples=600)
@given(
    st.sampled_from(REPEATS),
    st.lists(
        st.sampled_from(
            ["until", "for", "times", "time", "twice", "0", "1", "3", "999", "1000", "12", "31",
             "29.02", ".12", "2026", "2027", "2036", "2037", "dec", "weeks", "months", "years",
             "hours", "days", "18:00", "6pm", "noon", "-", ",", "fri", "fortnight"]
        ),
        min_size=1,
        max_size=4,
    ).map(" ".join),
    st.sampled_from(ZONES),
    st.integers(min_value=0, max_value=400 * 86400),
)  # fmt: skip
@example("every day at 9:00", "until 29.02", "Europe/Berlin", 0)
@example("every year on 29.02 at 9:00", "3 times", "UTC", 0)
def test_any_end_is_a_rule_that_keeps_it_or_a_plain_refusal(
    repeat: str, end: str, tz: str, offset_s: int
) -> None:
    now = NOW + timedelta(seconds=offset_s)
    try:
        rule = parse_when(f"{repeat} {end}", tz=tz, now=now)
    except InvalidWhen as refused:
        assert "; try '" in str(refused)
        return
    assert describe(rule)
    if rule.ends_at is None:
        return
    assert rule.ends_at <= now + timedelta(days=366 * 10 + 1)
    times = next_fire_times(rule, after=now, count=(rule.times or 50) + 1)
    assert times and all(t <= rule.ends_at for t in times)
    if rule.times is not None:
        assert len(times) == rule.times
        assert occurrences_left(rule, times[0]) == rule.times
