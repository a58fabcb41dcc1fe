"""describe() and format_local(): what a person reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.domain.models import Rule, RuleKind
from core.domain.when import describe, format_local, parse_when

NOW = datetime(2026, 11, 28, 10, 10, tzinfo=UTC)
TZ = "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("24.12.2026 18:00", "once on Thu 24 Dec 2026 at 18:00 (Europe/Berlin)"),
        ("in 10 minutes", "once on Sat 28 Nov 2026 at 11:20 (Europe/Berlin)"),
        ("every day at 9:00", "every day at 09:00 (Europe/Berlin)"),
        ("every weekday at 8:30", "every weekday at 08:30 (Europe/Berlin)"),
        ("every monday,friday at 18:00", "every Monday and Friday at 18:00 (Europe/Berlin)"),
        (
            "every sun,wed,mon at 7:00",
            "every Monday, Wednesday and Sunday at 07:00 (Europe/Berlin)",
        ),
        ("cron 0 9 * * 0-6", "every day at 09:00 (Europe/Berlin)"),
        ("cron 0 9 * * 7", "every Sunday at 09:00 (Europe/Berlin)"),
        ("every month on the 1st at 10:00", "every month on the 1st at 10:00 (Europe/Berlin)"),
        ("every month on the 22nd at 10:00", "every month on the 22nd at 10:00 (Europe/Berlin)"),
        (
            "every month on the 31st at 10:00",
            "every month on the 31st at 10:00 (Europe/Berlin; months without a 31st are skipped)",
        ),
        ("every year on 24.12 at 0:00", "every year on 24 December at 00:00 (Europe/Berlin)"),
        (
            "every year on 29.02 at 8:00",
            "every year on 29 February at 08:00 (Europe/Berlin; only in leap years)",
        ),
        ("cron */15 9-17 * * 1-5", "cron */15 9-17 * * 1-5 (Europe/Berlin)"),
        ("cron 0 9 1 * 1", "cron 0 9 1 * 1 (Europe/Berlin)"),
        ("every 2 hours", "every 2 hours, first on Sat 28 Nov 2026 at 13:10 (Europe/Berlin)"),
        ("every hour", "every hour, first on Sat 28 Nov 2026 at 12:10 (Europe/Berlin)"),
        (
            "every 90 minutes",
            "every 90 minutes, first on Sat 28 Nov 2026 at 12:40 (Europe/Berlin)",
        ),
    ],
)
def test_describe_says_the_rule_in_words(text: str, words: str) -> None:
    assert describe(parse_when(text, tz=TZ, now=NOW)) == words


def test_describe_a_one_time_rule_in_another_zone() -> None:
    rule = Rule(
        kind=RuleKind.once, timezone="Asia/Tokyo", at=datetime(2026, 12, 24, 9, tzinfo=UTC)
    )
    assert describe(rule) == "once on Thu 24 Dec 2026 at 18:00 (Asia/Tokyo)"


def test_format_local_shows_the_wall_clock_of_the_zone() -> None:
    instant = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
    assert format_local(instant, "Europe/Berlin") == "Thu 24 Dec 2026 18:00"
    assert format_local(instant, "America/New_York") == "Thu 24 Dec 2026 12:00"


def test_format_local_tells_the_two_passes_of_a_repeated_hour_apart() -> None:
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert format_local(first, TZ) == "Sun 25 Oct 2026 02:30 CEST"
    assert format_local(second, TZ) == "Sun 25 Oct 2026 02:30 CET"
