"""A schedule that ends, end to end with the real sidecar (`node src/server.js`, fake engine)
over HTTP: typed in the one-line form to the real dispatcher through the fake Telegram server,
core as `wasched run` opens it on a fake clock; both occurrences reach the sidecar's outbox and
the owner hears once that it is done."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from aiogram import Bot

from bot.access import Access
from bot.app import build_dispatcher
from bot.notifier import TelegramNotifier
from core.app import open_core
from core.config import load_settings
from core.domain.clock import FakeClock
from core.domain.models import ScheduleState
from tests.bot.conftest import ADMIN, feed_updates
from tests.engine.conftest import eventually
from tests.engine.test_receipts_crash import API_KEY, World, needs_node, world  # noqa: F401
from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.slow, needs_node]

NUMBER = "+4915123456789"


async def test_two_times_through_the_real_sidecar_sends_twice_and_tells_done_once(
    telegram: FakeTelegram,
    app_bot: Bot,
    clock: FakeClock,
    world: World,  # noqa: F811
) -> None:
    await world.start_sidecar()
    settings = load_settings(
        DATABASE_URL=world.database_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=world.core_port,  # where the sidecar posts its events
        WHATSAPP_URL=world.sidecar_url,
        WHATSAPP_API_KEY=API_KEY,
        SEND_GAP_MIN_S=0,
        SEND_GAP_MAX_S=0,
        ACK_ALERT_AFTER_S=0,
        DEFAULT_TIMEZONE="UTC",
    )
    notifier = TelegramNotifier(app_bot, admin_ids={ADMIN}, pace_s=0)
    async with (
        notifier.outbox.running(drain_s=2),
        open_core(settings, notifier=notifier, clock=clock) as core,
    ):
        access = Access({ADMIN}, core.services.users)
        await access.prepare()
        notifier.set_audience(access.members)
        dispatcher = build_dispatcher(access)

        async def say(text: str, contains: str) -> str:
            since = telegram.cursor()
            await telegram.send(ADMIN, text)
            await feed_updates(
                telegram, dispatcher, app_bot, core.services, notifier=notifier, access=access
            )
            return (await telegram.reply(ADMIN, contains, since=since, within=5)).text

        saved = await say(f"/schedule {NUMBER} | every 1 hour 2 times | Hi from node", "Saved")
        assert "2 of 2 left" in saved

        async def outbox() -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = (await world.sidecar("GET", "/fake/outbox"))[
                "messages"
            ]
            return messages

        async def sends_are(count: int) -> bool:
            return len(await outbox()) == count

        for hour in range(1, 5):  # twice as long as it runs
            await clock.advance(3600)
            await core.engine.tick()
            want = min(hour, 2)
            await eventually(
                partial(sends_are, want), within_s=30, what=f"{want} sends in the outbox"
            )
            if hour == 1:
                assert "1 of 2 left" in await say("/list", "Your schedules")
        await notifier.outbox.drained()

        sent = await outbox()
        assert [m["text"] for m in sent] == ["Hi from node", "Hi from node"]
        assert len({m["idempotency_key"] for m in sent}) == 2
        done = [m for m in telegram.bot_messages(ADMIN) if "is done" in m.text]
        assert len(done) == 1
        assert "2 occurrences went out" in done[0].text
        [schedule] = await core.services.schedules.list_schedules(ADMIN)
        assert schedule.state is ScheduleState.done
        assert "ended (2 times)" in await say("/list", "Your schedules")
