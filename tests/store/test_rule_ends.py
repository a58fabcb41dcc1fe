"""A rule's end (`ends_at`, `times`) is stored with the schedule, in both stores; a schedule
stored before ends existed loads as a rule without one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.domain.models import RunTrigger
from core.domain.when import next_fire_times, parse_when
from tests.store.factories import OWNER, add_run, add_schedule, phone

NOW = datetime(2026, 12, 7, 20, 0, 0, 123456, tzinfo=UTC)


async def test_an_end_survives_the_round_trip_exactly(store: Store) -> None:
    for text in ("every 2 hours 5 times", "every day at 9:00 until 31.12.2026"):
        rule = parse_when(text, tz="Europe/Berlin", now=NOW)
        stored = await store.add_schedule(
            owner_id=OWNER, recipients=[phone(1)], rule=rule, next_run_at=None, text="Hi"
        )
        loaded = await store.get_schedule(stored.id)
        assert loaded is not None
        assert loaded.rule.ends_at is not None
        assert loaded.rule.times == rule.times
        # The stores keep milliseconds: an interval's start and its end lose the same part,
        # so the stored rule still fires exactly its count.
        if rule.times is not None:
            assert len(next_fire_times(loaded.rule, after=NOW, count=10)) == rule.times
        else:
            assert loaded.rule.ends_at == rule.ends_at


async def test_a_rule_stored_without_an_end_loads_without_one(tmp_path: Path) -> None:
    store = await SQLiteStore.open(f"sqlite:///{tmp_path}/old.db")
    try:
        schedule = await add_schedule(store)
        # What a row written before ends existed holds.
        old = '{"kind":"cron","timezone":"Europe/Berlin","at":null,"cron":"0 9 * * 1-5"}'
        await store._db.execute("UPDATE schedules SET rule = ? WHERE id = ?", (old, schedule.id))
        await store._db.commit()
        loaded = await store.get_schedule(schedule.id)
        assert loaded is not None
        assert loaded.rule.ends_at is None and loaded.rule.times is None
        assert loaded.rule.cron == "0 9 * * 1-5"
    finally:
        await store.close()


async def test_occurrences_sent_counts_scheduled_runs_that_went_out(store: Store) -> None:
    schedule = await add_schedule(store)
    other = await add_schedule(store)
    await add_run(store, schedule, scheduled_for=NOW)
    await add_run(store, schedule, scheduled_for=NOW.replace(hour=21))
    missed = await add_run(store, schedule, scheduled_for=NOW.replace(hour=22))
    await store.set_run_outcome(missed.id, "missed")
    await add_run(store, schedule, scheduled_for=NOW.replace(hour=23), trigger=RunTrigger.manual)
    await add_run(store, other, scheduled_for=NOW)
    assert await store.count_occurrences_sent(schedule.id) == 2
    assert await store.count_occurrences_sent(other.id) == 1
    assert await store.count_occurrences_sent(999) == 0
