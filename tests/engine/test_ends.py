"""A schedule that ends (`3 times`, `until ...`) fires its occurrences, becomes `done` after
the last one, and its owner is told once: by the process whose compare-and-set ended it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.adapters.store.sqlite import SQLiteStore
from core.domain.clock import FakeClock
from core.domain.models import Recipient, RecipientKind, RunTrigger, ScheduleState
from core.domain.when import parse_when
from tests.engine.conftest import (
    PHONE,
    START,
    CoreFactory,
    RecordingNotifier,
    eventually,
)
from tests.fakes.sidecar import FakeSidecar

TO = [Recipient(kind=RecipientKind.phone, address=PHONE)]


async def test_a_three_times_schedule_fires_three_runs_and_tells_done_once(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    core = await start_core()
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="every 1 hour 3 times", text="hello"
    )
    assert schedule.rule.times == 3
    for hour in range(1, 7):  # twice as long as it runs
        await clock.advance(3600)
        await core.engine.tick()
        await eventually(lambda: len(sidecar.outbox) == min(hour, 3), what="the sends")  # noqa: B023
        await core.engine.tick()  # a second look at the same moment changes nothing

    runs = await core.store.list_runs(schedule_id=schedule.id)
    assert len(runs) == 3
    assert {run.trigger for run in runs} == {RunTrigger.schedule}
    assert len(sidecar.outbox) == 3
    after = await core.store.get_schedule(schedule.id)
    assert after is not None
    assert after.state is ScheduleState.done and after.next_run_at is None
    assert len(notifier.done) == 1
    told, occurrences = notifier.done[0]
    assert told.id == schedule.id and told.state is ScheduleState.done
    assert occurrences == 3


async def test_two_engines_racing_the_last_occurrence_tell_once(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    one = await start_core(worker="one")
    two = await start_core(worker="two")
    schedule = await one.services.schedules.create_schedule(
        7, recipients=PHONE, when="every 1 hour twice", text="hello"
    )
    for _ in range(3):
        await clock.advance(3600)
        await asyncio.gather(one.engine.tick(), two.engine.tick(), one.engine.tick())
    await eventually(lambda: len(sidecar.outbox) == 2, what="both sends")
    assert len(await one.store.list_runs(schedule_id=schedule.id)) == 2
    assert [(s.id, n) for s, n in notifier.done] == [(schedule.id, 2)]


async def test_the_last_occurrence_caught_up_at_start_up_tells_once_across_restarts(
    start_core: CoreFactory,
    database_url: str,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    # Two of three went out before a crash; the third fell due while core was down.
    rule = parse_when("every 1 hour 3 times", tz="UTC", now=START - timedelta(hours=3, minutes=1))
    store = await SQLiteStore.open(database_url)
    try:
        schedule = await store.add_schedule(
            owner_id=7, recipients=TO, rule=rule, next_run_at=rule.ends_at, text="late hello"
        )
        for hours in (3, 2):
            run = await store.insert_run(
                schedule_id=schedule.id,
                owner_id=7,
                scheduled_for=START - timedelta(hours=hours, minutes=1),
                trigger=RunTrigger.schedule,
            )
            await store.mark_run_fanned_out(run.id)  # sent before the crash
    finally:
        await store.close()

    first = await start_core()
    await eventually(lambda: len(sidecar.outbox) == 1, what="the catch-up send")
    assert [(s.id, n) for s, n in notifier.done] == [(schedule.id, 3)]
    # Started again (a restart, or a second process): nothing is due, nobody is told again.
    second = await start_core(worker="again")
    for _ in range(3):
        await clock.advance(3600)
        await asyncio.gather(first.engine.tick(), second.engine.tick())
    assert len(notifier.done) == 1
    assert len(sidecar.outbox) == 1


async def test_a_missed_last_occurrence_ends_it_and_counts_only_what_went_out(
    start_core: CoreFactory,
    database_url: str,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    rule = parse_when("every 1 hour 2 times", tz="UTC", now=START - timedelta(hours=5))
    store = await SQLiteStore.open(database_url)
    try:
        schedule = await store.add_schedule(
            owner_id=7, recipients=TO, rule=rule, next_run_at=rule.ends_at, text="too late"
        )
        run = await store.insert_run(
            schedule_id=schedule.id,
            owner_id=7,
            scheduled_for=START - timedelta(hours=4),
            trigger=RunTrigger.schedule,
        )
        await store.mark_run_fanned_out(run.id)  # sent before the crash
    finally:
        await store.close()

    core = await start_core(MISFIRE_GRACE_S=60)
    await eventually(lambda: len(notifier.missed) == 1, what="the missed report")
    after = await core.store.get_schedule(schedule.id)
    assert after is not None and after.state is ScheduleState.done
    assert [(s.id, n) for s, n in notifier.done] == [(schedule.id, 1)]
    assert sidecar.outbox == []


async def test_a_one_time_schedule_is_done_without_a_done_notice(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    core = await start_core()
    await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="in 10 minutes", text="once"
    )
    await clock.advance(600)
    await core.engine.tick()
    await eventually(lambda: len(sidecar.outbox) == 1, what="the send")
    assert notifier.done == []


async def seed_ended(database_url: str, *, hours_ago: int) -> int:
    """A `2 times` schedule whose last occurrence went out `hours_ago` hours before START and
    that a process moved to `done`, then died before telling its owner."""
    rule = parse_when(
        "every 1 hour 2 times", tz="UTC", now=START - timedelta(hours=hours_ago + 1, minutes=1)
    )
    store = await SQLiteStore.open(database_url)
    try:
        schedule = await store.add_schedule(
            owner_id=7,
            recipients=TO,
            rule=rule,
            next_run_at=None,
            text="ended",
            state=ScheduleState.done,
        )
        for hours in (hours_ago + 1, hours_ago):
            run = await store.insert_run(
                schedule_id=schedule.id,
                owner_id=7,
                scheduled_for=START - timedelta(hours=hours, minutes=1),
                trigger=RunTrigger.schedule,
            )
            await store.mark_run_fanned_out(run.id)
        return schedule.id
    finally:
        await store.close()


async def test_an_end_untold_by_a_process_that_died_is_told_once_by_the_next_to_start(
    start_core: CoreFactory, database_url: str, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    recent = await seed_ended(database_url, hours_ago=1)
    await seed_ended(database_url, hours_ago=48)  # ended long ago: told then, or never
    one, two = await asyncio.gather(start_core(worker="one"), start_core(worker="two"))
    assert [(s.id, n) for s, n in notifier.done] == [(recent, 2)]
    # Restarted, and ticking: nobody is told again.
    three = await start_core(worker="three")
    await clock.advance(3600)
    await asyncio.gather(one.engine.tick(), two.engine.tick(), three.engine.tick())
    assert len(notifier.done) == 1
