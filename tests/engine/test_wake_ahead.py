"""The wake-up comes early and the pass fires at the due instant from what it read.

Driven by the fake clock: the pass waits for a due time on it, so each test moves time while a
pass is in flight and looks at what the store was asked, in order.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.app import Core
from core.delivery.engine import LOOK_AHEAD_S, WAKE_LEAD_S
from core.domain.clock import FakeClock
from core.domain.models import Recipient, RecipientKind, Rule, RuleKind, Schedule, ScheduleState
from tests.engine.conftest import PHONE, CoreFactory, RecordingNotifier, eventually
from tests.fakes.sidecar import FakeSidecar


def record_store_calls(core: Core) -> list[str]:
    """Wrap the two store calls the pass makes around a due time; return their log."""
    calls: list[str] = []
    store: Any = core.store
    read, insert = store.due_schedules, store.insert_run

    async def due_schedules(*args: Any, **kwargs: Any) -> Any:
        calls.append("read")
        return await read(*args, **kwargs)

    async def insert_run(*args: Any, **kwargs: Any) -> Any:
        calls.append("insert")
        return await insert(*args, **kwargs)

    store.due_schedules, store.insert_run = due_schedules, insert_run
    return calls


async def once_at(core: Core, at: datetime, text: str = "on the dot") -> Schedule:
    return await core.store.add_schedule(
        owner_id=7,
        recipients=[Recipient(kind=RecipientKind.phone, address=PHONE)],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=at),
        next_run_at=at,
        text=text,
    )


def test_the_wake_up_comes_before_the_look_ahead_ends() -> None:
    # Woken WAKE_LEAD_S early, the pass's read must reach the due time.
    assert 0 < WAKE_LEAD_S < LOOK_AHEAD_S


async def test_a_pass_woken_early_fires_at_the_due_instant_without_reading_again(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    due = clock.now() + timedelta(minutes=5)
    schedule = await once_at(core, due)
    await clock.advance((due - clock.now()).total_seconds() - WAKE_LEAD_S)
    calls = record_store_calls(core)

    woken = asyncio.create_task(core.engine.tick())
    await eventually(lambda: calls == ["read"], what="the pass's first read")
    await asyncio.sleep(0.05)
    assert not woken.done()  # waiting for the due time, nothing stored early
    assert await core.store.list_runs(schedule_id=schedule.id) == []

    await clock.advance(WAKE_LEAD_S)
    assert await woken == 1

    assert calls[:2] == ["read", "insert"]  # fired from the first read, before any other
    (run,) = await core.store.list_runs(schedule_id=schedule.id)
    assert run.scheduled_for == due
    assert run.late_by_s == 0
    await eventually(lambda: [m.text for m in sidecar.outbox] == ["on the dot"], what="the send")


async def test_occurrences_due_a_moment_apart_fire_in_one_pass_each_at_its_time(
    core: Core, clock: FakeClock
) -> None:
    first_at = clock.now() + timedelta(minutes=1)
    second_at = first_at + timedelta(seconds=LOOK_AHEAD_S / 2)
    first = await once_at(core, first_at, "first")
    second = await once_at(core, second_at, "second")
    await clock.advance((first_at - clock.now()).total_seconds())

    passing = asyncio.create_task(core.engine.tick())
    await eventually(
        lambda: core.store.list_runs(schedule_id=first.id), what="the first occurrence"
    )
    assert await core.store.list_runs(schedule_id=second.id) == []  # not due yet
    await clock.advance(LOOK_AHEAD_S / 2)

    assert await passing == 2  # the same pass, woken once
    (run,) = await core.store.list_runs(schedule_id=second.id)
    assert run.scheduled_for == second_at and run.late_by_s == 0


async def test_a_pause_while_the_pass_waits_is_read_before_firing(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    # Stored directly, so no wake-up of the live engine reads before the test's pass does.
    due = clock.now() + timedelta(minutes=5)
    schedule = await once_at(core, due, "paused in time")
    await clock.advance((due - clock.now()).total_seconds() - WAKE_LEAD_S)
    calls = record_store_calls(core)

    waiting = asyncio.create_task(core.engine.tick())
    await eventually(lambda: calls == ["read"], what="the pass's first read")
    await core.services.schedules.pause(schedule.owner_id, schedule.id)
    await clock.advance(WAKE_LEAD_S)
    await waiting

    assert "insert" not in calls
    assert calls.count("read") >= 2  # read again after the change
    assert await core.store.list_runs(schedule_id=schedule.id) == []
    assert sidecar.requests == 0


async def test_stop_ends_a_pass_waiting_for_a_due_time(
    core: Core, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    due = clock.now() + timedelta(minutes=5)
    schedule = await once_at(core, due)
    await clock.advance((due - clock.now()).total_seconds() - WAKE_LEAD_S)
    calls = record_store_calls(core)
    waiting = asyncio.create_task(core.engine.tick())
    await eventually(lambda: calls == ["read"], what="the pass's first read")

    with caplog.at_level(logging.WARNING, logger="core.delivery.engine"):
        await core.engine.stop(drain_s=10)
    await asyncio.wait({waiting}, timeout=30)  # a guard against hanging, not a measurement

    assert waiting.done()

    assert "still running" not in caplog.text  # the wait ended, not the drain timeout
    assert await core.store.list_runs(schedule_id=schedule.id) == []
    stored = await core.store.get_schedule(schedule.id)
    assert stored is not None and stored.next_run_at == due  # left for the next start


async def test_a_schedule_added_while_the_pass_waits_fires_at_its_own_time(
    core: Core, clock: FakeClock
) -> None:
    later_at = clock.now() + timedelta(minutes=1)
    later = await once_at(core, later_at, "later")
    await clock.advance((later_at - clock.now()).total_seconds() - WAKE_LEAD_S)
    calls = record_store_calls(core)
    waiting = asyncio.create_task(core.engine.tick())
    await eventually(lambda: calls == ["read"], what="the pass's first read")

    sooner_at = clock.now() + timedelta(seconds=WAKE_LEAD_S / 2)
    sooner = await once_at(core, sooner_at, "sooner")
    core.engine.schedules_changed()  # what the service calls after every change
    await eventually(lambda: calls.count("read") == 2, what="a read after the change")
    await clock.advance(WAKE_LEAD_S / 2)

    await eventually(lambda: core.store.list_runs(schedule_id=sooner.id), what="the sooner run")
    assert await core.store.list_runs(schedule_id=later.id) == []  # its time has not come
    await clock.advance(WAKE_LEAD_S / 2)
    assert await waiting == 2
    (run,) = await core.store.list_runs(schedule_id=later.id)
    assert run.late_by_s == 0


async def test_start_up_does_not_wait_for_an_occurrence_about_to_fall_due(
    start_core: CoreFactory, clock: FakeClock
) -> None:
    first = await start_core()
    soon = await once_at(first, clock.now() + timedelta(seconds=WAKE_LEAD_S / 2), "soon")
    await first.engine.stop()

    # The clock does not move: a start-up pass waiting for `soon` would never return.
    async def start() -> Core:
        return await start_core()

    starting = asyncio.create_task(start())
    await asyncio.wait({starting}, timeout=30)  # a guard against hanging, not a measurement
    assert starting.done()
    second = starting.result()
    assert await second.store.list_runs(schedule_id=soon.id) == []

    await clock.advance(WAKE_LEAD_S / 2)
    await second.engine.tick()
    (run,) = await second.store.list_runs(schedule_id=soon.id)
    assert run.late_by_s == 0


async def test_a_pause_by_another_process_while_the_pass_waits_stops_the_fire(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    due = clock.now() + timedelta(minutes=5)
    schedule = await once_at(core, due, "paused elsewhere")
    await clock.advance((due - clock.now()).total_seconds() - WAKE_LEAD_S)
    calls = record_store_calls(core)
    waiting = asyncio.create_task(core.engine.tick())
    await eventually(lambda: calls == ["read"], what="the pass's first read")

    # Straight to the store, as another wasched process would: this engine is not told.
    await core.store.update_schedule(schedule.id, state=ScheduleState.paused)
    await clock.advance(WAKE_LEAD_S)
    await waiting

    assert calls[:2] == ["read", "insert"]  # it did try, from its read
    assert await core.store.list_runs(schedule_id=schedule.id) == []
    stored = await core.store.get_schedule(schedule.id)
    assert stored is not None and stored.state is ScheduleState.paused
    assert stored.next_run_at == due  # left as the pause left it
    assert sidecar.requests == 0


async def test_a_pause_before_a_missed_occurrence_is_recorded_leaves_the_schedule_paused(
    core: Core, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    due = clock.now() - timedelta(hours=3)  # beyond the 1 h misfire grace: missed
    schedule = await once_at(core, due, "too late")
    store: Any = core.store
    insert = store.insert_run

    async def paused_first(*args: Any, **kwargs: Any) -> Any:
        # Another process pauses it after this pass read it and before the claim.
        await core.store.update_schedule(schedule.id, state=ScheduleState.paused)
        return await insert(*args, **kwargs)

    store.insert_run = paused_first
    await core.engine.tick()

    stored = await core.store.get_schedule(schedule.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at) == (ScheduleState.paused, due)
    assert await core.store.list_runs(schedule_id=schedule.id) == []
    assert notifier.missed == []
