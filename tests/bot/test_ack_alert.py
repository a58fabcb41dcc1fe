"""Messages WhatsApp took that are not on the recipient's phone: the card says so, the owner
is told once, Check again asks the sidecar, Send again sends a second copy once on request.

Core runs as `wasched run` builds it (open_core, SQLite, the fake sidecar over HTTP that acks
only "sent") with the Telegram notifier and the real dispatcher, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher

from bot import ui
from bot.access import Access
from bot.app import build_dispatcher
from bot.notifier import TelegramNotifier
from core.app import Core, open_core
from core.domain.clock import FakeClock
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, Run, RunTrigger
from tests.bot.conftest import ADMIN, START, feed_updates
from tests.engine.conftest import eventually, settings_for
from tests.engine.test_ack_watch import passed
from tests.fakes.sidecar import FakeSidecar
from tests.fakes.telegram import ChatMessage, FakeTelegram

ANNA = "+4915100000001"
BEN = "+4915100000002"
ALERT = "not on the recipient's phone yet"
MARK = "not on their phone yet"


@dataclass
class World:
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

    async def press(self, message: ChatMessage, button: str) -> str:
        query_id = await self.telegram.press(ADMIN, message, button)
        await self.flush()
        return query_id

    async def press_data(self, message: ChatMessage, data: str) -> str:
        query_id = await self.telegram.press_data(ADMIN, message, data)
        await self.flush()
        return query_id

    async def deliveries(self, run_id: int) -> list[Delivery]:
        return await self.core.store.list_deliveries(DeliveryFilter(run_id=run_id, order="oldest"))

    async def sent_run(self) -> Run:
        run = await self.run_now()

        async def all_sent() -> bool:
            found = await self.deliveries(run.id)
            return len(found) == 2 and all(d.sent_at is not None for d in found)

        await eventually(all_sent, what="both messages sent")
        return run

    async def run_now(self) -> Run:
        await self.core.services.contacts.add_contact("Anna", ANNA)
        schedule = await self.core.services.schedules.create_schedule(
            ADMIN, recipients=f"Anna, {BEN}", when="every day at 9:00", text="Hi!"
        )
        run, _ = await self.core.services.runs.run_now(schedule.owner_id, schedule.id)
        return run

    async def passes(self, count: int) -> None:
        watch = self.core.ack_watch
        await eventually(lambda: watch.passes >= 1, what="the first pass")
        for _ in range(count):
            before = watch.passes
            await self.clock.advance(60)
            await eventually(partial(passed, watch, before), what="a pass")
        await self.notifier.outbox.drained()

    def alerts(self) -> list[ChatMessage]:
        return [m for m in self.telegram.bot_messages(ADMIN) if ALERT in m.text]


@pytest.fixture
def ack_after_s() -> int:
    return 600


@pytest.fixture
def send_gap_s() -> int:
    return 0


@pytest.fixture
async def world(
    telegram: FakeTelegram,
    app_bot: Bot,
    tmp_path: Path,
    clock: FakeClock,
    ack_after_s: int,
    send_gap_s: int,
) -> AsyncIterator[World]:
    sidecar = FakeSidecar(api_key="test-key", ack_up_to=1)
    await sidecar.start()
    notifier = TelegramNotifier(app_bot, admin_ids={ADMIN}, pace_s=0)
    settings = settings_for(
        f"sqlite:///{tmp_path / 'wasched.db'}",
        sidecar,
        ACK_ALERT_AFTER_S=ack_after_s,
        SEND_GAP_MIN_S=send_gap_s,
        SEND_GAP_MAX_S=send_gap_s,
    )
    try:
        async with (
            notifier.outbox.running(drain_s=2),
            open_core(settings, notifier=notifier, clock=clock) as core,
        ):
            sidecar.events_url = f"{core.url}/whatsapp/events"
            access = Access({ADMIN}, core.services.users)
            await access.prepare()
            notifier.set_audience(access.members)
            notifier.remember_in(core.services.memory)
            dispatcher = build_dispatcher(access)
            yield World(telegram, app_bot, dispatcher, core, notifier, access, sidecar, clock)
    finally:
        await sidecar.close()


async def card_of(world: World, run: Run, contains: str) -> ChatMessage:
    return await world.telegram.wait_for(
        lambda: next(
            (
                m
                for m in world.telegram.bot_messages(ADMIN)
                if f"run {run.id} ·" in m.text and contains in m.text
            ),
            None,
        )
    )


@pytest.mark.parametrize("send_gap_s", [120])
async def test_the_card_marks_them_and_the_owner_is_told_once_over_many_passes(
    world: World,
) -> None:
    run = await world.run_now()
    await eventually(lambda: len(world.sidecar.outbox) == 1, what="Anna's message")
    await world.passes(2)  # the send gap: Ben's goes out two minutes after Anna's
    await eventually(lambda: len(world.sidecar.outbox) == 2, what="Ben's message")
    await world.passes(7)
    assert world.alerts() == []
    assert MARK not in (await card_of(world, run, "☑️")).text

    await world.passes(1)  # 10 min after Anna's

    [alert] = world.alerts()
    assert "1 message WhatsApp took is not on the recipient's phone yet" in alert.text
    assert f"Anna ({ANNA}): sent 10 min ago" in alert.text and BEN not in alert.text
    assert "phone is offline or the number is not active" in alert.text
    assert "WhatsApp delivers it when the phone is back" in alert.text
    assert [b["text"] for b in alert.buttons()] == [
        "🔄 Check again",
        "📨 Send again (may arrive twice)",
    ]
    card = await card_of(world, run, MARK)
    assert f"Anna ({ANNA}): sent 10 min ago, not on their phone yet" in card.text
    assert f"☑️ {BEN}: sent 28 Nov" in card.text
    # Ben's passes the threshold two minutes later: his line says so too, nobody is told again.
    await world.passes(2)
    assert f"{BEN}: sent 10 min ago, not on their phone yet" in card.text
    assert f"Anna ({ANNA}): sent 12 min ago, not on their phone yet" in card.text
    # Two hours of passes later: still the one alert, and no other message.
    await world.passes(120)
    assert len(world.alerts()) == 1
    assert len(world.telegram.bot_messages(ADMIN)) == 2


async def test_check_again_asks_the_sidecar_and_the_card_shows_what_it_said(
    world: World,
) -> None:
    run = await world.sent_run()
    await world.passes(10)
    [alert] = world.alerts()
    # Anna's phone came back and she read it; the ack event was lost on the way.
    anna = next(r for r in world.sidecar.outbox if r.to == ANNA)
    anna.ack = 3

    query = await world.press(alert, "Check again")

    answer = await world.telegram.answer(query)
    assert (
        answer["text"] == "Checked 2 messages with WhatsApp: 1 read, 1 still not on their phone."
    )
    statuses = [d.status for d in await world.deliveries(run.id)]
    assert statuses == [DeliveryStatus.read, DeliveryStatus.sent]
    card = await card_of(world, run, "👀")
    assert f"👀 Anna ({ANNA}): read" in card.text
    assert f"{BEN}: sent 10 min ago, not on their phone yet" in card.text
    # Nothing was sent again by checking.
    assert len(world.sidecar.outbox) == 2


async def test_send_again_asks_first_then_sends_one_second_copy_to_those_only(
    world: World,
) -> None:
    run = await world.sent_run()
    [anna, _] = await world.deliveries(run.id)
    assert anna.whatsapp_id is not None
    await world.sidecar.post_event("message.ack", {"id": anna.whatsapp_id, "ack": 2})
    await world.passes(10)
    [alert] = world.alerts()
    assert "1 message WhatsApp took is not on the recipient's phone yet" in alert.text

    since = world.telegram.cursor()
    await world.press(alert, "Send again")
    confirm = await world.telegram.reply(ADMIN, "second copy", since=since)
    assert f"Send a second copy of run {run.id} to 1 recipient ({BEN})?" in confirm.text
    assert "they get the message twice" in confirm.text
    assert len(world.sidecar.outbox) == 2  # asking sends nothing

    query = await world.press(confirm, "Yes, send a second copy")

    copies = [r for r in await world.core.store.list_runs() if r.id != run.id]
    [copy] = copies
    assert copy.trigger is RunTrigger.manual
    assert f"as run {copy.id}" in (await world.telegram.answer(query))["text"]
    await eventually(lambda: len(world.sidecar.outbox) == 3, what="the second copy")
    assert [r.to for r in world.sidecar.outbox] == [ANNA, BEN, BEN]
    assert world.sidecar.outbox[2].idempotency_key != world.sidecar.outbox[1].idempotency_key
    # The confirmation now says what was done, without buttons.
    assert confirm.buttons() == [] and f"as run {copy.id}" in confirm.text
    await card_of(world, copy, BEN)

    # The same confirmation pressed again (a replayed button): said, not done.
    data = str(alert.button("Send again")["callback_data"]).replace(":re:", ":reok:")
    query = await world.press_data(confirm, data)
    assert f"sent again already, as run {copy.id}" in (await world.telegram.answer(query))["text"]
    assert len(await world.core.store.list_runs()) == 2
    assert len(world.sidecar.outbox) == 3


@pytest.mark.parametrize("ack_after_s", [0])
async def test_with_the_setting_at_zero_no_alert_ever(world: World) -> None:
    run = await world.sent_run()
    card = await card_of(world, run, "☑️")
    for _ in range(48):
        await world.clock.advance(1800)
    await world.notifier.outbox.drained()
    assert world.core.ack_watch.passes == 0
    assert world.alerts() == []
    assert MARK not in card.text


def sent_delivery(delivery_id: int, recipient: str, minute: int) -> Delivery:
    return Delivery(
        id=delivery_id,
        run_id=7,
        schedule_id=3,
        owner_id=ADMIN,
        recipient=recipient,
        text="Hi!",
        idempotency_key=f"run7:{recipient}",
        status=DeliveryStatus.sent,
        next_attempt_at=START,
        created_at=START,
        sent_at=START + timedelta(minutes=minute),
    )


def test_a_digest_line_counts_the_messages_not_on_the_phone() -> None:
    run = Run(
        id=7,
        schedule_id=3,
        owner_id=ADMIN,
        scheduled_for=START,
        trigger=RunTrigger.schedule,
        created_at=START,
    )
    deliveries = [sent_delivery(1, ANNA, 0), sent_delivery(2, BEN, 20)]
    now = START + timedelta(minutes=25)
    line = ui.run_summary_line(None, run, deliveries, now=now, ack_after_s=600)
    assert line.endswith("— 1 sent 25 min ago, not on their phone yet")
    assert MARK not in ui.run_summary_line(None, run, deliveries)
