"""Ask me first across a crash, with real processes: `wasched run` (python -m bot run) asks,
is killed with SIGKILL and started again on the same database and the same fake Telegram;
the questions asked before the crash are answered after it and each occurrence goes out
exactly once (the sidecar's fake outbox), and a question a crash left stored but untold is
told once the process is back.

The schedules fall due DUE_IN_S after they are stored: the crash and the answers come before
that (the test checks they did), and the outbox is read after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.adapters.store import Store, open_store
from core.domain.clock import SystemClock
from core.domain.models import Recipient, RecipientKind, Rule, RuleKind, ScheduleState
from tests.bot.test_e2e import API_KEY, REPO, SIDECAR, free_port, needs_node, stop, wait_until_up
from tests.engine.conftest import eventually
from tests.engine.processes import start_python
from tests.fakes.telegram import ChatMessage, FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OWNER = 4242
NUMBER = "+4915123456789"
DUE_IN_S = 90
ASKED = "Send it?"


async def seed(database_url: str) -> datetime:
    """Three one-time ask-first schedules due in DUE_IN_S: #1 and #2 not asked yet, #3 asked
    by a process that crashed before telling (its ask stored two minutes ago, untold)."""
    store = await open_store(database_url)
    try:
        now = SystemClock().now()
        due = now + timedelta(seconds=DUE_IN_S)
        for n, text in enumerate(("one", "two", "three"), start=1):
            schedule = await store.add_schedule(
                owner_id=OWNER,
                recipients=[Recipient(kind=RecipientKind.phone, address=NUMBER)],
                rule=Rule(kind=RuleKind.once, timezone="UTC", at=due),
                next_run_at=due,
                text=text,
            )
            assert schedule.id == n
            schedule = await store.set_ask_first(schedule.id, ask_first=True, ask_lead_s=600)
        assert await store.insert_ask(schedule, due, now=now - timedelta(minutes=2)) is not None
    finally:
        await store.close()
    return due


def question(telegram: FakeTelegram, schedule_id: int) -> ChatMessage | None:
    for message in telegram.bot_messages(OWNER):
        if ASKED in message.text and f"#{schedule_id} is due" in message.text:
            return message
    return None


async def press(telegram: FakeTelegram, message: ChatMessage, button: str) -> str:
    query_id = await telegram.press(OWNER, message, button)
    return str((await telegram.answer(query_id, within=60)).get("text", ""))


async def outbox(http: aiohttp.ClientSession, sidecar_url: str) -> list[dict[str, Any]]:
    async with http.get(f"{sidecar_url}/fake/outbox", headers={"X-Api-Key": API_KEY}) as response:
        assert response.status == 200, await response.text()
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages


async def all_done(store: Store) -> bool:
    schedules = await store.list_schedules()
    return len(schedules) == 3 and all(s.state is ScheduleState.done for s in schedules)


@needs_node
async def test_questions_outlive_a_crash_and_each_occurrence_goes_out_once(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'wasched.db'}"
    due = await seed(database_url)
    sidecar_port, core_port = free_port(), free_port()
    sidecar_url = f"http://127.0.0.1:{sidecar_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATS"))}
    sidecar_log = tmp_path / "sidecar.log"
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        telegram = await stack.enter_async_context(FakeTelegram())
        telegram.add_user(OWNER)
        out = stack.enter_context(sidecar_log.open("wb"))
        sidecar = await asyncio.create_subprocess_exec(
            "node",
            "src/server.js",
            cwd=SIDECAR,
            env=base_env
            | {
                "WHATSAPP_ENGINE": "fake",
                "WHATSAPP_HOST": "127.0.0.1",
                "WHATSAPP_PORT": str(sidecar_port),
                "WHATSAPP_DATA_DIR": str(tmp_path / "whatsapp"),
                "WHATSAPP_EVENTS_URL": f"http://127.0.0.1:{core_port}/whatsapp/events",
                "WHATSAPP_API_KEY": API_KEY,
                "WHATSAPP_ENV_FILE": str(tmp_path / "no.env"),
                "WHATSAPP_LOG_LEVEL": "warn",
            },
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        stack.push_async_callback(stop, sidecar, sidecar_log)
        await wait_until_up(http, f"{sidecar_url}/health", sidecar, sidecar_log)
        env = base_env | {
            "PYTHONPATH": str(REPO),
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_URL": telegram.base_url,
            "TELEGRAM_ADMIN_IDS": str(OWNER),
            "DATABASE_URL": database_url,
            "DEFAULT_TIMEZONE": "UTC",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(core_port),
            "WHATSAPP_URL": sidecar_url,
            "WHATSAPP_API_KEY": API_KEY,
            "SEND_GAP_MIN_S": "0",
            "SEND_GAP_MAX_S": "0",
        }
        log = tmp_path / "wasched.log"
        first = await start_python("-m", "bot", "run", cwd=tmp_path, env=env, log=log)

        # Each schedule is asked about once: #1 and #2 now, #3 (stored, never told) too.
        asked = await telegram.wait_for(
            lambda: (
                [question(telegram, n) for n in (1, 2, 3)]
                if all(question(telegram, n) for n in (1, 2, 3))
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
        first.send_signal(signal.SIGKILL)
        await first.wait()

        polls = len(telegram.calls_of("getupdates"))
        second = await start_python("-m", "bot", "run", cwd=tmp_path, env=env, log=log)
        stack.push_async_callback(stop, second, log)
        await telegram.wait_for(
            lambda: True if len(telegram.calls_of("getupdates")) > polls else None, within=60
        )

        one, two, _untold = (m for m in asked if m is not None)
        # Answered after the restart, on the questions from before it.
        assert (await press(telegram, one, "Send now")).startswith("You chose Send now")
        assert (await press(telegram, two, "Send at the time")).startswith("You chose Send at")
        sent = [m["text"] for m in await outbox(http, sidecar_url)]
        assert "two" not in sent and "three" not in sent, "the answers came after the due time"

        store = await open_store(database_url)
        try:
            await eventually(lambda: all_done(store), within_s=DUE_IN_S + 120, what="all done")

            async def three_sent() -> bool:
                texts = [m["text"] for m in await outbox(http, sidecar_url)]
                return {"one", "two", "three"} <= set(texts)

            await eventually(three_sent, within_s=60, what="each occurrence sent")
            asks = [await store.find_ask(n, due) for n in (1, 2, 3)]
        finally:
            await store.close()
        messages = await outbox(http, sidecar_url)
        assert await stop(second, log) == 0, log.read_text(errors="replace")[-3000:]

    assert Counter(m["text"] for m in messages) == {"one": 1, "two": 1, "three": 1}
    assert len({m["idempotency_key"] for m in messages}) == 3
    assert [a.choice.value if a and a.choice else None for a in asks] == [
        "send_now",
        "at_time",
        "no_answer_sent",
    ]
    # Asked once each: the restart asked nothing again.
    questions = [m for m in telegram.bot_messages(OWNER) if ASKED in m.text]
    assert len(questions) == 3
