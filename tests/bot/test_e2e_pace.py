"""End to end (the real `wasched run` and the sidecar's fake engine, fake Telegram): a run
whose sends fail is cut short and its schedule paused, Resume and Show failures; the caps and
a warm-up day in /status and on the run's card."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.bot.test_e2e import ADMIN, World, needs_node, running

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIX = [f"+4915123456{n:03d}" for n in range(1, 7)]
# One at a time, 50 ms apart: a run cut short stops between two sends.
PACED = {"SEND_GAP_MIN_S": "0.05", "SEND_GAP_MAX_S": "0.05"}
# Long enough for twenty more paced sends, had any been let out.
HOLD_S = 1.0


async def sends_asked(world: World) -> int:
    """How many POST /messages the sidecar answered (failed ones too)."""
    counts = await world.sidecar("GET", "/fake/requests")
    return int(counts["by_route"].get("POST /messages", 0))


async def daily_schedule(world: World, recipients: list[str], text: str) -> None:
    # Twelve hours away: nothing falls due by itself while the test runs.
    hour = (datetime.now(UTC).hour + 12) % 24
    await world.say(
        f"/schedule {', '.join(recipients)} | every day at {hour}:00 | {text}", "Saved"
    )


@needs_node
async def test_e2e_a_failure_spike_pauses_the_schedule_and_resume_sends_the_rest_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, admin_ids=str(ADMIN), wasched_settings=PACED) as world:
        await daily_schedule(world, SIX, "spike test")
        await world.sidecar("POST", "/fake/fail", {"code": "not_on_whatsapp", "count": 3})
        since = world.telegram.cursor()
        await world.telegram.send(ADMIN, "/runnow 1")
        alert = await world.telegram.reply(ADMIN, "sent so far failed", since=since, within=30)
        assert "3 of the 3 messages sent so far failed" in alert.text
        assert "no WhatsApp account" in alert.text and "Schedule #1 is paused" in alert.text
        assert [b["text"] for b in alert.buttons()] == ["▶️ Resume", "❌ Show failures"]

        await asyncio.sleep(HOLD_S)
        assert await sends_asked(world) == 3 and await world.outbox() == []
        assert "⏸ paused" in (await world.say("/list", "Your schedules")).text
        texts = [m.text for m in world.telegram.bot_messages(ADMIN)]
        assert sum("sent so far failed" in t for t in texts) == 1

        # A new message (the run's card, edited meanwhile, says "failed" too).
        since = world.telegram.cursor()
        await world.telegram.press(ADMIN, alert, "Show failures")
        failures = await world.telegram.reply(
            ADMIN, "run 1: 3 failed", since=since, kinds=("send",), within=15
        )
        assert failures.text.count("no WhatsApp account") == 3
        assert all(number[1:] in failures.text.replace(" ", "") for number in SIX[:3])

        resumed = await world.press(alert, "Resume", "held messages go out now")
        assert "3 held messages" in resumed.text and "active again" in resumed.text
        await world.telegram.wait_for(
            lambda: True if len(world.telegram.calls_of("answercallbackquery")) >= 2 else None
        )

        async def rest_sent() -> bool:
            return len(await world.outbox()) == 3

        for _ in range(100):
            if await rest_sent():
                break
            await asyncio.sleep(0.1)
        # Pressed again: it says so, and nothing more goes out.
        query = await world.telegram.press(ADMIN, alert, "Resume")
        answer = await world.telegram.answer(query)
        assert "resumed already" in answer.get("text", "")
        await asyncio.sleep(HOLD_S)
        sent = await world.outbox()
        assert sorted(m["to"] for m in sent) == sorted(f"{n[1:]}@c.us" for n in SIX[3:])
        assert await sends_asked(world) == 6
        assert "▶️ active" in (await world.say("/list", "Your schedules")).text
        texts = [m.text for m in world.telegram.bot_messages(ADMIN)]
        assert sum("sent so far failed" in t for t in texts) == 1

        status = await world.say("/status", "wasched status")
        assert "Sends: 3 of 60 in the last hour, 3 of 400 in the last 24 h" in status.text


@needs_node
async def test_e2e_resume_says_how_many_held_messages_of_which_run_it_sends(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, admin_ids=str(ADMIN), wasched_settings=PACED) as world:
        await daily_schedule(world, SIX, "resume test")
        await world.sidecar("POST", "/fake/fail", {"code": "not_on_whatsapp", "count": 3})
        since = world.telegram.cursor()
        await world.telegram.send(ADMIN, "/runnow 1")
        await world.telegram.reply(ADMIN, "sent so far failed", since=since, within=30)

        resumed = await world.say("/resume 1", "Resumed")
        assert "▶️ 3 held messages go out now (run 1: 3)." in resumed.text
        assert "stay held" not in resumed.text
        for _ in range(100):
            if len(await world.outbox()) == 3:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(HOLD_S)
        assert len(await world.outbox()) == 3 and await sends_asked(world) == 6


@needs_node
async def test_e2e_a_warmup_day_cap_holds_sends_back_and_status_says_when_the_next_goes(
    tmp_path: Path,
) -> None:
    settings = {"WARMUP_DAYS": "7", "SEND_DAILY_CAP": "16"}  # day 1: 2 a day
    async with running(tmp_path, admin_ids=str(ADMIN), wasched_settings=settings) as world:
        await daily_schedule(world, SIX[:4], "warm-up test")
        since = world.telegram.cursor()
        await world.telegram.send(ADMIN, "/runnow 1")
        card = await world.telegram.reply(ADMIN, "cap", since=since, within=30)
        assert "2 messages wait: the daily cap (warm-up day 1 of 7: 2 a day" in card.text

        await asyncio.sleep(HOLD_S)
        assert await sends_asked(world) == 2 and len(await world.outbox()) == 2
        status = await world.say("/status", "wasched status")
        assert "2 of 2 in the last 24 h (warm-up day 1 of 7: 2 a day" in status.text
        assert "The daily cap is reached: the next send goes at" in status.text
        listing = await world.say("/list", "Your schedules")
        assert "2 messages wait: the daily cap (warm-up day 1 of 7: 2 a day" in listing.text
