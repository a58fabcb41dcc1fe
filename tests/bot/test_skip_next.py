"""Skip next: the schedule card's button records the next occurrence as skipped (never sent,
not missed), the card then shows the one after, and that one goes out.

Core runs as `wasched run` builds it (open_core, SQLite, the fake sidecar over HTTP) with the
Telegram notifier and the real dispatcher, on a fake clock; sends are counted at the sidecar."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher

from bot.access import Access
from bot.app import build_dispatcher
from bot.notifier import TelegramNotifier
from core.app import Core, open_core
from core.domain.clock import FakeClock
from core.domain.models import DeliveryFilter, DeliveryStatus, Schedule
from core.domain.when import format_local
from tests.bot.conftest import ADMIN, OTHER_ADMIN, START, feed_updates
from tests.engine.conftest import eventually, settings_for
from tests.fakes.sidecar import FakeSidecar
from tests.fakes.telegram import ChatMessage, FakeTelegram

ANNA = "+4915100000001"
BEN = "+4915100000002"


@dataclass
class World:
    """The bot over a running core on a fake clock, and the fake sidecar it sends through."""

    telegram: FakeTelegram
    bot: Bot
    dispatcher: Dispatcher
    core: Core
    notifier: TelegramNotifier
    access: Access
    sidecar: FakeSidecar
    clock: FakeClock

    async def flush(self) -> None:
        wired = {"notifier": self.notifier, "access": self.access}
        await feed_updates(self.telegram, self.dispatcher, self.bot, self.core.services, **wired)

    async def say(self, text: str, contains: str = "", user: int = ADMIN) -> ChatMessage:
        since = self.telegram.cursor()
        await self.telegram.send(user, text)
        await self.flush()
        return await self.telegram.reply(user, contains, since=since, within=5)

    async def press(self, message: ChatMessage, data: str, user: int = ADMIN) -> str:
        """Press the button whose callback data is `data`; returns the answer's text."""
        query_id = await self.telegram.press_data(user, message, data)
        await self.flush()
        return str((await self.telegram.answer(query_id)).get("text", ""))

    async def schedule(self) -> Schedule:
        """A daily 09:00 (UTC) schedule to two numbers, made with the one-line form."""
        await self.say(f"/schedule {ANNA}, {BEN} | every day at 9:00 | Hi!", "#1")
        return await self.core.services.schedules.get_schedule(ADMIN, 1)

    async def fire_at(self, hours: float) -> None:
        """Move the clock `hours` on and let the engine handle what fell due."""
        await self.clock.advance(hours * 3600)
        await self.core.engine.tick()

    async def sent_to_each(self, count: int) -> None:
        """Wait until the sidecar accepted `count` sends to each number."""
        await eventually(
            lambda: len(self.sidecar.outbox) >= 2 * count, what=f"{2 * count} sends accepted"
        )


def skip_data(card: ChatMessage) -> str:
    return str(card.button("Skip next")["callback_data"])


@pytest.fixture
async def world(
    telegram: FakeTelegram, app_bot: Bot, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[World]:
    sidecar = FakeSidecar(api_key="test-key")
    await sidecar.start()
    notifier = TelegramNotifier(app_bot, admin_ids={ADMIN, OTHER_ADMIN}, pace_s=0)
    settings = settings_for(f"sqlite:///{tmp_path / 'wasched.db'}", sidecar)
    try:
        async with (
            notifier.outbox.running(drain_s=2),
            open_core(settings, notifier=notifier, clock=clock) as core,
        ):
            sidecar.events_url = f"{core.url}/whatsapp/events"
            access = Access({ADMIN, OTHER_ADMIN}, core.services.users)
            await access.prepare()
            notifier.set_audience(access.members)
            notifier.remember_in(core.services.memory)
            dispatcher = build_dispatcher(access)
            yield World(telegram, app_bot, dispatcher, core, notifier, access, sidecar, clock)
    finally:
        await sidecar.close()


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
