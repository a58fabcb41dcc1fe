"""What /stats costs: the figures from a seeded SQLite store, and the chart's render time and
peak memory, for 30 and 365 days.

Run: `.venv/bin/python -m tests.benchmarks.bench_stats` (under a minute; `--per-day 200`
seeds more messages a day, `--repeat 9` renders more times). Not part of the test run (pytest
collects only `test_*.py`). Each period is measured in a fresh subprocess, so the first render
pays for importing matplotlib as the bot's first /stats does, and the peak RSS is that
process's own (`ru_maxrss`); "RSS before render" is with the bot's modules loaded (aiogram,
the services), as in the running bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OWNER = 1001
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def rss_mb() -> float:
    """The peak resident set of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def seed(store: Any, days: int, per_day: int) -> int:
    """`per_day` messages a day over `days` days: most read, some only delivered or sent, a
    few failed, over three schedules. Returns how many deliveries were stored."""
    from core.domain.models import DeliveryStatus, NewDelivery
    from tests.store.factories import add_run, add_schedule

    schedules = [await add_schedule(store, owner_id=OWNER) for _ in range(3)]
    stored = 0
    for day in range(days):
        sent_at = NOW - timedelta(days=day, hours=1)
        run = await add_run(store, schedules[day % 3], scheduled_for=sent_at)
        new = [
            NewDelivery(recipient=f"+49151{n:07d}", text="Hi", idempotency_key=f"{day}:{n}")
            for n in range(per_day)
        ]
        for n, delivery in enumerate(await store.add_deliveries(run, new, now=sent_at)):
            kind = n % 10
            if kind == 9:
                await store.update_delivery(
                    delivery.id, status=DeliveryStatus.failed, failed_at=sent_at
                )
                continue
            times = {"sent_at": sent_at}
            if kind < 8:
                times["delivered_at"] = sent_at + timedelta(seconds=5 + n)
            if kind < 6:
                times["read_at"] = sent_at + timedelta(minutes=10 + n)
            status = (
                DeliveryStatus.read
                if kind < 6
                else DeliveryStatus.delivered
                if kind < 8
                else DeliveryStatus.sent
            )
            await store.update_delivery(delivery.id, status=status, **times)
        stored += per_day
    return stored


async def child(days: int, per_day: int, repeat: int) -> dict[str, Any]:
    from core.adapters.store.sqlite import SQLiteStore
    from core.domain.clock import FakeClock
    from core.services.stats import Stats
    from core.services.users import Users

    with tempfile.TemporaryDirectory() as folder:
        store = await SQLiteStore.open(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            stored = await seed(store, days, per_day)
            stats = Stats(store, FakeClock(NOW), Users(store, default_timezone="Europe/Berlin"))
            started = time.perf_counter()
            figures = await stats.figures(OWNER, days)
            figures_s = time.perf_counter() - started
        finally:
            await store.close()
    # The bot has this imported already; matplotlib itself comes with the first render.
    from bot.chart import render_chart

    before_render_mb = rss_mb()
    started = time.perf_counter()
    chart = render_chart(figures)
    first_s = time.perf_counter() - started
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        render_chart(figures)
        warm.append(time.perf_counter() - started)
    return {
        "days": days,
        "deliveries": stored,
        "figures_s": figures_s,
        "first_render_s": first_s,
        "render_s": statistics.median(warm),
        "png_kb": len(chart.png) / 1024,
        "size": f"{chart.width}x{chart.height}",
        "rss_before_render_mb": before_render_mb,
        "peak_rss_mb": rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=int, default=50, help="messages seeded a day")
    parser.add_argument("--repeat", type=int, default=5, help="warm renders to take the median")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(child(args.child, args.per_day, args.repeat))))
        return
    rows = []
    for days in (30, 365):
        command = [sys.executable, "-m", "tests.benchmarks.bench_stats", "--child", str(days)]
        command += ["--per-day", str(args.per_day), "--repeat", str(args.repeat)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        "days | deliveries | figures (store + count) | first render (imports matplotlib) "
        "| render (median) | PNG | pixels | RSS before render | peak RSS"
    )
    print("--- | --- | --- | --- | --- | --- | --- | --- | ---")
    for row in rows:
        print(
            f"{row['days']} | {row['deliveries']} | {row['figures_s'] * 1000:.0f} ms "
            f"| {row['first_render_s'] * 1000:.0f} ms | {row['render_s'] * 1000:.0f} ms "
            f"| {row['png_kb']:.0f} KB | {row['size']} | {row['rss_before_render_mb']:.0f} MB "
            f"| {row['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
