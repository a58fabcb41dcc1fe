"""Contract: deliveries sent without a device ack are found by when they were sent."""

from __future__ import annotations

from core.adapters.store import SentRecord, Store
from core.domain.models import DeliveryStatus
from tests.store.factories import T0, add_deliveries, minutes

LEASE_S = 60.0


async def sent_at(store: Store, minute: float, count: int = 1) -> list[int]:
    """`count` deliveries the sidecar accepted at T0 + `minute` (through the sender's path)."""
    at = T0 + minutes(minute)
    await add_deliveries(store, count, now=at)
    claimed = await store.claim_deliveries(now=at, lease_s=LEASE_S, worker="w", limit=count)
    records = [SentRecord(d.id, f"wa-{d.id}", 1) for d in claimed]
    return await store.record_sent(records, worker="w", now=at)


async def test_sent_ones_up_to_a_bound_are_read_oldest_first(
    store: Store,
) -> None:
    first = await sent_at(store, 0, count=2)
    second = await sent_at(store, 5)
    late = await sent_at(store, 20)
    # Acked by the phone (delivered, read) or failed: not unacked any more.
    acked = await sent_at(store, 1, count=3)
    for delivery_id, status in zip(
        acked, (DeliveryStatus.delivered, DeliveryStatus.read, DeliveryStatus.failed), strict=True
    ):
        await store.update_delivery(
            delivery_id, expected_status=DeliveryStatus.sent, status=status
        )
    # Still queued (never sent): no sent_at at all.
    await add_deliveries(store, 1, now=T0)

    sent = (DeliveryStatus.sent,)
    found = await store.sent_deliveries(statuses=sent, since=T0, until=T0 + minutes(10))
    assert [d.id for d in found] == [*first, *second]
    assert {d.status for d in found} == {DeliveryStatus.sent}
    # Both bounds are inclusive; a page reads on after (sent_at, id) of the last one read.
    window = await store.sent_deliveries(
        statuses=sent, since=T0 + minutes(5), after_id=second[-1], until=T0 + minutes(20)
    )
    assert [d.id for d in window] == late
    limited = await store.sent_deliveries(statuses=sent, since=T0, until=T0 + minutes(30), limit=2)
    assert [d.id for d in limited] == first
    assert await store.sent_deliveries(statuses=sent, since=T0, until=T0 - minutes(1)) == []

    assert await store.count_unacked(sent_before=T0 + minutes(10)) == 3
    assert await store.count_unacked(sent_before=T0 + minutes(30)) == 4
    assert await store.count_unacked(sent_before=T0 - minutes(1)) == 0


async def test_sent_deliveries_pages_on_sent_at_and_id_through_one_crowded_instant(
    store: Store,
) -> None:
    before = await sent_at(store, -1)
    crowded = await sent_at(store, 0, count=7)  # one millisecond, more than a page
    later = await sent_at(store, 3, count=2)
    delivered = await sent_at(store, 4)
    await store.update_delivery(
        delivered[0], expected_status=DeliveryStatus.sent, status=DeliveryStatus.delivered
    )
    read = await sent_at(store, 5)
    await store.update_delivery(
        read[0], expected_status=DeliveryStatus.sent, status=DeliveryStatus.read
    )
    awaiting = (DeliveryStatus.sent, DeliveryStatus.delivered)

    pages: list[list[int]] = []
    since, after_id = T0, None
    while True:
        page = await store.sent_deliveries(
            statuses=awaiting, since=since, after_id=after_id, limit=3
        )
        pages.append([d.id for d in page])
        if len(page) < 3:
            break
        last = page[-1]
        assert last.sent_at is not None
        since, after_id = last.sent_at, last.id
    # Every delivery once, in (sent_at, id) order; the one sent before `since`, the read one
    # and none twice, though seven share one instant and the page holds three.
    assert [i for page in pages for i in page] == [*crowded, *later, *delivered]
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert before[0] not in {i for page in pages for i in page}

    only_sent = await store.sent_deliveries(
        statuses=(DeliveryStatus.sent,), since=T0 + minutes(3), limit=10
    )
    assert [d.id for d in only_sent] == later
    assert await store.sent_deliveries(statuses=(), since=T0) == []
    assert await store.sent_deliveries(statuses=awaiting, since=T0, limit=0) == []
