"""Contract: runs are unique per occurrence, so no occurrence is fanned out twice."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.adapters.store import Store
from core.domain.errors import DuplicateRun, NotFound, ScheduleMoved
from core.domain.models import Run, RunTrigger, ScheduleState
from tests.store.factories import OWNER, T0, add_run, add_schedule, minutes


async def test_insert_run_records_the_occurrence(store: Store) -> None:
    schedule = await add_schedule(store)
    run = await store.insert_run(
        schedule_id=schedule.id,
        owner_id=OWNER,
        scheduled_for=T0,
        trigger=RunTrigger.catch_up,
        late_by_s=42.5,
        outcome="late",
    )
    assert (run.schedule_id, run.owner_id, run.scheduled_for, run.trigger) == (
        schedule.id,
        OWNER,
        T0,
        RunTrigger.catch_up,
    )
    assert (run.late_by_s, run.outcome, run.fanned_out) == (42.5, "late", False)
    assert await store.get_run(run.id) == run
    assert await store.get_run(run.id + 100) is None


async def test_a_second_scheduled_run_of_one_occurrence_is_a_duplicate(store: Store) -> None:
    schedule = await add_schedule(store)
    first = await add_run(store, schedule, scheduled_for=T0)
    with pytest.raises(DuplicateRun):
        await add_run(store, schedule, scheduled_for=T0)
    # A catch-up of the same occurrence is the same occurrence.
    with pytest.raises(DuplicateRun):
        await add_run(store, schedule, scheduled_for=T0, trigger=RunTrigger.catch_up)
    # Other occurrences and other schedules are free.
    await add_run(store, schedule, scheduled_for=T0 + minutes(1))
    await add_run(store, await add_schedule(store), scheduled_for=T0)
    assert await store.find_run(schedule.id, T0) == first
    assert [r.id for r in await store.list_runs(schedule_id=schedule.id)][-1] == first.id


async def test_a_taken_or_moved_occurrence_is_worded_alike_on_every_store(store: Store) -> None:
    schedule = await add_schedule(store, next_run_at=T0 + minutes(1))
    await add_run(store, schedule, scheduled_for=T0)
    with pytest.raises(DuplicateRun) as duplicate:
        await add_run(store, schedule, scheduled_for=T0)
    assert str(duplicate.value) == (
        f"Schedule #{schedule.id} already has a run for 2026-11-28T10:00:00.000+00:00."
    )
    with pytest.raises(ScheduleMoved) as moved:
        await claim(store, schedule.id)
    assert str(moved.value) == (
        f"Schedule #{schedule.id} is no longer due at 2026-11-28T10:00:00.000+00:00."
    )


async def test_manual_runs_are_never_duplicates(store: Store) -> None:
    schedule = await add_schedule(store)
    manual_1 = await add_run(store, schedule, scheduled_for=T0, trigger=RunTrigger.manual)
    manual_2 = await add_run(store, schedule, scheduled_for=T0, trigger=RunTrigger.manual)
    assert manual_1.id != manual_2.id
    # ... and do not block the scheduled run of that instant.
    assert await store.find_run(schedule.id, T0) is None
    scheduled = await add_run(store, schedule, scheduled_for=T0)
    assert await store.find_run(schedule.id, T0) == scheduled
    await add_run(store, schedule, scheduled_for=T0, trigger=RunTrigger.manual)


async def test_find_run_matches_the_instant_not_its_time_zone(store: Store) -> None:
    schedule = await add_schedule(store)
    run = await add_run(store, schedule, scheduled_for=T0)
    from datetime import timedelta, timezone

    assert await store.find_run(schedule.id, T0.astimezone(timezone(timedelta(hours=9)))) == run
    assert await store.find_run(schedule.id, T0 + minutes(1)) is None
    assert await store.find_run(schedule.id + 100, T0) is None


async def test_unfinished_runs_are_those_not_fanned_out(store: Store) -> None:
    schedule = await add_schedule(store)
    first = await add_run(store, schedule, scheduled_for=T0)
    second = await add_run(store, schedule, scheduled_for=T0 + minutes(1))
    assert [r.id for r in await store.unfinished_runs()] == [first.id, second.id]
    await store.mark_run_fanned_out(first.id)
    await store.mark_run_fanned_out(first.id)
    assert [r.id for r in await store.unfinished_runs()] == [second.id]
    loaded = await store.get_run(first.id)
    assert loaded is not None and loaded.fanned_out
    with pytest.raises(NotFound):
        await store.mark_run_fanned_out(second.id + 100)


async def test_list_runs_is_newest_first_and_filters_by_schedule(store: Store) -> None:
    a = await add_schedule(store)
    b = await add_schedule(store)
    runs = [
        await add_run(store, a, scheduled_for=T0),
        await add_run(store, b, scheduled_for=T0),
        await add_run(store, a, scheduled_for=T0 + minutes(1)),
        await add_run(store, a, scheduled_for=T0, trigger=RunTrigger.manual),
    ]
    assert [r.id for r in await store.list_runs()] == [r.id for r in reversed(runs)]
    assert [r.id for r in await store.list_runs(schedule_id=a.id, limit=2)] == [
        runs[3].id,
        runs[2].id,
    ]
    assert await store.list_runs(schedule_id=b.id + 100) == []


async def test_set_run_outcome_records_what_happened(store: Store) -> None:
    run = await add_run(store)
    await store.set_run_outcome(run.id, "3 sent, 1 failed")
    loaded = await store.get_run(run.id)
    assert loaded is not None and loaded.outcome == "3 sent, 1 failed"
    with pytest.raises(NotFound):
        await store.set_run_outcome(run.id + 100, "x")


async def claim(store: Store, schedule_id: int, scheduled_for: datetime = T0) -> Run:
    return await store.insert_run(
        schedule_id=schedule_id,
        owner_id=OWNER,
        scheduled_for=scheduled_for,
        trigger=RunTrigger.schedule,
        only_if_due=True,
    )


async def test_only_if_due_claims_an_occurrence_only_while_it_is_the_due_one(
    store: Store,
) -> None:
    due = await add_schedule(store, next_run_at=T0)
    await claim(store, due.id)
    assert await store.find_run(due.id, T0) is not None
    with pytest.raises(DuplicateRun):  # claimed already: still a duplicate, not "moved"
        await claim(store, due.id)

    paused = await add_schedule(store, next_run_at=T0, state=ScheduleState.paused)
    edited = await add_schedule(store, next_run_at=T0)
    await store.update_schedule(edited.id, next_run_at=T0 + minutes(30))
    deleted = await add_schedule(store, next_run_at=T0)
    await store.delete_schedule(deleted.id)
    for moved in (paused, edited, deleted):
        with pytest.raises(ScheduleMoved):
            await claim(store, moved.id)
        assert await store.find_run(moved.id, T0) is None  # nothing stored
    # The edited schedule's new occurrence is the due one now.
    await claim(store, edited.id, T0 + minutes(30))
    assert len(await store.list_runs(schedule_id=edited.id)) == 1
