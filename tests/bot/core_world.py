"""The bot over a running core on a fake clock, as `wasched run` builds it (open_core, SQLite,
the fake sidecar over HTTP, the Telegram notifier, the real dispatcher): for the tests of
skipping and asking first, which count what reaches the sidecar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher

from bot.access import Access
from bot.app import build_dispatcher
from bot.notifier import TelegramNotifier
from core.app import Core, open_core
from core.domain.clock import FakeClock
from core.domain.models import Schedule
from tests.bot.conftest import ADMIN, OTHER_ADMIN, feed_updates
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
