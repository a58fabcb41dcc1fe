"""What the "left" line of a card that ends costs (`bot.ui.end_line`): /list renders one per
card on the event loop, so the sum of these is what a /list of such cards blocks it.

Run: `.venv/bin/python -m tests.benchmarks.bench_ends` (seconds; `--repeat 50` measures more
times). Not part of the test run (pytest collects only `test_*.py`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from bot.ui import end_line
from core.domain.models import Recipient, RecipientKind, Schedule
from core.domain.when import next_fire_time, parse_when

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RULES = (
    "every weekday at 9:00 until 31.12.2030",
    "every day at 9:00 until 31.12.2026",
    "every day at 9:00 1000 times",
    "every day at 9:00 5 times",
)


def card(text: str) -> Schedule:
    rule = parse_when(text, tz="Europe/Berlin", now=NOW)
    return Schedule(
        id=1,
        owner_id=1,
        recipients=(Recipient(kind=RecipientKind.phone, address="+4915123456789"),),
        text="Hi",
        rule=rule,
        next_run_at=next_fire_time(rule, after=NOW),
        created_at=NOW,
        updated_at=NOW,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    print("| when | line | end_line (median) |\n| --- | --- | --- |")
    for text in RULES:
        schedule = card(text)
        took = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            line = end_line(schedule)
            took.append(time.perf_counter() - start)
        print(f"| {text} | {line} | {statistics.median(took) * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
