"""Ask me first across a crash, with real processes (tests/bot/test_e2e.py's `running`: `wasched
run` and the sidecar's fake engine): wasched asks, is killed with SIGKILL and started again
on the same database and the same fake Telegram; the questions asked before the crash are
answered after it, a question a crash left stored but untold is told once, and nothing is
asked again.

The schedules fall due an hour after they are stored (they ask two hours before), so every
check here comes before the due time, however slow the machine: Send now is seen in the
sidecar's fake outbox, Send at the time as the stored choice with nothing sent. That the
occurrence then goes out at the time is test_ask_first.py's (on a fake clock).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.adapters.store import open_store
from core.domain.clock import SystemClock
from core.domain.models import AskChoice, Recipient, RecipientKind, Rule, RuleKind
from tests.bot.test_e2e import ADMIN, NUMBER, World, needs_node, running
from tests.engine.conftest import eventually
from tests.fakes.telegram import ChatMessage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DUE_IN = timedelta(hours=1)
LEAD_S = 2 * 3600
ASKED = "Send it?"
# Real time wasched gets to send what it must not, before counting.
HOLD_S = 1.0


async def seed(database_url: str) -> datetime:
    """Three one-time ask-first schedules due in an hour: #1 and #2 not asked yet, #3 asked
    by a process that crashed before telling (its ask stored two minutes ago, untold)."""
    store = await open_store(database_url)
    try:
        now = SystemClock().now()
        due = now + DUE_IN
        for n, text in enumerate(("one", "two", "three"), start=1):
            schedule = await store.add_schedule(
                owner_id=ADMIN,
                recipients=[Recipient(kind=RecipientKind.phone, address=NUMBER)],
                rule=Rule(kind=RuleKind.once, timezone="UTC", at=due),
                next_run_at=due,
                text=text,
            )
            assert schedule.id == n
            schedule = await store.set_ask_first(schedule.id, ask_first=True, ask_lead_s=LEAD_S)
        assert await store.insert_ask(schedule, due, now=now - timedelta(minutes=2)) is not None
    finally:
        await store.close()
    return due


def question(world: World, schedule_id: int) -> ChatMessage | None:
    for message in world.telegram.bot_messages(ADMIN):
        if ASKED in message.text and f"#{schedule_id} is due" in message.text:
            return message
    return None


async def press(world: World, message: ChatMessage, button: str) -> str:
    query_id = await world.telegram.press(ADMIN, message, button)
    return str((await world.telegram.answer(query_id, within=60)).get("text", ""))


async def sent(world: World) -> Counter[str]:
    return Counter(m["text"] for m in await world.outbox())


@needs_node
async def test_questions_outlive_a_crash_and_are_answered_after_it(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'wasched.db'}"
    due = await seed(database_url)
    async with running(tmp_path, admin_ids=str(ADMIN)) as world:
        # Each schedule is asked about once: #1 and #2 now, #3 (stored, never told) too.
        asked = await world.telegram.wait_for(
            lambda: (
                [question(world, n) for n in (1, 2, 3)]
                if all(question(world, n) for n in (1, 2, 3))
                else None
            ),
            within=60,
        )
        # A question counts as told once Telegram took it and that is stored: the crash
        # comes after (one between the two would ask it again, as nobody may have it).
        seen = await open_store(database_url)
        try:

            async def all_told() -> bool:
                asks = [await seen.find_ask(n, due) for n in (1, 2, 3)]
                return all(ask is not None and ask.told for ask in asks)

            await eventually(all_told, within_s=30, what="all three told")
        finally:
            await seen.close()
        await world.crash_and_restart()

        one, two, _untold = (m for m in asked if m is not None)
        # Answered after the restart, on the questions from before it.
        assert (await press(world, one, "Send now")).startswith("You chose Send now")
        assert (await press(world, two, "Send at the time")).startswith("You chose Send at")

        async def one_sent() -> bool:
            return (await sent(world))["one"] == 1

        await eventually(one_sent, within_s=30, what="Send now's message in the outbox")
        await asyncio.sleep(HOLD_S)
        assert await sent(world) == {"one": 1}
        messages = await world.outbox()
        store = await open_store(database_url)
        try:
            asks = [await store.find_ask(n, due) for n in (1, 2, 3)]
            assert await store.find_run(2, due) is None
            assert await store.find_run(3, due) is None
        finally:
            await store.close()

    assert [a.choice if a else "missing" for a in asks] == [
        AskChoice.send_now,
        AskChoice.at_time,
        None,
    ]
    assert all(a is not None and a.told for a in asks)
    assert len({m["idempotency_key"] for m in messages}) == 1
    # Asked once each: the restart asked nothing again.
    questions = [m for m in world.telegram.bot_messages(ADMIN) if ASKED in m.text]
    assert len(questions) == 3
