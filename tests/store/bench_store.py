"""Rough figures for the store's hot paths (not a test): `python -m tests.store.bench_store`.

Prints deliveries/s through add -> claim -> update, and how long 100k schedules take to add,
to answer `next_due_at`/`due_schedules(limit)`, and to load.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.domain.models import DeliveryStatus, RunTrigger, ScheduleState
from tests.store.factories import OWNER, T0, add_schedule, new_deliveries


async def deliveries_per_second(store: Store, count: int) -> None:
    schedule = await add_schedule(store)
    run = await store.insert_run(
        schedule_id=schedule.id, owner_id=OWNER, scheduled_for=T0, trigger=RunTrigger.schedule
    )
    started = time.perf_counter()
    await store.add_deliveries(run, new_deliveries(run, count), now=T0)
    added = time.perf_counter()
    done = 0
    while (claimed := await store.claim_delivery(now=T0, lease_s=60, worker="bench")) is not None:
        await store.update_delivery(
            claimed.id,
            expected_status=DeliveryStatus.sending,
            worker="bench",
            status=DeliveryStatus.sent,
            attempts=1,
            sent_at=T0,
            whatsapp_id=f"wa-{claimed.id}",
            lease_owner=None,
            lease_until=None,
        )
        done += 1
    finished = time.perf_counter()
    assert done == count
    print(f"add_deliveries({count}): {added - started:.2f}s")
    print(f"claim+update: {count / (finished - added):,.0f} deliveries/s")


async def schedules(store: Store, count: int) -> None:
    started = time.perf_counter()
    for n in range(count):
        await add_schedule(store, next_run_at=T0 + timedelta(seconds=n % 86_400))
    added = time.perf_counter()
    first = await store.next_due_at()
    due = await store.due_schedules(T0 + timedelta(hours=1), limit=100)
    queried = time.perf_counter()
    loaded = await store.list_schedules(states=[ScheduleState.active])
    finished = time.perf_counter()
    assert first == T0 and len(due) == 100 and len(loaded) >= count
    print(f"add {count} schedules: {added - started:.2f}s")
    print(f"next_due_at + due_schedules(limit=100): {(queried - added) * 1000:.1f}ms")
    print(f"list_schedules (all {len(loaded)}): {finished - queried:.2f}s")


async def main() -> None:
    deliveries = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        store = await SQLiteStore.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            await deliveries_per_second(store, deliveries)
            await schedules(store, count)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
