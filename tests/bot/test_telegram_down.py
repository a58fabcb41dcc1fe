"""Telegram down: wasched still sends what is due, logs an outage once, keeps every
notification and shows each run once with its latest state when Telegram answers again; a
reply survives a few seconds of 5xx or network errors.

The fake Telegram is held unreachable (not listening, or answering 502 pages or 500s) long
enough to count what wasched does meanwhile: requests, log lines, messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError, TelegramServerError
from aiogram.utils.backoff import BackoffConfig

from bot.access import Access
from bot.app import RetryRequests, build_bot, build_dispatcher, run
from bot.notifier import Note, TelegramNotifier
from core.adapters.counters import TELEGRAM_ERRORS
from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.adapters.whatsapp import WhatsAppClient
from core.config import Settings
from core.domain.clock import FakeClock, SystemClock
from core.domain.errors import ConfigError
from core.domain.models import DeliveryFilter, DeliveryStatus, Run, Schedule
from core.services import Services
from tests.bot.conftest import ADMIN, OTHER_ADMIN, Harness
from tests.fakes.sidecar import FakeSidecar, free_port
from tests.fakes.telegram import FakeTelegram

# Tries while Telegram does not answer, fast enough to count many in a short hold.
FAST = BackoffConfig(min_delay=0.02, max_delay=0.1, factor=1.5, jitter=0)
NUMBER = "+4915123456789"
API_KEY = "down-test-key-0123456789"
OUTAGE = "Telegram does not answer"
BACK = "Telegram answers again"


def errors(kind: str) -> float:
    value: float = TELEGRAM_ERRORS.labels(kind=kind)._value.get()
    return value


async def eventually(probe: Callable[[], Any], within: float = 120.0) -> None:
    """Wait until `probe()` (or what it awaits) is truthy, checked every 50 ms. `within` is a
    bound, not a measure: the outbox retries on the loop's own clock, so how many tries fit
    in a few seconds is the machine's speed; a wait for 30 tries ends at the 30th."""
    async with asyncio.timeout(within):
        while True:
            found = probe()
            if asyncio.iscoroutine(found):
                found = await found
            if found:
                return
            await asyncio.sleep(0.05)


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Warnings and errors of the bot and of aiogram (core's own are not about Telegram)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(("bot", "aiogram"))
    ]


# --- the fake itself ---------------------------------------------------------------------


async def test_the_fake_can_be_unreachable_and_come_back(telegram: FakeTelegram) -> None:
    settings = Settings(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.base_url)
    bot = build_bot(settings, requests=RetryRequests(reply_retry_s=0))
    try:
        telegram.fail_every(502)
        with pytest.raises(ClientDecodeError):  # nginx's HTML page, not the Bot API's JSON
            await bot.get_me()
        telegram.fail_every(500, method="getMe")
        with pytest.raises(TelegramServerError, match="Internal Server Error"):
            await bot.get_me()
        assert await bot.send_message(ADMIN, "only getMe fails")
        telegram.answer_again()
        assert (await bot.get_me()).username == "wasched_test_bot"
        port = telegram.port
        await telegram.go_down()
        with pytest.raises(TelegramNetworkError):  # the open connection dropped, then refused
            await bot.get_me()
        with pytest.raises(TelegramNetworkError, match="Cannot connect"):
            await bot.get_me()
        await telegram.come_back()
        assert telegram.port == port
        assert (await bot.send_message(ADMIN, "back")).text == "back"
        assert [m.text for m in telegram.bot_messages(ADMIN)] == ["only getMe fails", "back"]
    finally:
        await bot.session.close()


# --- `wasched run` with Telegram down at start -------------------------------------------


@contextlib.asynccontextmanager
async def down_at_start(telegram: FakeTelegram, how: str) -> AsyncIterator[None]:
    if how == "refused":
        await telegram.go_down()
    else:
        telegram.fail_every(int(how))
    yield
    if how == "refused":
        await telegram.come_back()
    else:
        telegram.answer_again()


def settings_for(
    tmp_path: Path, telegram: FakeTelegram, sidecar: FakeSidecar, port: int
) -> Settings:
    return Settings(
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_URL=telegram.base_url,
        TELEGRAM_ADMIN_IDS=str(ADMIN),
        DATABASE_URL=f"sqlite:///{tmp_path / 'wasched.db'}",
        DEFAULT_TIMEZONE="UTC",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=port,
        WHATSAPP_URL=sidecar.url,
        WHATSAPP_API_KEY=API_KEY,
        SEND_GAP_MIN_S=0,
        SEND_GAP_MAX_S=0,
    )


@contextlib.asynccontextmanager
async def sidecar_for(port: int) -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key=API_KEY, events_url=f"http://127.0.0.1:{port}/whatsapp/events")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def schedule_in_seconds(settings: Settings, seconds: int) -> Schedule:
    store = await SQLiteStore.open(settings.DATABASE_URL)
    try:
        service = Services(store, SystemClock(), default_timezone="UTC")
        return await service.schedules.create_schedule(
            ADMIN, recipients=NUMBER, when=f"in {seconds} seconds", text="due while down"
        )
    finally:
        await store.close()


async def statuses(settings: Settings) -> list[DeliveryStatus]:
    store = await SQLiteStore.open(settings.DATABASE_URL)
    try:
        return [d.status for d in await store.list_deliveries(DeliveryFilter())]
    finally:
        await store.close()


def kind_of(how: str) -> str:
    """The `core.adapters.counters` kind each way of being down is counted as."""
    return "network" if how == "refused" else "server"


async def all_read(settings: Settings) -> bool:
    found = await statuses(settings)
    return bool(found) and all(s is DeliveryStatus.read for s in found)


@pytest.mark.parametrize("how", ["refused", "502", "500"])
async def test_with_telegram_down_at_start_what_is_due_is_sent_and_shown_once_it_answers(
    telegram: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    stop = asyncio.Event()
    async with sidecar_for(port) as sidecar:
        settings = settings_for(tmp_path, telegram, sidecar, port)
        schedule = await schedule_in_seconds(settings, 2)
        async with down_at_start(telegram, how):
            wasched = asyncio.create_task(run(settings, stop=stop, backoff=FAST))
            try:
                # Sent to WhatsApp and read there, all while Telegram does not answer.
                await eventually(lambda: wasched.done() or all_read(settings))
                assert not wasched.done(), wasched.exception()
                assert [r.text for r in sidecar.outbox] == ["due while down"]
                # Hold the outage on, counting: many tries of the run's card (and of getMe),
                # at least 0.1 s apart: past core's 1 s throttle of run reports, so the
                # notifier has the read state too.
                tried = errors(kind_of(how))
                await eventually(lambda: errors(kind_of(how)) >= tried + 30)
                if how != "refused":
                    assert len(telegram.calls_of("getme")) >= 20
                assert telegram.bot_messages(ADMIN) == []
                assert len(lines(caplog, OUTAGE)) == 1
                assert warnings(caplog) == lines(caplog, OUTAGE)
                since = telegram.cursor()
            except BaseException:
                stop.set()
                await asyncio.wait_for(wasched, 20)
                raise
        try:
            card = await telegram.reply(ADMIN, f"#{schedule.id}", since=since, within=20)
            await telegram.wait_for(lambda: True if telegram.calls_of("getupdates") else None)
            asked = telegram.cursor()
            await telegram.send(ADMIN, "/help")
            await telegram.reply(ADMIN, "wasched", since=asked, within=10)
        finally:
            stop.set()
            await asyncio.wait_for(wasched, 20)

    # The run's card once, showing its latest state at its first send: no flood, no edits.
    assert "👀" in card.text and "read" in card.text
    assert card.edits == 0
    cards = [m for m in telegram.bot_messages(ADMIN) if f"#{schedule.id}" in m.text]
    assert cards == [card]
    sent = [e for e in telegram.events if e.kind == "send" and f"#{schedule.id}" in e.text]
    assert len(sent) == 1
    assert {c["command"] for c in telegram.commands} >= {"schedule", "list"}
    # One line when the outage began, one when Telegram answered; nothing per try.
    assert len(lines(caplog, OUTAGE)) == 1
    assert len(lines(caplog, BACK)) == 1
    assert warnings(caplog) == lines(caplog, OUTAGE)
    assert [r.text for r in sidecar.outbox] == ["due while down"]


@pytest.mark.parametrize("how", ["refused", "502"])
async def test_an_outage_while_polling_is_one_line_and_the_bot_answers_after_it(
    telegram: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    stop = asyncio.Event()
    async with sidecar_for(port) as sidecar:
        settings = settings_for(tmp_path, telegram, sidecar, port)
        wasched = asyncio.create_task(run(settings, stop=stop, backoff=FAST))
        try:
            await eventually(lambda: wasched.done() or telegram.calls_of("getupdates"))
            assert not wasched.done(), wasched.exception()
            async with down_at_start(telegram, how):
                # Many failed polls (counted by the fake, or as the stretch it takes).
                if how == "502":
                    polled = len(telegram.calls_of("getupdates"))
                    await eventually(lambda: len(telegram.calls_of("getupdates")) >= polled + 20)
                else:
                    await asyncio.sleep(1.0)
                # However slow the machine, the outage was seen before Telegram answers again.
                await eventually(lambda: lines(caplog, OUTAGE))
            asked = telegram.cursor()
            await telegram.send(ADMIN, "/help")
            await telegram.reply(ADMIN, "wasched", since=asked, within=10)
        finally:
            stop.set()
            await asyncio.wait_for(wasched, 20)

    assert len(lines(caplog, OUTAGE)) == 1
    assert len(lines(caplog, BACK)) == 1
    assert lines(caplog, "Failed to fetch updates") == []
    assert lines(caplog, "Sleep for") == []
    assert warnings(caplog) == lines(caplog, OUTAGE)
    assert len(telegram.bot_messages(ADMIN)) == 1


async def test_a_token_refused_once_telegram_answers_stops_wasched(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    stop = asyncio.Event()
    async with sidecar_for(port) as sidecar:
        settings = settings_for(tmp_path, telegram, sidecar, port)
        telegram.fail_every(502)
        wasched = asyncio.create_task(run(settings, stop=stop, backoff=FAST))
        try:
            await eventually(lambda: wasched.done() or len(telegram.calls_of("getme")) >= 3)
            assert not wasched.done()
            telegram.token = "123456:REVOKED-token-abcdefghijklmnop"  # revoked meanwhile
            telegram.answer_again()
            with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN was refused"):
                await asyncio.wait_for(asyncio.shield(wasched), 20)
        finally:
            stop.set()
            with contextlib.suppress(ConfigError):
                await asyncio.wait_for(wasched, 20)


# --- replies under 5xx and network errors ------------------------------------------------


@pytest.fixture
async def quick(
    telegram: FakeTelegram,
    store: Store,
    whatsapp: FakeSidecar,
    whatsapp_client: WhatsAppClient,
    clock: FakeClock,
) -> AsyncIterator[Harness]:
    """The harness with a Bot as `wasched run` builds it, retrying within seconds."""
    settings = Settings(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.base_url)
    bot = build_bot(settings, requests=RetryRequests(reply_backoff=FAST, reply_retry_s=20))
    service = Services(store, clock, default_timezone="Europe/Berlin", whatsapp=whatsapp_client)
    notifier = TelegramNotifier(bot, admin_ids={ADMIN, OTHER_ADMIN}, pace_s=0)
    notifier.outbox.backoff = FAST
    access = Access({ADMIN, OTHER_ADMIN}, service.users)
    await access.prepare()
    notifier.set_audience(access.members)
    notifier.remember_in(service.memory)
    dispatcher = build_dispatcher(access)
    try:
        async with notifier.outbox.running(drain_s=2):
            yield Harness(
                telegram, dispatcher, bot, service, notifier, access, whatsapp, store, clock
            )
    finally:
        await bot.session.close()


async def test_a_reply_under_502_pages_arrives_once_telegram_answers(
    quick: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    tg = quick.telegram
    before = errors("server")
    tg.fail_every(502, method="sendMessage")
    asking = asyncio.create_task(quick.say("/help"))
    await tg.wait_for(lambda: True if len(tg.calls_of("sendmessage")) >= 4 else None)
    tg.answer_again()
    await asyncio.wait_for(asking, 10)

    replies = tg.bot_messages(ADMIN)
    assert len(replies) == 1 and "wasched" in replies[0].text
    failed = len(tg.calls_of("sendmessage")) - 1
    assert failed >= 4
    assert errors("server") == before + failed  # /metrics counts each 5xx
    assert warnings(caplog) == []


async def test_a_reply_while_telegram_refuses_connections_arrives_once_it_is_back(
    quick: Harness,
) -> None:
    tg = quick.telegram
    before = errors("network")
    await tg.go_down()
    asking = asyncio.create_task(quick.say("/help"))
    await eventually(lambda: errors("network") >= before + 4)
    await tg.come_back()
    await asyncio.wait_for(asking, 10)
    assert len(tg.bot_messages(ADMIN)) == 1


async def test_a_reply_telegram_never_takes_is_given_up_after_a_bounded_time(
    telegram: FakeTelegram, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # A Bot that retries for at most half a second, else as `wasched run` builds it.
    settings = Settings(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.base_url)
    bot = build_bot(settings, requests=RetryRequests(reply_backoff=FAST, reply_retry_s=0.5))
    harness.bot = bot
    try:
        telegram.fail_every(502, method="sendMessage")
        await telegram.send(ADMIN, "/help")
        with pytest.raises(ClientDecodeError):
            await harness.flush()
    finally:
        await bot.session.close()
    # The reply, then the error handler's apology: each tried for half a second, then given
    # up with one line.
    tries = len(telegram.calls_of("sendmessage"))
    assert 4 <= tries <= 30
    assert telegram.bot_messages(ADMIN) == []
    assert len(lines(caplog, "given up")) == 2


# --- the Outbox through a long outage ------------------------------------------------------


async def fired(harness: Harness) -> tuple[Schedule, Run]:
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients=NUMBER, when="every day at 9:00", text="hi"
    )
    run, _ = await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    return schedule, run


async def report(
    harness: Harness, schedule: Schedule, run: Run, status: DeliveryStatus | None = None
) -> None:
    """Move every delivery of `run` to `status` (when given) and tell the notifier."""
    if status is not None:
        for delivery in await harness.store.list_deliveries(DeliveryFilter(run_id=run.id)):
            fields: dict[str, Any] = {"status": status, f"{status.value}_at": harness.clock.now()}
            await harness.store.update_delivery(delivery.id, **fields)
    deliveries = await harness.store.list_deliveries(DeliveryFilter(run_id=run.id))
    await harness.notifier.run_updated(schedule, run, deliveries)


async def tried_again(kind: str) -> None:
    """Return once Telegram refused one more try (of `kind`)."""
    tried = errors(kind)
    await eventually(lambda: errors(kind) > tried)


def shows_read(text: str, schedule: Schedule) -> bool:
    """The run of `schedule` reads as read: its card does, or its line in a digest."""
    if "runs finished together" not in text:
        return "👀" in text and "read" in text
    [line] = [line for line in text.splitlines() if f"#{schedule.id} " in line]
    return "👀" in line


@pytest.mark.parametrize("how", ["502", "refused"])
async def test_the_outbox_keeps_everything_through_a_long_outage_and_shows_the_latest_state(
    quick: Harness, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO)
    tg, outbox = quick.telegram, quick.notifier.outbox
    runs = [await fired(quick) for _ in range(3)]
    before = errors(kind_of(how))
    if how == "refused":
        await tg.go_down()
    else:
        tg.fail_every(502)
    for schedule, fired_run in runs:
        await report(quick, schedule, fired_run)
    for number in range(5):
        outbox.put(ADMIN, Note(ADMIN, f"note {number}"))
    for status in (DeliveryStatus.sent, DeliveryStatus.delivered, DeliveryStatus.read):
        await tried_again(kind_of(how))
        for schedule, fired_run in runs:
            await report(quick, schedule, fired_run, status)
    # A long outage: many tries, nothing given up, nothing queued twice.
    await eventually(lambda: errors(kind_of(how)) >= before + 30)
    pending = list(outbox.pending(ADMIN))
    assert len({id(item) for item in pending}) == len(pending)
    assert sum(isinstance(item, Note) for item in pending) == 5
    assert len(pending) <= len(runs) + 5
    assert len(lines(caplog, OUTAGE)) == 1
    assert warnings(caplog) == lines(caplog, OUTAGE)

    if how == "refused":
        await tg.come_back()
    else:
        tg.answer_again()
    async with asyncio.timeout(60):  # a bound, not a measure
        await outbox.drained()

    messages = tg.bot_messages(ADMIN)
    for schedule, _ in runs:
        [showing] = [m for m in messages if f"#{schedule.id} " in m.text]
        assert shows_read(showing.text, schedule), showing.text
    notes = [m.text for m in messages if m.text.startswith("note ")]
    assert notes == [f"note {n}" for n in range(5)]
    assert all(m.edits == 0 for m in messages)  # each shown as it is now, at its first send
    assert len([e for e in tg.events if e.kind == "send"]) == len(messages)
    assert len(lines(caplog, OUTAGE)) == 1
    assert len(lines(caplog, BACK)) == 1
    assert warnings(caplog) == lines(caplog, OUTAGE)


async def test_the_outbox_gives_up_what_no_retry_fixes_with_one_line_each(
    quick: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    tg, outbox = quick.telegram, quick.notifier.outbox
    tg.fail_next("sendMessage", code=403, description="Forbidden: bot was blocked by the user")
    tg.fail_next("sendMessage", code=400, description="Bad Request: chat not found")
    for number in range(3):
        outbox.put(ADMIN, Note(ADMIN, f"note {number}"))
    async with asyncio.timeout(60):  # a bound, not a measure
        await outbox.drained()
    assert [m.text for m in tg.bot_messages(ADMIN)] == ["note 2"]
    assert len(tg.calls_of("sendmessage")) == 3  # no retries
    assert len(warnings(caplog)) == 2
    assert lines(caplog, OUTAGE) == []


async def test_a_429_for_one_chat_does_not_hold_the_other_chats(
    quick: Harness,
) -> None:
    tg, outbox = quick.telegram, quick.notifier.outbox
    waits = errors("retry_after")
    tg.fail_next("sendMessage", retry_after=1)
    outbox.put(ADMIN, Note(ADMIN, "to the flooded chat"))
    outbox.put(OTHER_ADMIN, Note(OTHER_ADMIN, "to another chat"))
    async with asyncio.timeout(60):  # a bound, not a measure
        await outbox.drained()
    order = [e.chat_id for e in tg.events if e.kind == "send"]
    assert order == [OTHER_ADMIN, ADMIN]
    assert len(tg.calls_of("sendmessage")) == 3  # refused once, then each sent once
    assert errors("retry_after") == waits + 1
