"""Warm-up: a newly linked number's daily cap starts low and grows day by day; the sender
keeps to it and says when the next send may go."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.adapters.store.sqlite import SQLiteStore
from core.delivery.warmup import WarmUp, warmup_cap
from core.domain.clock import FakeClock
from tests.engine.conftest import START, CoreFactory, eventually
from tests.fakes.sidecar import FakeSidecar

FOUR = "+4915100000001, +4915100000002, +4915100000003, +4915100000004"


def test_the_warmup_cap_grows_day_by_day_to_the_daily_cap() -> None:
    assert [warmup_cap(400, 7, day) for day in range(1, 10)] == [
        50,
        100,
        150,
        200,
        250,
        300,
        350,
        400,
        400,
    ]
    assert warmup_cap(400, 0, 1) == 400  # off
    assert warmup_cap(3, 7, 1) == 1  # never below one a day
    assert [warmup_cap(10, 2, day) for day in (1, 2, 3)] == [4, 7, 10]


async def test_a_number_keeps_the_day_it_was_first_linked(tmp_path: Path) -> None:
    store = await SQLiteStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    clock = FakeClock(START)
    try:
        warmup = WarmUp(store, clock, days=7, daily_cap=400)
        assert warmup.today(clock.now()) is None  # no number known yet
        await warmup.linked("111@c.us")
        await clock.advance(timedelta(days=2, hours=1).total_seconds())
        await warmup.linked("222@c.us")  # a new number starts its own warm-up
        today = warmup.today(clock.now())
        assert today is not None and (today.day, today.cap) == (1, 50)
        # Back to the first number, in another process: day 3 of its warm-up.
        again = WarmUp(store, clock, days=7, daily_cap=400)
        await again.linked("111@c.us")
        today = again.today(clock.now())
        assert today is not None and (today.day, today.cap) == (3, 150)
        assert today.ends_at == START + timedelta(days=3)
        await clock.advance(timedelta(days=5).total_seconds())
        assert again.today(clock.now()) is None and again.cap(clock.now()) == 400
    finally:
        await store.close()


async def test_a_warmup_day_cap_holds_sends_back_until_the_next_day(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    core = await start_core(WARMUP_DAYS=7, SEND_DAILY_CAP=16)  # day 1: 2 a day
    schedule = await core.services.schedules.create_schedule(
        7, recipients=FOUR, when="tomorrow 9:00", text="hi"
    )
    await core.services.runs.run_now(7, schedule.id)

    await eventually(lambda: len(sidecar.outbox) == 2, what="the day's two sends")
    tomorrow = START + timedelta(days=1)
    await eventually(
        lambda: tomorrow in clock.sleeping_until(), what="the sender waiting for the cap"
    )
    assert sidecar.requests == 2
    caps = core.sender.caps()
    assert (caps.sent_last_day, caps.daily_cap, caps.capped, caps.next_at) == (
        2,
        2,
        "daily",
        tomorrow,
    )
    assert caps.warmup is not None and (caps.warmup.day, caps.warmup.days) == (1, 7)
    pacing = core.sender.pacing()
    assert pacing is not None and pacing.capped == "daily" and pacing.warmup is not None

    await clock.advance(timedelta(days=1).total_seconds())  # day 2: 4 a day
    await eventually(lambda: len(sidecar.outbox) == 4, what="the other two on day 2")
    assert sidecar.requests == 4
    caps = core.sender.caps()
    assert caps.warmup is not None and (caps.warmup.day, caps.daily_cap) == (2, 4)


async def test_without_warmup_the_daily_cap_is_the_setting(
    start_core: CoreFactory, sidecar: FakeSidecar
) -> None:
    core = await start_core(WARMUP_DAYS=0, SEND_DAILY_CAP=16)
    schedule = await core.services.schedules.create_schedule(
        7, recipients=FOUR, when="tomorrow 9:00", text="hi"
    )
    await core.services.runs.run_now(7, schedule.id)
    await eventually(lambda: len(sidecar.outbox) == 4, what="all four")
    caps = core.sender.caps()
    assert (caps.sent_last_day, caps.daily_cap, caps.warmup, caps.capped) == (4, 16, None, None)
