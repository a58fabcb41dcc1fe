"""Every form of the when language, read at a fixed moment in Europe/Berlin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain.errors import InvalidTimezone, InvalidWhen
from core.domain.models import Rule, RuleKind
from core.domain.when import EXAMPLES, format_local, parse_cron, parse_when, validate_timezone

# Saturday 28 Nov 2026, 11:10 in Berlin (CET, UTC+1).
NOW = datetime(2026, 11, 28, 10, 10, tzinfo=UTC)
TZ = "Europe/Berlin"


def parse(text: str, tz: str = TZ) -> Rule:
    return parse_when(text, tz=tz, now=NOW)


def local(rule: Rule) -> str:
    assert rule.kind is RuleKind.once
    assert rule.at is not None
    assert rule.at.utcoffset() == timedelta(0)
    return format_local(rule.at, rule.timezone)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-24 18:00", "Thu 24 Dec 2026 18:00"),
        ("2026-12-24T18:00", "Thu 24 Dec 2026 18:00"),
        ("24.12.2026 18:00", "Thu 24 Dec 2026 18:00"),
        ("24.12.2026 at 6pm", "Thu 24 Dec 2026 18:00"),
        ("Thu 24 Dec 2026 18:00", "Thu 24 Dec 2026 18:00"),
        ("once on Thu 24 Dec 2026 at 18:00", "Thu 24 Dec 2026 18:00"),
        ("24 december 2026 18:00", "Thu 24 Dec 2026 18:00"),
        ("Dec 24, 2026 18:00", "Thu 24 Dec 2026 18:00"),
        ("Thu, 24 Dec 2026, 18:00", "Thu 24 Dec 2026 18:00"),
        ("24.12.2026, 6:00 pm", "Thu 24 Dec 2026 18:00"),
        ("tomorrow 9:00", "Sun 29 Nov 2026 09:00"),
        ("tomorrow at 9am", "Sun 29 Nov 2026 09:00"),
        ("9:30 PM tomorrow", "Sun 29 Nov 2026 21:30"),
        ("tomorrow at noon", "Sun 29 Nov 2026 12:00"),
        ("tomorrow at midnight", "Sun 29 Nov 2026 00:00"),  # the midnight that starts it
        ("24.12.2026 midnight", "Thu 24 Dec 2026 00:00"),
        ("today 18:30", "Sat 28 Nov 2026 18:30"),
        ("monday 9am", "Mon 30 Nov 2026 09:00"),
        ("on Monday at 9 a.m.", "Mon 30 Nov 2026 09:00"),
        ("next monday 9am", "Mon 30 Nov 2026 09:00"),
        ("saturday 9am", "Sat 5 Dec 2026 09:00"),  # today is Saturday: the next one
        ("fri 12am", "Fri 4 Dec 2026 00:00"),
        ("thurs 9am", "Thu 3 Dec 2026 09:00"),
        ("fri 12pm", "Fri 4 Dec 2026 12:00"),
        ("9pm", "Sat 28 Nov 2026 21:00"),
        ("21:00", "Sat 28 Nov 2026 21:00"),
        ("at 21:00", "Sat 28 Nov 2026 21:00"),
        ("8:00", "Sun 29 Nov 2026 08:00"),  # a bare time already past today is tomorrow's
        ("in 10 minutes", "Sat 28 Nov 2026 11:20"),
        ("in 2h", "Sat 28 Nov 2026 13:10"),
        ("in 1 hour and 30 minutes", "Sat 28 Nov 2026 12:40"),
        ("in 1h30m", "Sat 28 Nov 2026 12:40"),
        ("in an hour", "Sat 28 Nov 2026 12:10"),
        ("in 1 day", "Sun 29 Nov 2026 11:10"),
        ("in 2 weeks", "Sat 12 Dec 2026 11:10"),
    ],
)
def test_one_time_forms_fire_once_at_the_local_time_meant(text: str, expected: str) -> None:
    rule = parse(text)
    assert rule.timezone == TZ
    assert local(rule) == expected


def test_relative_times_count_from_now_exactly() -> None:
    assert parse("in 10 minutes").at == NOW + timedelta(minutes=10)
    assert parse("in 2h").at == NOW + timedelta(hours=2)
    assert parse("in 45 seconds").at == NOW + timedelta(seconds=45)


@pytest.mark.parametrize(
    "text",
    ["  TOMORROW    9:00 ", "Tomorrow 9:00", "tomorrow 9:00.", "tomorrow\t9:00", "TOMORROW 9 AM"],
)
def test_case_and_extra_spaces_do_not_matter(text: str) -> None:
    assert local(parse(text)) == "Sun 29 Nov 2026 09:00"


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("every day at 9:00", "0 9 * * *"),
        ("every day 9:00", "0 9 * * *"),
        ("everyday at 9am", "0 9 * * *"),
        ("daily 09:00", "0 9 * * *"),
        ("daily at 9:05pm", "5 21 * * *"),
        ("every weekday at 8:30", "30 8 * * 1-5"),
        ("weekdays at 8:30", "30 8 * * 1-5"),
        ("every monday,friday at 18:00", "0 18 * * 1,5"),
        ("every monday, friday at 18:00", "0 18 * * 1,5"),
        ("every Mon and Fri at 6pm", "0 18 * * 1,5"),
        ("every monday, wednesday and friday at 7:15", "15 7 * * 1,3,5"),
        ("every sunday 10:00", "0 10 * * 0"),
        ("every sundays at 10:00", "0 10 * * 0"),
        ("every saturday and sunday at 10:00", "0 10 * * 0,6"),
        ("every month on the 1st at 10:00", "0 10 1 * *"),
        ("every month on the 15th at 9am", "0 9 15 * *"),
        ("monthly on the 2nd at 10:00", "0 10 2 * *"),
        ("every day at midnight", "0 0 * * *"),
        ("every year on 24.12 at 9:00", "0 9 24 12 *"),
        ("yearly on december 24 at midnight", "0 0 24 12 *"),
        ("annually on the 3rd of march at 7am", "0 7 3 3 *"),
        ("every year on 29 feb at 8:00", "0 8 29 2 *"),
        ("cron 0 9 * * 1-5", "0 9 * * 1-5"),
        ("CRON  0  9  *  *  MON-FRI", "0 9 * * mon-fri"),
        ("cron */15 9-17 * * 1-5", "*/15 9-17 * * 1-5"),
        ("cron 0 9 * * 7", "0 9 * * 7"),
        ("cron 0 0 1 jan,jul *", "0 0 1 jan,jul *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
    ],
)
def test_recurring_forms_are_standard_cron_in_the_zone(text: str, cron: str) -> None:
    rule = parse(text)
    assert rule == Rule(kind=RuleKind.cron, timezone=TZ, cron=cron)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("every 2 hours", 7200),
        ("every 2h", 7200),
        ("every hour", 3600),
        ("hourly", 3600),
        ("every 30 minutes", 1800),
        ("every 90 min", 5400),
        ("every minute", 60),
    ],
)
def test_every_n_hours_or_minutes_is_an_interval_from_now(text: str, seconds: int) -> None:
    rule = parse(text)
    assert rule == Rule(kind=RuleKind.interval, timezone=TZ, every_seconds=seconds, start=NOW)


def test_time_zone_is_read_canonically_and_used_for_the_local_time() -> None:
    rule = parse("tomorrow 9:00", tz="america/new_york")
    assert rule.timezone == "America/New_York"
    assert rule.at == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_example_parses(text: str) -> None:
    parse(text)


def error_for(text: str) -> str:
    with pytest.raises(InvalidWhen) as caught:
        parse(text)
    message = str(caught.value)
    # Every refusal shows something that works.
    assert "try '" in message, message
    return message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("today 9:00", "09:00 today has passed; try 'tomorrow 09:00'"),
        ("today 11:10", "11:10 today has passed"),
        ("2025-12-24 18:00", "Wed 24 Dec 2025 18:00 has passed"),
        ("28.11.2026 11:00", "has passed (it is now Sat 28 Nov 2026 11:10 in Europe/Berlin)"),
        ("in 0 minutes", "is not in the future"),
    ],
)
def test_a_time_in_the_past_is_refused_and_says_so(text: str, says: str) -> None:
    assert says in error_for(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("31.02.2027 18:00", "February 2027 has 28 days"),
        ("2027-02-29 18:00", "February 2027 has 28 days"),
        ("31.04.2027 9:00", "April 2027 has 30 days"),
        ("01.13.2027 9:00", "there is no month 13"),
        ("tomorrow 25:00", "25:00 is not a time of day"),
        ("25:00", "hours run from 0 to 23"),
        ("tomorrow 9:60", "minutes run from 00 to 59"),
        ("tomorrow 13pm", "with am/pm the hour runs from 1 to 12"),
        ("tomorrow 0am", "with am/pm the hour runs from 1 to 12"),
        ("fri 24 dec 2026 18:00", "24 Dec 2026 is a Thursday, not a Friday"),
        ("every month on the 32nd at 10:00", "a month has no day 32"),
        ("every year on 30.02 at 9:00", "February has no day 30"),
        ("every year on 24.13 at 9:00", "there is no month 13"),
    ],
)
def test_impossible_dates_and_times_are_refused(text: str, says: str) -> None:
    assert says in error_for(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("evrey day at 9:00", "did you mean 'every'?"),
        ("tomorow 9:00", "did you mean 'tomorrow'?"),
        ("every mondy at 9:00", "did you mean 'monday'?"),
        ("in 10 minuts", "did you mean 'minutes'?"),
        ("next weeek", "did you mean 'week'?"),
        ("banana", "I don't know the word 'banana'"),
    ],
)
def test_typos_are_refused_with_a_suggestion(text: str, says: str) -> None:
    assert says in error_for(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tomorrow 9", "'9' alone is not a clear time"),
        ("tomorrow", "'tomorrow' needs a time"),
        ("2026-12-24", "needs a time"),
        ("every day", "needs a time of day"),
        ("every 2 days", "needs a time of day"),
        ("every 8785 hours", "too long a repeat"),
        ("every monday", "say at what time"),
        ("every month on the 15th", "try 'every month on the 15th at 10:00'"),
        ("every year on 24.12", "try 'every year on 24.12 at 9:00'"),
        ("every 30 seconds", "the shortest repeat is every minute"),
        ("mondays 9am", "'mondays' could mean one or every monday"),
        ("in 1 month", "months and years have no fixed length"),
        ("24/12/2026 18:00", "a date with slashes can be read two ways"),
        ("tomorrow 9.30", "write times with a colon; try 'tomorrow 9:30'"),
        ("0 9 * * 1-5", "a cron rule starts with the word 'cron'"),
        ("", "say when"),
        ("every", "as a repeat"),
    ],
)
def test_ambiguous_or_incomplete_input_is_refused_not_guessed(text: str, says: str) -> None:
    assert says in error_for(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cron 0 9 * *", "a cron rule has 5 fields"),
        ("cron 60 9 * * *", "cron minute field: 60 is out of range 0-59"),
        ("cron 0 24 * * *", "cron hour field: 24 is out of range 0-23"),
        ("cron 0 9 0 * *", "cron day-of-month field: 0 is out of range 1-31"),
        ("cron 0 9 * 13 *", "cron month field: 13 is out of range 1-12"),
        ("cron 0 9 * * 8", "cron day-of-week field: 8 is out of range 0-7 (Sunday is 0 or 7)"),
        ("cron 0 9 * * fri-mon", "cron day-of-week field: range 'fri-mon' runs backwards"),
        ("cron 0 9 * * funday", "cron day-of-week field: 'funday' is not a value"),
        ("cron 0 9 * foo *", "cron month field: 'foo' is not a value"),
        ("cron */0 9 * * *", "cron minute field: step '0' must be a number from 1 to 60"),
        ("cron 5/10 9 * * *", "a step needs a range, write '5-59/10'"),
        ("cron 0 9 1,,2 * *", "cron day-of-month field"),
        ("cron 0 9 30 2 *", "never fires: day-of-month 30 does not occur in month 2"),
        ("cron 0 9 31 4,6,9,11 *", "never fires"),
    ],
)
def test_bad_cron_is_refused_naming_the_field(text: str, says: str) -> None:
    assert says in error_for(text)


def test_leap_day_cron_is_allowed() -> None:
    assert parse("cron 0 9 29 2 *").cron == "0 9 29 2 *"


def test_unknown_time_zone_is_refused_with_an_example() -> None:
    with pytest.raises(InvalidTimezone, match=r"did you mean 'Europe/Berlin'\?.*Europe/Berlin"):
        parse("tomorrow 9:00", tz="Berlin")
    with pytest.raises(InvalidTimezone, match="IANA name like 'Europe/Berlin'"):
        validate_timezone("Mars/Olympus_Mons")


def test_time_zone_names_are_made_canonical() -> None:
    assert validate_timezone(" europe/berlin ") == "Europe/Berlin"
    assert validate_timezone("utc") == "UTC"


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_when("tomorrow 9:00", tz=TZ, now=datetime(2026, 11, 28, 10, 10))


def test_a_weekday_named_on_that_weekday_means_a_week_ahead() -> None:
    # NOW is a Saturday; "saturday" is never today (say `today 9:00` for that).
    assert local(parse("saturday 18:00")) == "Sat 5 Dec 2026 18:00"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("31.12.9999 23:59", "31.12.9999 is too far ahead"),
        ("in 99999999999 days", "is too far ahead"),
        ("in 99999999999999999999 minutes", "is too far ahead"),
        ("every 99999999999999 hours", "is too long a repeat"),
    ],
)
def test_absurdly_far_times_are_refused(text: str, says: str) -> None:
    assert says in error_for(text)


def test_date_examples_in_refusals_are_never_in_the_past() -> None:
    assert "try '28.12.2026 18:00'" in error_for("31.02.2027 18:00")
    assert "'28.12.2026 18:00' or '2026-12-28 18:00'" in error_for("24/12/2026 18:00")


def test_cron_expressions_are_parsed_once_and_cached() -> None:
    assert parse_cron("0 9 * * 1-5") is parse_cron("0 9 * * 1-5")
