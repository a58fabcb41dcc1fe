"""Every input ends in a rule or in the documented refusal (plain text that says what to type),
never in another exception: the bot would answer "something went wrong"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.domain.errors import InvalidWhen
from core.domain.when import describe, next_fire_times, parse_when

NOW = datetime(2026, 11, 28, 10, 10, tzinfo=UTC)
ZONES = ["Europe/Berlin", "Pacific/Kiritimati", "America/New_York", "Asia/Kolkata", "UTC"]
HUGE = "9" * 5000


def refusal(text: str, tz: str = "Europe/Berlin") -> str:
    with pytest.raises(InvalidWhen) as caught:
        parse_when(text, tz=tz, now=NOW)
    return str(caught.value)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cron */² * * * *", "cron minute field: step '²' must be a number from 1 to 60"),
        ("cron 0 ⑨ * * *", "cron hour field: '⑨' is not valid"),
        ("cron 0 9 * * ¹-5", "cron day-of-week field: '¹-5' is not valid"),
        ("cron 0 9 1-³ * *", "cron day-of-month field: '1-³' is not valid"),
        ("01.01.0001 00:00", "01.01.0001 has passed"),
        ("0001-01-01 00:00", "0001-01-01 has passed"),
        ("1 jan 0001 00:00", "1 jan 0001 has passed"),
        (f"in {HUGE} minutes", "that is too long for a time (5011 characters)"),
        (f"every {HUGE} hours", "that is too long for a time (5012 characters)"),
        (f"cron {HUGE} * * * *", "that is too long for a time (5013 characters)"),
        (f"in {'9' * 300} minutes", "is too far ahead"),
        (f"every {'9' * 300} hours", "is too long a repeat"),
        (f"cron {'9' * 300} * * * *", "cron minute field: 99999999... is out of range 0-59"),
        (f"cron */{'9' * 300} * * * *", "cron minute field: step '999"),
    ],
)
def test_odd_digits_year_one_and_huge_numbers_are_refused_not_crashed(
    text: str, says: str, tz: str
) -> None:
    message = refusal(text, tz)
    assert says in message
    assert "; try '" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("yesterday 10:00", "'yesterday 10:00' is in the past; try 'tomorrow 10:00' or 'today"),
        ("yesterday at 9pm", "is in the past; try 'tomorrow 9pm'"),
        ("yesterday", "'yesterday' is in the past; try 'tomorrow 9:00'"),
        ("10 minutes ago", "'10 minutes ago' is in the past"),
    ],
)  # fmt: skip
def test_yesterday_is_in_the_past_not_a_misspelt_saturday(text: str, says: str) -> None:
    message = refusal(text)
    assert says in message
    assert "saturday" not in message


@pytest.mark.parametrize(
    "text",
    ["banana", "tomorrow 25:00", "31.02.2027 18:00", "cron 0 9 * *", "every 0 hours", "",
     "24/12/2026 18:00", "mondays 9am", "in 10 years", "cron 0 9 * * funday", "tomorrow 9.30"],
)  # fmt: skip
def test_refusals_are_plain_text_without_markup(text: str) -> None:
    """The bot sends HTML and escapes what core says: a backtick would show as a backtick."""
    message = refusal(text)
    assert "`" not in message and "<b>" not in message


@settings(deadline=None, derandomize=True, database=None, max_examples=1500)
@given(
    st.text(max_size=40)
    | st.lists(
        st.sampled_from(
            ["cron", "*", "*/", "²", "①", "٣", "0001", "01.01.", "9", "99", "every", "in",
             "minutes", "hours", "days", "at", ":", "-", ",", "/", " ", "yesterday", "ago",
             "cest", "+11", "2027", "28.03.", "02:30", "jan", "9999", "0" * 20, "1" * 400]
        ),
        max_size=8,
    ).map("".join),
    st.sampled_from(ZONES),
)  # fmt: skip
@example("cron */² * * * *", "UTC")
@example("01.01.0001 00:00", "Europe/Berlin")
@example(f"in {HUGE} minutes", "UTC")
def test_any_text_ends_in_a_rule_or_a_plain_refusal(text: str, tz: str) -> None:
    try:
        rule = parse_when(text, tz=tz, now=NOW)
    except InvalidWhen as refused:
        assert "; try '" in str(refused)
        assert str(refused).count("`") <= text.count("`")  # only what was typed, if any
        return
    assert next_fire_times(rule, after=NOW, count=2)
    assert describe(rule)
