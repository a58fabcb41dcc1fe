"""Skip next: the schedule card's button records the next occurrence as skipped (never sent,
not missed), the card then shows the one after, and that one goes out.

Core runs as `wasched run` builds it (open_core, SQLite, the fake sidecar over HTTP) with the
Telegram notifier and the real dispatcher, on a fake clock; sends are counted at the sidecar."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from core.domain.models import DeliveryFilter, DeliveryStatus
from core.domain.when import format_local
from tests.bot.conftest import ADMIN, OTHER_ADMIN, START
from tests.bot.core_world import ANNA, BEN, World, world
from tests.fakes.telegram import ChatMessage

__all__ = ["world"]  # the fixture these tests use


def skip_data(card: ChatMessage) -> str:
    return str(card.button("Skip next")["callback_data"])


async def test_skip_next_skips_one_occurrence_and_the_next_goes_out(world: World) -> None:
    schedule = await world.schedule()
    assert schedule.next_run_at == START.replace(hour=9) + timedelta(days=1)  # Sun 29 Nov
    card = await world.say("/list", "#1")
    answer = await world.press(card, skip_data(card))
    sunday, monday = (START.replace(hour=9) + timedelta(days=d) for d in (1, 2))
    assert answer == f"Skipped {format_local(sunday, 'UTC')}. Next: {format_local(monday, 'UTC')}."
    card = world.telegram.bot_messages(ADMIN)[-1]
    # The card now shows the occurrence after the skipped one, with its own Skip next.
    after = await world.core.services.schedules.get_schedule(ADMIN, schedule.id)
    assert after.next_run_at == monday
    assert f"next: {format_local(monday, 'UTC')}" in card.text
    assert str(int(after.next_run_at.timestamp())) in skip_data(card)

    # Sunday 09:00 passes: nothing reaches the sidecar, and nobody is told of a missed run.
    await world.fire_at(23.5)
    await world.notifier.outbox.drained()
    assert world.sidecar.requests == 0
    assert not [m for m in world.telegram.bot_messages(ADMIN) if "missed" in m.text]
    skipped = await world.core.store.list_deliveries(DeliveryFilter(schedule_id=schedule.id))
    assert [d.status for d in skipped] == [DeliveryStatus.skipped] * 2
    assert all(d.skipped_at is not None for d in skipped)

    logs = await world.say("/logs", "skipped")
    assert logs.text.lower().count("skipped") >= 2
    await world.say("/export")
    export = world.telegram.bot_messages(ADMIN)[-1]
    assert export.file is not None
    rows = list(csv.DictReader(io.StringIO(export.file.data.decode("utf-8"))))
    assert [row["status"] for row in rows] == ["skipped", "skipped"]
    assert all(row["skipped at"] for row in rows)

    # Monday 09:00: that one goes out, once to each.
    await world.fire_at(24)
    await world.sent_to_each(1)
    assert world.sidecar.requests == 2
    assert sorted(r.to for r in world.sidecar.outbox) == sorted([ANNA, BEN])


async def test_pressing_skip_next_twice_skips_one_occurrence(world: World) -> None:
    await world.schedule()
    card = await world.say("/list", "#1")
    data = skip_data(card)
    first = await world.press(card, data)
    second = await world.press(card, data)  # the same (old) card, pressed again
    assert first.startswith("Skipped")
    assert "skipped already" in second
    runs = await world.core.store.list_runs(schedule_id=1)
    assert [run.outcome for run in runs] == ["skipped"]
    after = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert after.next_run_at == START.replace(hour=9) + timedelta(days=2)


async def test_skip_next_after_the_occurrence_went_out_skips_nothing(world: World) -> None:
    await world.schedule()
    card = await world.say("/list", "#1")
    await world.fire_at(23.5)
    await world.sent_to_each(1)
    answer = await world.press(card, skip_data(card))
    assert "gone out already" in answer
    runs = await world.core.store.list_runs(schedule_id=1)
    assert [run.outcome for run in runs] == [None]
    assert world.sidecar.requests == 2


async def test_someone_else_cannot_skip_my_schedule(world: World) -> None:
    await world.schedule()
    card = await world.say("/list", "#1")
    answer = await world.press(card, skip_data(card), user=OTHER_ADMIN)
    assert "There is no schedule #1" in answer
    assert await world.core.store.list_runs(schedule_id=1) == []


async def test_skipping_a_one_time_schedule_ends_it_done(world: World) -> None:
    await world.say(f"/schedule {ANNA} | tomorrow 9:00 | Once", "#1")
    card = await world.say("/list", "#1")
    answer = await world.press(card, skip_data(card))
    assert "done" in answer
    after = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert after.state.value == "done"
    await world.fire_at(30)
    assert world.sidecar.requests == 0


async def test_a_paused_schedule_has_no_skip_next(world: World) -> None:
    await world.schedule()
    await world.say("/pause 1")
    card = await world.say("/list", "#1")
    assert not [b for b in card.buttons() if "Skip" in str(b.get("text"))]


async def test_skip_next_on_an_interval_schedule_off_the_whole_second(world: World) -> None:
    # 21:00:05.123456: an interval rule starts at this moment, fractions and all, while the
    # card's button carries whole seconds.
    await world.clock.advance(11 * 3600 + 5.123456)
    await world.say(f"/schedule {ANNA} | every 15 minutes | Hi!", "#1")
    before = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert before.next_run_at is not None and before.next_run_at.microsecond != 0
    card = await world.say("/list", "#1")
    data = skip_data(card)
    first = await world.press(card, data)
    assert first.startswith("Skipped"), first
    second = await world.press(card, data)
    assert "skipped already" in second, second
    runs = await world.core.store.list_runs(schedule_id=1)
    assert [run.outcome for run in runs] == ["skipped"]
    after = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert after.next_run_at == before.next_run_at + timedelta(minutes=15)


async def test_skip_next_on_the_last_occurrence_says_the_schedule_is_done_once(
    world: World,
) -> None:
    await world.say(f"/schedule {ANNA}, {BEN} | every day at 9:00 2 times | Hi!", "#1")
    await world.fire_at(23.5)  # Sunday 09:00 goes out
    await world.sent_to_each(1)
    await world.notifier.outbox.drained()
    card = await world.say("/list", "next:")
    answer = await world.press(card, skip_data(card))  # Monday 09:00, the last one
    assert answer.startswith("Skipped"), answer
    await world.notifier.outbox.drained()
    done = [m for m in world.telegram.bot_messages(ADMIN) if "is done" in m.text]
    assert len(done) == 1 and "1 occurrence went out" in done[0].text
    await world.fire_at(30)
    await world.notifier.outbox.drained()
    assert len([m for m in world.telegram.bot_messages(ADMIN) if "is done" in m.text]) == 1
    assert world.sidecar.requests == 2
