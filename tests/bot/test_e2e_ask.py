"""End to end (the real `wasched run` and the sidecar's fake engine, fake Telegram): Ask me
first's Send now pressed twice sends once, and Skip next's occurrence is never sent and
/logs says it was skipped. Sends are counted at the sidecar's fake outbox and requests."""

from __future__ import annotations

import asyncio

import pytest

from tests.bot.test_e2e import ADMIN, CHAT, NUMBER, World, needs_node, world
from tests.engine.conftest import eventually

__all__ = ["world"]  # the fixture these tests use

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Real time wasched gets to send what it must not, before counting.
HOLD_S = 1.5
SKIPPED_IN_S = 20


async def sends_asked(world: World) -> int:
    """How many POST /messages the sidecar answered."""
    counts = await world.sidecar("GET", "/fake/requests")
    return int(counts["by_route"].get("POST /messages", 0))


async def answer(world: World, query_id: str) -> str:
    return str((await world.telegram.answer(query_id, within=15)).get("text", ""))


@needs_node
async def test_e2e_send_now_pressed_twice_sends_once(world: World) -> None:
    # Due in ten minutes and asked fifteen before: the question comes at once.
    await world.say(f"/schedule {NUMBER} | in 10 minutes | Ask e2e | ask", "asks 15 min before")
    question = await world.telegram.reply(ADMIN, "Send it?", within=30)
    data = question.button("Send now")["callback_data"]
    first = await world.telegram.press_data(ADMIN, question, data)
    again = await world.telegram.press_data(ADMIN, question, data)  # the old button, again
    assert (await answer(world, first)).startswith("You chose Send now")
    assert (await answer(world, again)).startswith("You chose Send now")

    async def sent() -> bool:
        return len(await world.outbox()) >= 1

    await eventually(sent, within_s=15, what="Send now's message in the outbox")
    await asyncio.sleep(HOLD_S)
    assert [(m["text"], m["to"]) for m in await world.outbox()] == [("Ask e2e", CHAT)]
    assert await sends_asked(world) == 1


@needs_node
async def test_e2e_skip_next_is_never_sent_and_logs_say_skipped(world: World) -> None:
    loop = asyncio.get_running_loop()
    due_by = loop.time() + SKIPPED_IN_S
    await world.say(f"/schedule {NUMBER} | in {SKIPPED_IN_S} seconds | Skipped e2e", "Saved")
    card = await world.say("/list", "#1")
    query_id = await world.telegram.press(ADMIN, card, "Skip next")
    skipped = await answer(world, query_id)
    assert skipped.startswith("Skipped ") and "#1 is done" in skipped

    logs = await world.say("/logs", "Latest deliveries")
    assert "skipped" in logs.text.lower()
    # The occurrence's time passes: nothing reaches the sidecar.
    await asyncio.sleep(max(0.0, due_by - loop.time()) + HOLD_S)
    assert await world.outbox() == [] and await sends_asked(world) == 0
    assert "done" in (await world.say("/list", "Your schedules")).text
    texts = [m.text for m in world.telegram.bot_messages(ADMIN)]
    assert not any("missed" in t for t in texts)
