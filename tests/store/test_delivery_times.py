"""Contract: `delivery_times` returns the times of an owner's deliveries sent or failed in a
window, and nothing else of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.adapters.store import DeliveryTimes, Store
from core.domain.models import DeliveryStatus
from tests.store.factories import OWNER, T0, add_deliveries, add_run, add_schedule, minutes

WINDOW_END = T0 + timedelta(days=1)


async def _set(store: Store, delivery_id: int, status: DeliveryStatus, **times: Any) -> None:
    assert await store.update_delivery(delivery_id, status=status, **times) is not None


async def test_delivery_times_are_those_sent_or_failed_in_the_window(store: Store) -> None:
    first = await add_deliveries(store, 6)
    read, delivered, failed, before, after, _queued = (d.id for d in first)
    sent_at = T0 + minutes(1)
    await _set(
        store,
        read,
        DeliveryStatus.read,
        sent_at=sent_at,
        delivered_at=sent_at + minutes(2),
        read_at=sent_at + minutes(30),
    )
    await _set(
        store, delivered, DeliveryStatus.delivered, sent_at=T0, delivered_at=T0 + minutes(5)
    )
    await _set(store, failed, DeliveryStatus.failed, failed_at=WINDOW_END - minutes(1))
    # Just outside the window at either end: `since` counts, `until` does not.
    await _set(store, before, DeliveryStatus.sent, sent_at=T0 - timedelta(milliseconds=1))
    await _set(store, after, DeliveryStatus.sent, sent_at=WINDOW_END)
    times = await store.delivery_times(since=T0, until=WINDOW_END, owner_id=OWNER)
    schedule_id = first[0].schedule_id
    assert times == [
        DeliveryTimes(
            schedule_id,
            DeliveryStatus.read,
            sent_at,
            sent_at + minutes(2),
            sent_at + minutes(30),
            None,
        ),
        DeliveryTimes(schedule_id, DeliveryStatus.delivered, T0, T0 + minutes(5), None, None),
        DeliveryTimes(
            schedule_id, DeliveryStatus.failed, None, None, None, WINDOW_END - minutes(1)
        ),
    ]
    # Aware UTC, as every time the store hands back.
    assert all(t.sent_at is None or t.sent_at.utcoffset() == timedelta(0) for t in times)


async def test_delivery_times_are_the_owners_only(store: Store) -> None:
    mine = await add_deliveries(store, 1)
    theirs_schedule = await add_schedule(store, owner_id=OWNER + 1)
    theirs_run = await add_run(store, theirs_schedule)
    theirs = await add_deliveries(store, 2, run=theirs_run)
    for delivery in (*mine, *theirs):
        await _set(store, delivery.id, DeliveryStatus.sent, sent_at=T0 + minutes(delivery.id))
    mine_times = await store.delivery_times(since=T0, until=WINDOW_END, owner_id=OWNER)
    assert [t.schedule_id for t in mine_times] == [mine[0].schedule_id]
    every = await store.delivery_times(since=T0, until=WINDOW_END)
    assert [t.schedule_id for t in every] == [
        mine[0].schedule_id,
        theirs_schedule.id,
        theirs_schedule.id,
    ]
    assert await store.delivery_times(since=T0, until=WINDOW_END, owner_id=OWNER + 2) == []


async def test_a_failure_is_in_the_window_of_its_failure_not_of_its_send(store: Store) -> None:
    # An error ack fails a message sent the day before: the window of the failure has it.
    (delivery,) = await add_deliveries(store, 1)
    await _set(
        store,
        delivery.id,
        DeliveryStatus.failed,
        sent_at=T0 - timedelta(hours=3),
        failed_at=T0 + timedelta(hours=1),
    )
    (times,) = await store.delivery_times(since=T0, until=WINDOW_END, owner_id=OWNER)
    assert (times.sent_at, times.failed_at) == (
        T0 - timedelta(hours=3),
        T0 + timedelta(hours=1),
    )
    assert await store.delivery_times(since=WINDOW_END, until=WINDOW_END + timedelta(days=1)) == []
