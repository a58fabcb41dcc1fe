"""Fixtures for handler-level bot tests: the real dispatcher and routers, a Bot whose session
talks HTTP to the fake Telegram server, a real SQLite store and service, a fake clock and the
fake sidecar over real HTTP behind the real WhatsApp client. Updates are the fake server's own
payloads, fed with `feed_raw_update`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from bot.access import Access
from bot.app import build_bot, build_dispatcher
from bot.notifier import TelegramNotifier
from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.adapters.whatsapp import WhatsAppClient
from core.config import Settings
from core.domain.clock import FakeClock
from core.services import Services
from tests.fakes.sidecar import FakeSidecar
from tests.fakes.telegram import ChatMessage, FakeTelegram

# Saturday 28 November 2026, 10:00 UTC.
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
ADMIN = 1001
OTHER_ADMIN = 1002
STRANGER = 666


def linked_sidecar() -> FakeSidecar:
    """The sidecar the bot tests start with: linked as "Me", no contacts and no groups."""
    return FakeSidecar(
        me={"id": "4915199999999@c.us", "name": "Me"},
        address_book=[],
        group_list=[],
        qr="2@first-qr-code",
        pairing_code="ABCD-EFGH",
    )


@contextlib.asynccontextmanager
async def sidecar_client(sidecar: FakeSidecar) -> AsyncIterator[WhatsAppClient]:
    """`sidecar` started, and the real client of it (both stopped after)."""
    await sidecar.start()
    client = WhatsAppClient(sidecar.url, sidecar.api_key)
    try:
        yield client
    finally:
        await client.aclose()
        await sidecar.close()


async def feed_updates(
    telegram: FakeTelegram,
    dispatcher: Dispatcher,
    bot: Bot,
    services: Services,
    **more: object,
) -> None:
    """Every update the fake Telegram holds, through the dispatcher, with the services by
    name as `wasched run` passes them and `more` (the notifier, access...)."""
    for update in telegram.take_updates():
        await dispatcher.feed_raw_update(bot, update, **services.by_name(), **more)


@dataclass
class Harness:
    """The bot as a person meets it: `say` / `press` go through the real dispatcher."""

    telegram: FakeTelegram
    dispatcher: Dispatcher
    bot: Bot
    service: Services
    notifier: TelegramNotifier
    access: Access
    # The sidecar the service's real WhatsAppClient talks to.
    whatsapp: FakeSidecar
    store: Store
    clock: FakeClock

    async def feed(self, **more: object) -> None:
        """The updates waiting, handled with what `wasched run` passes, and `more`."""
        wired = {"notifier": self.notifier, "access": self.access, **more}
        await feed_updates(self.telegram, self.dispatcher, self.bot, self.service, **wired)

    async def flush(self) -> None:
        await self.feed()
        broken = [e for e in self.telegram.events if "on wasched's side" in e.text]
        assert not broken, "a handler crashed; see the log"

    async def say(self, text: str, user: int = ADMIN) -> int:
        """Send `text` as `user`; returns the event cursor from before, for `reply`."""
        since = self.telegram.cursor()
        await self.telegram.send(user, text)
        await self.flush()
        return since

    async def ask(self, text: str, contains: str = "", user: int = ADMIN) -> ChatMessage:
        since = await self.say(text, user)
        return await self.telegram.reply(user, contains, since=since, within=5)

    async def press(self, message: ChatMessage, button: str, user: int = ADMIN) -> str:
        query_id = await self.telegram.press(user, message, button)
        await self.flush()
        return query_id

    async def press_data(self, message: ChatMessage, data: str, user: int = ADMIN) -> str:
        query_id = await self.telegram.press_data(user, message, data)
        await self.flush()
        return query_id

    def last(self, user: int = ADMIN) -> ChatMessage:
        return self.telegram.bot_messages(user)[-1]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        for user in (ADMIN, OTHER_ADMIN, STRANGER):
            fake.add_user(user)
        yield fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 'wasched.db'}")
    yield opened
    await opened.close()


@pytest.fixture
def whatsapp() -> FakeSidecar:
    return linked_sidecar()


@pytest.fixture
async def whatsapp_client(whatsapp: FakeSidecar) -> AsyncIterator[WhatsAppClient]:
    async with sidecar_client(whatsapp) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url))
    made = Bot(
        telegram.token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
    )
    yield made
    await made.session.close()


@pytest.fixture
async def app_bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    """The Bot exactly as `wasched run` builds it (HTML, flood-control waits)."""
    made = build_bot(
        Settings(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.base_url)
    )
    yield made
    await made.session.close()


@pytest.fixture
async def harness(
    telegram: FakeTelegram,
    app_bot: Bot,
    store: Store,
    whatsapp: FakeSidecar,
    whatsapp_client: WhatsAppClient,
    clock: FakeClock,
) -> AsyncIterator[Harness]:
    bot = app_bot
    service = Services(store, clock, default_timezone="Europe/Berlin", whatsapp=whatsapp_client)
    notifier = TelegramNotifier(bot, admin_ids={ADMIN, OTHER_ADMIN}, pace_s=0)
    access = Access({ADMIN, OTHER_ADMIN}, service.users)
    await access.prepare()
    notifier.set_audience(access.members)
    notifier.remember_in(service.memory)
    dispatcher = build_dispatcher(access)
    async with notifier.outbox.running(drain_s=2):
        yield Harness(telegram, dispatcher, bot, service, notifier, access, whatsapp, store, clock)
