"""Records the contract tests build over and over, with plausible values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.adapters.store import Store
from core.domain.models import (
    Delivery,
    DeliveryStatus,
    NewDelivery,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OWNER = 1001


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def phone(n: int) -> Recipient:
    return Recipient(kind=RecipientKind.phone, address=f"+4915100000{n:03d}")


async def add_schedule(
    store: Store,
    *,
    next_run_at: datetime | None = T0,
    owner_id: int = OWNER,
    state: ScheduleState = ScheduleState.active,
    text: str = "Hello {name}",
) -> Schedule:
    return await store.add_schedule(
        owner_id=owner_id,
        recipients=[phone(1)],
        rule=Rule(kind=RuleKind.cron, timezone="Europe/Berlin", cron="0 9 * * 1-5"),
        next_run_at=next_run_at,
        text=text,
        state=state,
    )


async def add_run(
    store: Store,
    schedule: Schedule | None = None,
    *,
    scheduled_for: datetime = T0,
    trigger: RunTrigger = RunTrigger.schedule,
) -> Run:
    if schedule is None:
        schedule = await add_schedule(store)
    return await store.insert_run(
        schedule_id=schedule.id,
        owner_id=schedule.owner_id,
        scheduled_for=scheduled_for,
        trigger=trigger,
    )


def new_deliveries(
    run: Run, count: int, *, status: DeliveryStatus = DeliveryStatus.queued
) -> list[NewDelivery]:
    return [
        NewDelivery(
            recipient=phone(n).address,
            recipient_name=f"Person {n}",
            text=f"Hello person {n}",
            idempotency_key=f"run{run.id}:{phone(n).address}",
            status=status,
        )
        for n in range(count)
    ]


async def add_deliveries(
    store: Store,
    count: int,
    *,
    now: datetime = T0,
    status: DeliveryStatus = DeliveryStatus.queued,
    run: Run | None = None,
) -> list[Delivery]:
    if run is None:
        run = await add_run(store, scheduled_for=now)
    return await store.add_deliveries(run, new_deliveries(run, count, status=status), now=now)


async def add_delivery_at(
    store: Store, run: Run, key: str, status: DeliveryStatus, **times: datetime | str
) -> Delivery:
    """One delivery of `run` moved straight to `status` with the given fields (`sent_at`,
    `read_at`, `whatsapp_id`...), as if it had got there: set-up for what counts by time."""
    new = NewDelivery(recipient=phone(1).address, text="Hello", idempotency_key=key)
    (stored,) = await store.add_deliveries(run, [new], now=T0)
    fields: dict[str, Any] = {"status": status, **times}
    updated = await store.update_delivery(stored.id, **fields)
    assert updated is not None
    return updated
