"""Stores and a realistic data set for the deploy tests (migration, metrics, status)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.domain.models import (
    DeliveryStatus,
    Media,
    NewDelivery,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    RunTrigger,
    ScheduleState,
)

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OWNER = 4242


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await SQLiteStore.open(f"sqlite:///{tmp_path / 'source.db'}")
    try:
        yield store
    finally:
        await store.close()


async def fill(store: Store) -> None:
    """Every kind of record, every delivery status, with gaps in the ids (deleted records)."""
    await store.upsert_user(OWNER, timezone="Europe/Berlin", is_owner=True)
    await store.upsert_user(777, timezone=None)
    await store.set_value("owner_code", "used")
    anna = await store.add_contact(
        "Anna", "+4915112345678", whatsapp_id="4915112345678@c.us", fields={"city": "Köln"}
    )
    gone = await store.add_contact("Gone", "+4915100000000")
    await store.add_contact("Ben", "+441632960961")
    await store.delete_contact(gone.id)
    template = await store.add_template("Birthday", "Happy birthday, {first_name}!")
    await store.add_template("Reminder", "Don't forget {date}")
    recipients = [
        Recipient(kind=RecipientKind.contact, address=anna.phone, name="Anna", contact_id=anna.id),
        Recipient(kind=RecipientKind.phone, address="+4915199999999"),
        Recipient(kind=RecipientKind.group, address="120363041234567890@g.us", name="Club"),
    ]
    weekly = await store.add_schedule(
        owner_id=OWNER,
        recipients=recipients,
        rule=Rule(kind=RuleKind.cron, timezone="Europe/Berlin", cron="0 9 * * 1"),
        next_run_at=T0 + timedelta(days=2),
        template_id=template.id,
        misfire_grace_s=600,
    )
    await store.add_schedule(
        owner_id=OWNER,
        recipients=recipients[1:2],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=T0 - timedelta(days=1)),
        next_run_at=None,
        text="Done already",
        state=ScheduleState.done,
        media=Media(mimetype="image/png", filename="a.png", data_base64="iVBORw0KGgo="),
    )
    await store.add_schedule(
        owner_id=777,
        recipients=recipients[1:2],
        rule=Rule(
            kind=RuleKind.interval, timezone="UTC", every_seconds=3600, start=T0 - timedelta(1)
        ),
        next_run_at=T0 + timedelta(hours=1),
        text="Hourly",
        state=ScheduleState.paused,
    )
    run = await store.insert_run(
        schedule_id=weekly.id,
        owner_id=OWNER,
        scheduled_for=T0 - timedelta(days=5),
        trigger=RunTrigger.schedule,
        late_by_s=12.5,
    )
    statuses = list(DeliveryStatus)
    deliveries = await store.add_deliveries(
        run,
        [
            NewDelivery(
                recipient=f"+49151000001{n:02d}",
                recipient_name=f"Person {n}",
                text=f"Hello {n}",
                idempotency_key=f"run{run.id}:{n}",
                status=status,
            )
            for n, status in enumerate(statuses)
        ],
        now=T0 - timedelta(days=5),
    )
    for delivery in deliveries:
        if delivery.status is DeliveryStatus.failed:
            await store.update_delivery(
                delivery.id, attempts=3, last_error="not on WhatsApp", error_code="x"
            )
        if delivery.status is DeliveryStatus.read:
            await store.update_delivery(
                delivery.id,
                whatsapp_id="true_123@c.us_ABC",
                sent_at=T0 - timedelta(days=5),
                delivered_at=T0 - timedelta(days=5, seconds=-3),
                read_at=T0 - timedelta(days=4),
            )
    await store.mark_run_fanned_out(run.id)
    await store.set_run_outcome(run.id, "8 deliveries")
    manual = await store.insert_run(
        schedule_id=weekly.id,
        owner_id=OWNER,
        scheduled_for=T0 - timedelta(days=1),
        trigger=RunTrigger.manual,
    )
    assert manual.fanned_out is False
