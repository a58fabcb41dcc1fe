"""Notifications: one message per run edited in place, failures with Retry, digests, limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiogram import Bot

from bot import ui
from bot.notifier import LINKED_KEY, Item, Note, TelegramNotifier
from core.adapters.counters import TELEGRAM_ERRORS
from core.delivery.sender import Pacing
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, Run, RunTrigger, Schedule
from core.domain.session import SessionFailure
from tests.bot.conftest import ADMIN, OTHER_ADMIN, Harness
from tests.fakes.telegram import FakeTelegram


async def fired(harness: Harness, recipients: str = "+4915123456789") -> tuple[Schedule, Run]:
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients=recipients, when="every day at 9:00", text="hi, it is {weekday}"
    )
    run, _ = await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    return schedule, run


async def deliveries_of(harness: Harness, run: Run) -> list[Delivery]:
    return await harness.store.list_deliveries(DeliveryFilter(run_id=run.id, order="oldest"))


async def move(harness: Harness, run: Run, status: DeliveryStatus, **extra: str) -> None:
    fields: dict[str, Any] = {"status": status, f"{status.value}_at": harness.clock.now()}
    fields.update(extra)
    for delivery in await deliveries_of(harness, run):
        await harness.store.update_delivery(delivery.id, **fields)


async def report(harness: Harness, schedule: Schedule | None, run: Run) -> None:
    await harness.notifier.run_updated(schedule, run, await deliveries_of(harness, run))


async def test_a_run_is_one_message_edited_as_acks_arrive(harness: Harness) -> None:
    schedule, run = await fired(harness)
    tg = harness.telegram
    await report(harness, schedule, run)
    card = await tg.reply(ADMIN, f"#{schedule.id}")
    assert "sent now on request" in card.text and "waiting to be sent" in card.text
    for status, word in (
        (DeliveryStatus.sent, "sent"),
        (DeliveryStatus.delivered, "delivered"),
        (DeliveryStatus.read, "read"),
    ):
        since = tg.cursor()
        await move(harness, run, status)
        await report(harness, schedule, run)
        edited = await tg.reply(ADMIN, word, since=since, kinds=("edit",))
        assert edited.message_id == card.message_id
    assert "👀" in card.text and card.edits == 3
    assert len(tg.bot_messages(ADMIN)) == 1
    # The same state again changes nothing (and Telegram's "not modified" never comes up).
    await report(harness, schedule, run)
    assert card.edits == 3


async def test_waiting_messages_say_when_pacing_or_a_cap_lets_the_next_go(
    harness: Harness,
) -> None:
    """Not the due time: when the sender may send the next one (`Sender.pacing`)."""
    now = harness.clock.now()
    pacing: Pacing | None = Pacing(now + timedelta(seconds=40), 20, 60, None)
    harness.notifier.set_pacing(lambda: pacing)
    schedule, run = await fired(harness, "+4915123456789, +4915123456780")
    zone = schedule.rule.timezone
    tg = harness.telegram

    await report(harness, schedule, run)
    card = await tg.reply(ADMIN, f"#{schedule.id}")
    at = ui.short_time(now + timedelta(seconds=40), zone)
    assert (
        f"⏳ 2 messages wait: one goes every 20–60 s (pacing); the next at about {at}."
        in card.text.splitlines()
    )

    # One went; the hourly cap holds the other (the card is drawn again when a message moves).
    pacing = Pacing(now + timedelta(hours=1), 20, 60, "hourly")
    first = (await deliveries_of(harness, run))[0]
    await harness.store.update_delivery(
        first.id, status=DeliveryStatus.sent, sent_at=harness.clock.now()
    )
    since = tg.cursor()
    await report(harness, schedule, run)
    edited = await tg.reply(ADMIN, "cap", since=since, kinds=("edit",))
    at = ui.short_time(now + timedelta(hours=1), zone)
    assert (
        f"⏳ 1 message waits: the hourly cap (SEND_HOURLY_CAP) is reached; the next goes at {at}."
        in edited.text.splitlines()
    )

    await move(harness, run, DeliveryStatus.sent)
    since = tg.cursor()
    await report(harness, schedule, run)
    edited = await tg.reply(ADMIN, "Times in", since=since, kinds=("edit",))
    assert "wait:" not in edited.text  # none waits any more

    pacing = None  # nothing paces sends (no gap, no cap reached): no line either
    other, later = await fired(harness)
    await report(harness, other, later)
    assert "wait:" not in (await tg.reply(ADMIN, f"#{other.id}", since=0)).text


async def test_a_failure_names_the_reason_and_retry_queues_it_again(harness: Harness) -> None:
    schedule, run = await fired(harness)
    await move(harness, run, DeliveryStatus.failed, error_code="not_on_whatsapp")
    await report(harness, schedule, run)
    card = await harness.telegram.reply(ADMIN, "failed")
    assert "this number has no WhatsApp account" in card.text
    query = await harness.press(card, "Retry")
    assert "again" in (await harness.telegram.answer(query))["text"]
    [delivery] = await deliveries_of(harness, run)
    assert delivery.status is DeliveryStatus.queued
    # Pressing it again, when nothing failed any more, is refused in words.
    query = await harness.press(card, "Retry")
    assert "Nothing to retry" in (await harness.telegram.answer(query))["text"]


async def test_retry_of_someone_elses_run_is_refused(harness: Harness) -> None:
    schedule, run = await fired(harness)
    await move(harness, run, DeliveryStatus.failed, error_code="send_failed")
    await report(harness, schedule, run)
    card = await harness.telegram.reply(ADMIN, "failed")
    query = await harness.telegram.press(OTHER_ADMIN, card, "Retry")
    await harness.flush()
    assert f"There is no run #{run.id}" in (await harness.telegram.answer(query))["text"]
    [delivery] = await deliveries_of(harness, run)
    assert delivery.status is DeliveryStatus.failed


async def test_catch_up_and_missed_runs_say_so(harness: Harness) -> None:
    schedule, run = await fired(harness)
    late = run.model_copy(
        update={"trigger": RunTrigger.catch_up, "late_by_s": 600.0, "id": run.id}
    )
    await harness.notifier.run_updated(schedule, late, await deliveries_of(harness, run))
    card = await harness.telegram.reply(ADMIN, "sent late")
    assert "10 min late" in card.text and "catch-up" in card.text
    missed = run.model_copy(
        update={"scheduled_for": run.scheduled_for - timedelta(hours=3), "id": run.id + 1}
    )
    await harness.notifier.run_missed(schedule, missed, 3 * 3600.0)
    note = await harness.telegram.reply(ADMIN, "missed")
    assert "Nothing was sent" in note.text and f"/runnow {schedule.id}" in note.text


async def test_a_run_with_hundreds_of_recipients_fits_one_message(harness: Harness) -> None:
    numbers = ", ".join(f"+4915100{i:05d}" for i in range(300))
    schedule, run = await fired(harness, numbers)
    await report(harness, schedule, run)
    card = await harness.telegram.reply(ADMIN, f"#{schedule.id}")
    assert "more recipients" in card.text and len(card.text) <= 4096


async def test_many_runs_at_once_become_a_digest(telegram: FakeTelegram, harness: Harness) -> None:
    paced = TelegramNotifier(harness.bot, admin_ids={ADMIN}, pace_s=1.0)
    states = [await fired(harness) for _ in range(6)]
    async with paced.outbox.running():
        for schedule, run in states:
            await paced.run_updated(schedule, run, await deliveries_of(harness, run))
        digest = await telegram.reply(ADMIN, "5 runs finished together")
    messages = telegram.bot_messages(ADMIN)
    assert len(messages) == 2
    for schedule, _ in states[1:]:
        assert f"#{schedule.id}" in digest.text


async def test_flood_control_waits_and_then_sends(
    telegram: FakeTelegram, harness: Harness
) -> None:
    schedule, run = await fired(harness)
    waits_before = TELEGRAM_ERRORS.labels(kind="retry_after")._value.get()
    telegram.fail_next("sendMessage", retry_after=1)
    await report(harness, schedule, run)
    card = await telegram.reply(ADMIN, f"#{schedule.id}", within=5)
    assert card
    assert len(telegram.calls_of("sendmessage")) == 2  # refused once, then sent
    # /metrics counts the refusal (wasched_telegram_send_errors_total{kind="retry_after"}).
    assert TELEGRAM_ERRORS.labels(kind="retry_after")._value.get() == waits_before + 1


async def test_server_errors_are_retried_not_dropped(telegram: FakeTelegram, bot: Bot) -> None:
    notifier = TelegramNotifier(bot, admin_ids={ADMIN}, pace_s=0)
    telegram.fail_next("sendMessage", code=500, count=1)
    async with notifier.outbox.running():
        await notifier.session_changed("SCAN_QR_CODE", None)
        alert = await telegram.reply(ADMIN, "not linked", within=8)
    assert alert


async def test_disconnect_is_one_alert_and_recovery_one_message(harness: Harness) -> None:
    tg = harness.telegram
    notifier = harness.notifier
    await notifier.session_changed("WORKING", None)
    # Not linked all along (starting in between is no news).
    for state in ("SCAN_QR_CODE", "SCAN_QR_CODE", "STARTING", "SCAN_QR_CODE"):
        await notifier.session_changed(state, None)
    await tg.reply(ADMIN, "not linked")
    await tg.reply(OTHER_ADMIN, "not linked")
    await notifier.session_changed("WORKING", {"id": "4915199999999@c.us", "name": "Me"})
    back = await tg.reply(ADMIN, "working again")
    assert "+4915199999999" in back.text
    await notifier.session_changed("WORKING", None)
    await harness.say("/help")  # let the outbox catch up
    await tg.reply(ADMIN, "/status")
    for chat in (ADMIN, OTHER_ADMIN):
        texts = [m.text for m in tg.bot_messages(chat)]
        assert sum("⚠️" in t for t in texts) == 1
        assert sum("working again" in t for t in texts) == 1


async def test_a_new_reason_while_down_is_one_more_alert_a_repeat_none(
    harness: Harness,
) -> None:
    tg = harness.telegram
    notifier = harness.notifier
    unreachable = SessionFailure("whatsapp_web_unreachable", "net::ERR_NAME_NOT_RESOLVED")
    crashed = SessionFailure("chromium_failed", "Failed to launch the browser process!")
    await notifier.session_changed("WORKING", None)
    await notifier.session_changed("SCAN_QR_CODE", None, None)
    for _ in range(10):
        await notifier.session_changed("STARTING", None, unreachable)
        await notifier.session_changed("FAILED", None, unreachable)
    await notifier.session_changed("FAILED", None, crashed)
    await notifier.session_changed("FAILED", None, unreachable)  # seen in this outage
    await notifier.session_changed("WORKING", None, None)
    await tg.reply(OTHER_ADMIN, "working again")
    await harness.notifier.outbox.drained()
    for chat in (ADMIN, OTHER_ADMIN):
        alerts = [m.text for m in tg.bot_messages(chat) if m.text.startswith("⚠️")]
        assert len(alerts) == 3, alerts
        assert "not linked" in alerts[0] and "Send /link" in alerts[0]
        assert "another reason: This server cannot reach WhatsApp Web" in alerts[1]
        assert "/link" not in alerts[1] and "/link" not in alerts[2]
        assert "another reason: Chromium" in alerts[2]
        assert sum("working again" in m.text for m in tg.bot_messages(chat)) == 1


async def test_working_at_start_up_says_nothing(harness: Harness) -> None:
    await harness.notifier.session_changed("WORKING", None)
    await harness.ask("/help", "wasched")
    assert len(harness.telegram.bot_messages(ADMIN)) == 1


async def test_the_first_link_of_a_new_wasched_says_so_not_working_again(
    harness: Harness,
) -> None:
    notifier = harness.notifier
    await notifier.session_changed("SCAN_QR_CODE", None)
    await notifier.session_changed("WORKING", None)
    linked = await harness.telegram.reply(ADMIN, "✅")
    assert linked.text == "✅ WhatsApp is linked. Scheduled messages go out from now on."
    assert await harness.store.get_value(LINKED_KEY) == "1"


async def test_a_wasched_that_sent_before_the_linked_key_existed_recovers_as_working_again(
    harness: Harness,
) -> None:
    # Linked and sending before this version: no key in the store, but a message went out.
    _, run = await fired(harness)
    await move(harness, run, DeliveryStatus.sent)
    assert await harness.store.get_value(LINKED_KEY) is None
    notifier = harness.notifier
    await notifier.session_changed("SCAN_QR_CODE", None)
    await notifier.session_changed("WORKING", None)
    back = await harness.telegram.reply(ADMIN, "✅")
    assert back.text == "✅ WhatsApp is working again. Held messages are going out now."
    assert await harness.store.get_value(LINKED_KEY) == "1"  # asked once, then remembered


async def test_working_heard_before_the_store_is_known_is_stored_once_it_is(
    harness: Harness,
) -> None:
    notifier = TelegramNotifier(harness.bot, admin_ids={ADMIN}, pace_s=0)
    async with notifier.outbox.running():
        await notifier.session_changed("WORKING", None)  # between open_core and remember_in
        notifier.remember_in(harness.store)
        await notifier.drain()
    assert await harness.store.get_value(LINKED_KEY) == "1"


async def test_one_broken_message_does_not_stop_the_ones_after_it(
    telegram: FakeTelegram, bot: Bot
) -> None:
    class Broken(Item):
        async def deliver(self, bot: Bot) -> None:
            raise RuntimeError("a bug")

    notifier = TelegramNotifier(bot, admin_ids={ADMIN}, pace_s=0)
    async with notifier.outbox.running():
        notifier.outbox.put(ADMIN, Broken())
        notifier.outbox.put(ADMIN, Note(ADMIN, "still here"))
        assert await telegram.reply(ADMIN, "still here")


async def test_after_a_restart_the_same_run_message_is_edited(
    telegram: FakeTelegram, harness: Harness
) -> None:
    schedule, run = await fired(harness)
    await report(harness, schedule, run)
    card = await telegram.reply(ADMIN, f"#{schedule.id}")

    restarted = TelegramNotifier(harness.bot, admin_ids={ADMIN}, pace_s=0)
    restarted.remember_in(harness.store)
    async with restarted.outbox.running():
        await move(harness, run, DeliveryStatus.delivered)
        await restarted.run_updated(schedule, run, await deliveries_of(harness, run))
        edited = await telegram.reply(ADMIN, "delivered", kinds=("edit",))
    assert edited.message_id == card.message_id
    assert len(telegram.bot_messages(ADMIN)) == 1


async def test_a_settled_run_is_forgotten(harness: Harness) -> None:
    schedule, run = await fired(harness)
    await report(harness, schedule, run)
    await harness.telegram.reply(ADMIN, f"#{schedule.id}")
    key = f"telegram.run_message.{run.id}"
    async with asyncio.timeout(5):
        await harness.notifier.outbox.drained()  # the key is written just after the send
    assert await harness.store.get_value(key)
    await move(harness, run, DeliveryStatus.read)
    await report(harness, schedule, run)
    assert await harness.store.get_value(key) is None


async def test_a_held_run_says_why_it_waits_as_the_sender_recorded_it(harness: Harness) -> None:
    schedule, run = await fired(harness)
    reason = (
        "This server cannot reach WhatsApp Web (no internet connection or no DNS). "
        "It goes out once WhatsApp works again."
    )
    await move(harness, run, DeliveryStatus.held, last_error=reason, error_code="not_ready")
    await report(harness, schedule, run)
    card = await harness.telegram.reply(ADMIN, "held")
    assert f"{reason} /status says more." in card.text
    assert "/link" not in card.text and "not linked" not in card.text
