"""Schedules that end, at the service: moved to another zone with their end, resumed with
what a count had left, resumed after a date's end with a message that says it ended."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from core.domain.clock import FakeClock
from core.domain.models import ScheduleState
from core.domain.when import next_fire_times
from core.services import Services

from .conftest import OWNER


async def test_moving_a_schedule_keeps_its_last_day_and_its_count(service: Services) -> None:
    until = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00 until 31.12.2026", text="hi"
    )
    times = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00 5 times", text="hi"
    )
    moved, kept = await service.schedules.move_schedules(OWNER, "America/New_York")
    assert [s.id for s in moved] == [until.id, times.id] and kept == []
    york = ZoneInfo("America/New_York")
    ends_at = moved[0].rule.ends_at
    assert ends_at is not None
    assert f"{ends_at.astimezone(york):%d.%m.%Y %H:%M:%S.%f}" == "31.12.2026 23:59:59.999000"
    moved_times = moved[1]
    assert moved_times.next_run_at is not None
    fires = next_fire_times(moved_times.rule, after=moved_times.next_run_at, count=10)
    assert len(fires) == 4  # the next one and four more: still 5, though 09:00 in New York
    # comes sooner (it is 05:00 there): the count is kept, not the last day
    assert {f"{f.astimezone(york):%H:%M}" for f in fires} == {"09:00"}


async def test_resuming_a_paused_count_sends_what_was_left_and_a_date_keeps_its_day(
    service: Services, clock: FakeClock
) -> None:
    times = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00 5 times", text="hi"
    )
    until = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00 until 31.12.2026", text="hi"
    )
    for schedule in (times, until):
        await service.schedules.pause(OWNER, schedule.id)
    await clock.advance(timedelta(days=2).total_seconds())  # two of its days pass paused
    resumed = await service.schedules.resume(OWNER, times.id)
    assert resumed.next_run_at is not None and resumed.next_run_at > clock.now()
    fires = next_fire_times(resumed.rule, after=resumed.next_run_at, count=10)
    assert len(fires) == 4  # the next one and four more: still the 5 it had left
    assert resumed.rule.times == 5
    stored = await service.schedules.get_schedule(OWNER, times.id)
    assert stored.rule == resumed.rule
    kept = await service.schedules.resume(OWNER, until.id)
    assert kept.rule == until.rule  # `until 31.12.2026` still ends that day


async def test_resuming_after_the_end_makes_the_schedule_done(
    service: Services, clock: FakeClock
) -> None:
    """Paused, then its end passed: nothing is left to fire, so resuming makes it done
    instead of leaving it paused for ever."""
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00 until 30.11.2026", text="hi"
    )
    await service.schedules.pause(OWNER, schedule.id)
    await clock.advance(timedelta(days=3).total_seconds())
    resumed = await service.schedules.resume_held(OWNER, schedule.id)
    assert resumed.schedule.state is ScheduleState.done and resumed.schedule.next_run_at is None
    assert (resumed.sent, resumed.left_held) == ({}, {})
    after = await service.schedules.get_schedule(OWNER, schedule.id)
    assert after.state is ScheduleState.done
