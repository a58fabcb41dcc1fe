"""Stopping `wasched run` (the path SIGTERM takes) closes in the order that lets every writer
finish: core's engine, sender and HTTP server stop, the bot's outbox shows what waits and
remembers each run card's message in the store, and only then the store closes. So the next
start edits the card instead of sending a second one."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.app import run
from tests.bot.conftest import ADMIN
from tests.bot.test_telegram_down import (
    FAST,
    eventually,
    schedule_in_seconds,
    settings_for,
    sidecar_for,
)
from tests.fakes.sidecar import free_port
from tests.fakes.telegram import FakeTelegram


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def closed(port: int) -> bool:
    return not await listening(port)


async def test_a_card_waiting_at_shutdown_is_remembered_and_edited_after_the_restart(
    telegram: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    async with sidecar_for(port) as sidecar:
        sidecar.auto_ack = False  # sent, not yet on the phone: the card will change again
        settings = settings_for(tmp_path, telegram, sidecar, port)
        schedule = await schedule_in_seconds(settings, 1)
        telegram.fail_every(502, method="sendMessage")
        stop = asyncio.Event()
        wasched = asyncio.create_task(run(settings, stop=stop, backoff=FAST))
        try:
            await eventually(lambda: wasched.done() or sidecar.outbox)
            assert not wasched.done(), wasched.exception()
            # The run's card was tried and waits in the outbox while Telegram answers 502.
            await eventually(lambda: telegram.calls_of("sendmessage"))
            assert telegram.bot_messages(ADMIN) == []
        finally:
            stop.set()
        # Core's writers and its HTTP server stop first; Telegram answers only after that.
        await eventually(lambda: wasched.done() or closed(port), within=20)
        telegram.answer_again()
        await asyncio.wait_for(wasched, 20)

        (card,) = [m for m in telegram.bot_messages(ADMIN) if f"#{schedule.id}" in m.text]
        assert not [r for r in caplog.records if r.exc_info], "a traceback while stopping"

        stop = asyncio.Event()
        wasched = asyncio.create_task(run(settings, stop=stop, backoff=FAST))
        try:
            await eventually(lambda: wasched.done() or listening(port), within=20)
            assert not wasched.done(), wasched.exception()
            (sent,) = sidecar.outbox
            assert await sidecar.post_event("message.ack", {"id": sent.id, "ack": 2}) == 200
            await eventually(lambda: card.edits >= 1)
        finally:
            stop.set()
            await asyncio.wait_for(wasched, 20)

    assert "delivered" in card.text
    assert [m for m in telegram.bot_messages(ADMIN) if f"#{schedule.id}" in m.text] == [card]
    sends = [e for e in telegram.events if e.kind == "send" and f"#{schedule.id}" in e.text]
    assert len(sends) == 1
