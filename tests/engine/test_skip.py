"""A skipped occurrence in the engine's terms: a skip cut short by a crash is finished as
skipped, not sent, and a skip racing the engine's fire ends in one run, sent or skipped."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.app import Core
from core.delivery.runs import SKIPPED, skip_occurrence
from core.domain.clock import FakeClock
from core.domain.models import (
    AskChoice,
    DeliveryFilter,
    DeliveryStatus,
    NoAnswer,
    RunTrigger,
    Schedule,
)
from tests.engine.conftest import START, CoreFactory, RecordingNotifier, eventually
from tests.fakes.sidecar import FakeSidecar

OWNER = 1
NUMBERS = "+4915100000001, +4915100000002"


async def daily(core: Core) -> Schedule:
    """Due every day at 11:00 UTC: the first one an hour after START."""
    return await core.services.schedules.create_schedule(
        OWNER, recipients=NUMBERS, when="every day at 11:00", text="Hi"
    )


async def test_a_skip_cut_short_by_a_crash_is_finished_as_skipped(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    first = await start_core()
    schedule = await daily(first)
    due = schedule.next_run_at
    assert due == START + timedelta(hours=1)
    # The skip stored its run, then the process died before the deliveries and the move.
    await first.store.insert_run(
        schedule_id=schedule.id,
        owner_id=OWNER,
        scheduled_for=due,
        trigger=RunTrigger.schedule,
        outcome=SKIPPED,
    )
    again = await start_core()
    deliveries = await again.store.list_deliveries(DeliveryFilter(schedule_id=schedule.id))
    assert [d.status for d in deliveries] == [DeliveryStatus.skipped] * 2
    await clock.advance(3600)
    await again.engine.tick()
    moved = await again.store.get_schedule(schedule.id)
    assert moved is not None and moved.next_run_at == due + timedelta(days=1)
    assert sidecar.requests == 0
    assert len(await again.store.list_runs(schedule_id=schedule.id)) == 1


async def test_a_skip_racing_the_fire_ends_in_one_run(
    core: Core, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    schedule = await daily(core)
    due = schedule.next_run_at
    assert due is not None
    await clock.advance(3600)
    skipping = skip_occurrence(core.store, core.clock, schedule, due)
    _, skipped = await asyncio.gather(core.engine.tick(), skipping)
    [run] = await core.store.list_runs(schedule_id=schedule.id)
    deliveries = await core.store.list_deliveries(DeliveryFilter(run_id=run.id))
    if skipped is None:  # the engine fired first
        assert run.outcome is None
        await eventually(lambda: sidecar.requests == 2, what="both sent")
    else:
        assert run.outcome == SKIPPED and run.id == skipped[0].id
        assert {d.status for d in deliveries} == {DeliveryStatus.skipped}
    moved = await core.store.get_schedule(schedule.id)
    assert moved is not None and moved.next_run_at == due + timedelta(days=1)


async def test_a_no_answer_skip_cut_short_by_a_crash_moves_on_and_says_nothing_twice(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    first = await start_core()
    schedule = await daily(first)
    schedule = await first.services.asks.set_ask_first(
        OWNER, schedule.id, on=True, on_no_answer=NoAnswer.skip
    )
    due = schedule.next_run_at
    assert due is not None
    # At the due time nobody had answered: the policy skipped it, stored its run, and the
    # process died before moving the schedule on (or telling anyone).
    ask = await first.store.insert_ask(schedule, due, now=clock.now())
    assert ask is not None
    await first.store.mark_ask_told(ask.id)
    await first.store.choose(ask.id, AskChoice.no_answer_skipped, by=None, at=clock.now())
    await first.store.insert_run(
        schedule_id=schedule.id,
        owner_id=OWNER,
        scheduled_for=due,
        trigger=RunTrigger.schedule,
        outcome=SKIPPED,
    )
    again = await start_core()
    await clock.advance(3600)
    await again.engine.tick()
    moved = await again.store.get_schedule(schedule.id)
    assert moved is not None and moved.next_run_at == due + timedelta(days=1)
    deliveries = await again.store.list_deliveries(DeliveryFilter(schedule_id=schedule.id))
    assert [d.status for d in deliveries] == [DeliveryStatus.skipped] * 2
    [run] = await again.store.list_runs(schedule_id=schedule.id)
    assert (await again.store.asks_of_runs([run.id]))[run.id].id == ask.id
    # Nothing was skipped by this pass: it says nothing about a skip.
    assert notifier.unanswered == []
    assert sidecar.requests == 0
