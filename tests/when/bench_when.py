"""How long fire-time computation takes: `.venv/bin/python -m tests.when.bench_when`."""

from __future__ import annotations

import functools
import timeit
from datetime import UTC, datetime, timedelta

from core.domain.models import Rule, RuleKind
from core.domain.when import next_fire_time, parse_when

AFTER = datetime(2026, 11, 28, 10, 10, tzinfo=UTC)


def main() -> None:
    rules = {
        "cron weekdays 09:00": Rule(
            kind=RuleKind.cron, timezone="Europe/Berlin", cron="0 9 * * 1-5"
        ),
        "cron */15 9-17 mon-fri": Rule(
            kind=RuleKind.cron, timezone="America/New_York", cron="*/15 9-17 * * mon-fri"
        ),
        "cron day 1 OR monday": Rule(
            kind=RuleKind.cron, timezone="Australia/Sydney", cron="0 9 1 * 1"
        ),
        "cron 29 Feb": Rule(kind=RuleKind.cron, timezone="Europe/Berlin", cron="0 9 29 2 *"),
        "interval 2 h": Rule(
            kind=RuleKind.interval,
            timezone="UTC",
            every_seconds=7200,
            start=AFTER - timedelta(days=300),
        ),
    }
    runs = 20_000
    for name, rule in rules.items():
        seconds = timeit.timeit(functools.partial(next_fire_time, rule, after=AFTER), number=runs)
        print(f"next_fire_time {name:24} {seconds / runs * 1e6:8.1f} µs")
    seconds = timeit.timeit(
        lambda: parse_when("every weekday at 8:30", tz="Europe/Berlin", now=AFTER), number=2000
    )
    print(f"parse_when {'every weekday at 8:30':28} {seconds / 2000 * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
