"""The message about a run cut short by a failure spike, and its buttons through the real
dispatcher: Show failures, Resume (once, however often pressed), and another admin's press."""

from __future__ import annotations

from datetime import timedelta

from core.delivery import states
from core.domain.models import (
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    RunTrigger,
    ScheduleState,
)
from core.services import Spike
from tests.bot.conftest import ADMIN, OTHER_ADMIN, Harness

NUMBERS = [f"+4915100000{n:03d}" for n in range(1, 6)]


async def cut_run(harness: Harness) -> tuple[int, int]:
    """A paused schedule of ADMIN's whose run failed three times and holds two: (schedule id,
    run id)."""
    store, now = harness.store, harness.clock.now()
    schedule = await store.add_schedule(
        owner_id=ADMIN,
        recipients=[Recipient(kind=RecipientKind.phone, address=n) for n in NUMBERS],
        rule=Rule(kind=RuleKind.cron, timezone="UTC", cron="0 9 * * *"),
        next_run_at=now + timedelta(days=1),
        text="hi",
        state=ScheduleState.paused,
    )
    run = await store.insert_run(
        schedule_id=schedule.id, owner_id=ADMIN, scheduled_for=now, trigger=RunTrigger.manual
    )
    new = [NewDelivery(recipient=n, text="hi", idempotency_key=f"{run.id}:{n}") for n in NUMBERS]
    stored = await store.add_deliveries(run, new, now=now)
    for delivery in stored[:3]:
        await store.update_delivery(
            delivery.id,
            status=DeliveryStatus.failed,
            error_code="not_on_whatsapp",
            last_error="no account",
        )
    for delivery in stored[3:]:
        change = states.hold_for_spike(delivery, now=now, reason="held")
        assert change is not None and await store.apply(change) is not None
    deliveries = await store.list_deliveries(DeliveryFilter(run_id=run.id, order="oldest"))
    spike = Spike(run.id, 3, 3, 2, "not_on_whatsapp", "no account", 3, True)
    await harness.notifier.schedule_auto_paused(schedule, run, deliveries, spike=spike)
    return schedule.id, run.id


async def statuses(harness: Harness, run_id: int) -> list[DeliveryStatus]:
    found = await harness.store.list_deliveries(DeliveryFilter(run_id=run_id, order="oldest"))
    return [d.status for d in found]


async def test_show_failures_and_resume_once_from_the_spike_message(harness: Harness) -> None:
    schedule_id, run_id = await cut_run(harness)
    alert = await harness.telegram.reply(ADMIN, "sent so far failed", within=5)
    assert "3 of the 3 messages sent so far failed" in alert.text
    assert "Most common reason (3×): this number has no WhatsApp account" in alert.text
    assert sum("sent so far failed" in m.text for m in harness.telegram.bot_messages(ADMIN)) == 1
    card = await harness.telegram.reply(ADMIN, "📨", within=5)
    assert card.text.count("held: the run was stopped after too many failures") == 2
    assert "held until WhatsApp works" not in card.text and "/status" not in card.text

    since = harness.telegram.cursor()
    await harness.press(alert, "Show failures")
    failures = await harness.telegram.reply(ADMIN, "3 failed", since=since, within=5)
    assert failures.text.count("this number has no WhatsApp account") == 3

    since = harness.telegram.cursor()
    await harness.press(alert, "Resume")
    resumed = await harness.telegram.reply(ADMIN, "go out now", since=since, within=5)
    assert "2 held messages" in resumed.text and f"Schedule #{schedule_id} is active" in (
        resumed.text
    )
    assert (
        await statuses(harness, run_id)
        == [DeliveryStatus.failed] * 3 + [DeliveryStatus.queued] * 2
    )

    # Pressed again, by the owner or another admin: nothing more is queued, and it says why.
    again = await harness.press(alert, "Resume")
    answer = await harness.telegram.answer(again)
    assert "resumed already" in answer["text"]
    other = await harness.press(alert, "Resume", user=OTHER_ADMIN)
    assert "no run" in (await harness.telegram.answer(other))["text"].lower()
    sent = [m for m in harness.telegram.bot_messages(ADMIN) if "go out now" in m.text]
    assert len(sent) == 1
