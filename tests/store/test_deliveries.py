"""Contract: deliveries are stored once per key, claimed by one worker at a time, and listed."""

from __future__ import annotations

import asyncio

import pytest

from core.adapters.store import SentRecord, Store
from core.delivery import states
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, NewDelivery
from tests.store.conftest import FERRETDB_NOT_ATOMIC, backend_of, expect_ferretdb_gap
from tests.store.factories import (
    OWNER,
    T0,
    add_deliveries,
    add_run,
    add_schedule,
    minutes,
    new_deliveries,
)

LEASE_S = 60.0


async def test_add_deliveries_stores_each_with_its_status_time(store: Store) -> None:
    run = await add_run(store)
    new = new_deliveries(run, 2)
    new.append(new[0].model_copy(update={"idempotency_key": "held-1", "status": "held"}))
    stored = await store.add_deliveries(run, new, now=T0)
    assert [d.idempotency_key for d in stored] == [n.idempotency_key for n in new]
    assert len({d.id for d in stored}) == 3
    first = stored[0]
    assert (first.run_id, first.schedule_id, first.owner_id) == (run.id, run.schedule_id, OWNER)
    assert (first.recipient, first.recipient_name, first.text) == (
        new[0].recipient,
        "Person 0",
        "Hello person 0",
    )
    assert (first.status, first.attempts, first.next_attempt_at, first.created_at) == (
        DeliveryStatus.queued,
        0,
        T0,
        T0,
    )
    assert (first.queued_at, first.held_at, first.lease_owner) == (T0, None, None)
    held = stored[2]
    assert (held.status, held.held_at, held.queued_at) == (DeliveryStatus.held, T0, None)
    for delivery in stored:
        assert await store.get_delivery(delivery.id) == delivery
    assert await store.get_delivery(stored[-1].id + 100) is None


async def test_add_deliveries_is_idempotent_by_key(store: Store) -> None:
    run = await add_run(store)
    first = await store.add_deliveries(run, new_deliveries(run, 2), now=T0)
    await store.update_delivery(first[0].id, status=DeliveryStatus.sent, whatsapp_id="wa-1")
    again = await store.add_deliveries(run, new_deliveries(run, 3), now=T0 + minutes(5))
    assert [d.id for d in again[:2]] == [d.id for d in first]
    # The existing record is returned as it is now, untouched by the second insert.
    assert (again[0].status, again[0].whatsapp_id) == (DeliveryStatus.sent, "wa-1")
    assert again[2].id not in {d.id for d in first}
    assert again[2].created_at == T0 + minutes(5)
    assert len(await store.list_deliveries(DeliveryFilter(run_id=run.id))) == 3
    assert await store.add_deliveries(run, [], now=T0) == []


async def test_add_deliveries_with_a_repeated_key_in_one_batch_stores_it_once(
    store: Store,
) -> None:
    run = await add_run(store)
    one = NewDelivery(recipient="+491510000001", text="Hi", idempotency_key="k1")
    stored = await store.add_deliveries(run, [one, one], now=T0)
    assert stored[0] == stored[1]
    assert len(await store.list_deliveries(DeliveryFilter(run_id=run.id))) == 1


async def test_a_key_repeated_in_one_batch_keeps_the_first_given_on_every_store(
    store: Store,
) -> None:
    run = await add_run(store)
    first = NewDelivery(recipient="+491510000001", text="first", idempotency_key="k1")
    later = NewDelivery(
        recipient="+491510000002", text="later", idempotency_key="k1", status=DeliveryStatus.held
    )
    stored = await store.add_deliveries(run, [first, later], now=T0)
    assert [(d.recipient, d.text, d.status) for d in stored] == 2 * [
        ("+491510000001", "first", DeliveryStatus.queued)
    ]
    assert await store.list_deliveries(DeliveryFilter(run_id=run.id)) == stored[:1]


async def test_claim_takes_the_oldest_due_delivery_with_a_lease(store: Store) -> None:
    later = await add_deliveries(store, 1, now=T0 - minutes(1))
    earlier = await add_deliveries(store, 2, now=T0 - minutes(5))
    claimed = await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    assert claimed is not None
    assert claimed.id == earlier[0].id
    assert (claimed.status, claimed.lease_owner) == (DeliveryStatus.sending, "w1")
    assert (claimed.lease_until, claimed.sending_at) == (T0 + minutes(1), T0)
    assert claimed.attempts == 0
    assert await store.get_delivery(claimed.id) == claimed
    order = [await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1") for _ in range(3)]
    assert [d.id if d else None for d in order] == [earlier[1].id, later[0].id, None]


async def test_two_claims_never_return_the_same_delivery(
    store: Store, request: pytest.FixtureRequest
) -> None:
    expect_ferretdb_gap(request, backend_of(request), FERRETDB_NOT_ATOMIC)
    await add_deliveries(store, 10, now=T0)
    claims = await asyncio.gather(
        *(store.claim_delivery(now=T0, lease_s=LEASE_S, worker=f"w{n}") for n in range(25))
    )
    ids = [d.id for d in claims if d is not None]
    assert len(ids) == 10
    assert len(set(ids)) == 10


async def test_held_future_and_final_deliveries_are_not_claimed(store: Store) -> None:
    await add_deliveries(store, 1, now=T0, status=DeliveryStatus.held)
    await add_deliveries(store, 1, now=T0 + minutes(1))
    for status in (DeliveryStatus.sent, DeliveryStatus.failed, DeliveryStatus.missed):
        await add_deliveries(store, 1, now=T0, status=status)
    assert await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1") is None
    assert await store.claim_delivery(now=T0 + minutes(1), lease_s=LEASE_S, worker="w1")


async def test_a_running_lease_is_not_claimed_but_an_ended_one_is(store: Store) -> None:
    [delivery] = await add_deliveries(store, 1, now=T0)
    assert await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="crashed")
    assert await store.claim_delivery(now=T0 + minutes(0.5), lease_s=LEASE_S, worker="w2") is None
    taken = await store.claim_delivery(now=T0 + minutes(1), lease_s=LEASE_S, worker="w2")
    assert taken is not None and taken.id == delivery.id
    assert (taken.lease_owner, taken.lease_until) == ("w2", T0 + minutes(2))
    # The crashed worker can no longer write to it.
    assert await store.update_delivery(delivery.id, worker="crashed", status="sent") is None


async def test_claim_deliveries_takes_the_oldest_due_ones_with_a_lease(store: Store) -> None:
    later = await add_deliveries(store, 2, now=T0 - minutes(1))
    earlier = await add_deliveries(store, 2, now=T0 - minutes(5))
    await add_deliveries(store, 1, now=T0 + minutes(1))  # not due yet
    claimed = await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w1", limit=3)
    assert [d.id for d in claimed] == [earlier[0].id, earlier[1].id, later[0].id]
    for delivery in claimed:
        assert (delivery.status, delivery.lease_owner) == (DeliveryStatus.sending, "w1")
        assert (delivery.lease_until, delivery.sending_at, delivery.attempts) == (
            T0 + minutes(1),
            T0,
            0,
        )
        assert await store.get_delivery(delivery.id) == delivery
    rest = await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w1", limit=10)
    assert [d.id for d in rest] == [later[1].id]
    assert await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w1", limit=10) == []
    assert await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w1", limit=0) == []


async def test_claim_deliveries_takes_ended_leases_first_and_spares_running_ones(
    store: Store,
) -> None:
    [crashed, running] = await add_deliveries(store, 2, now=T0 - minutes(5))
    assert await store.claim_delivery(now=T0 - minutes(5), lease_s=LEASE_S, worker="crashed")
    assert await store.claim_delivery(now=T0 - minutes(5), lease_s=3600, worker="alive")
    queued = await add_deliveries(store, 2, now=T0 - minutes(10))
    claimed = await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w2", limit=2)
    # The ended lease comes first although both queued ones are older; the running one stays.
    assert {d.id for d in claimed} == {crashed.id, queued[0].id}
    assert running.id not in {d.id for d in claimed}
    taken = await store.get_delivery(crashed.id)
    assert taken is not None and (taken.lease_owner, taken.lease_until) == ("w2", T0 + minutes(1))
    # The crashed worker can no longer write to it.
    assert await store.update_delivery(crashed.id, worker="crashed", status="sent") is None


async def test_batched_claims_never_return_the_same_delivery(
    store: Store, request: pytest.FixtureRequest
) -> None:
    expect_ferretdb_gap(request, backend_of(request), FERRETDB_NOT_ATOMIC)
    await add_deliveries(store, 30, now=T0)
    claims = await asyncio.gather(
        *(
            store.claim_deliveries(now=T0, lease_s=LEASE_S, worker=f"w{n}", limit=4)
            for n in range(12)
        ),
        *(store.claim_delivery(now=T0, lease_s=LEASE_S, worker=f"one{n}") for n in range(5)),
    )
    ids: list[int] = []
    for claim in claims:
        if isinstance(claim, list):
            ids.extend(d.id for d in claim)
        elif claim is not None:
            ids.append(claim.id)
    assert len(ids) == 30
    assert len(set(ids)) == 30


async def test_record_sent_moves_only_deliveries_still_leased_by_the_worker(
    store: Store,
) -> None:
    deliveries = await add_deliveries(store, 4, now=T0)
    [mine, other, _] = await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w1", limit=3)
    # Another worker took `other` over after the lease ended (same key, it records it).
    await store.update_delivery(other.id, worker="w1", lease_owner="w2")
    never_claimed = deliveries[3]
    moved = await store.record_sent(
        [
            SentRecord(mine.id, "wa-mine", 1),
            SentRecord(other.id, "wa-other", 1),
            SentRecord(never_claimed.id, "wa-never", 1),
        ],
        worker="w1",
        now=T0 + minutes(1),
    )
    assert moved == [mine.id]
    sent = await store.get_delivery(mine.id)
    assert sent is not None
    assert (sent.status, sent.whatsapp_id, sent.attempts, sent.sent_at) == (
        DeliveryStatus.sent,
        "wa-mine",
        1,
        T0 + minutes(1),
    )
    assert (sent.lease_owner, sent.lease_until, sent.last_error, sent.error_code) == (
        None,
        None,
        None,
        None,
    )
    untouched = await store.get_delivery(other.id)
    assert untouched is not None
    assert (untouched.status, untouched.lease_owner, untouched.whatsapp_id) == (
        DeliveryStatus.sending,
        "w2",
        None,
    )
    queued = await store.get_delivery(never_claimed.id)
    assert queued is not None and queued.status is DeliveryStatus.queued
    # Recorded once; a second record of the same send changes nothing.
    assert await store.record_sent([SentRecord(mine.id, "wa-x", 2)], worker="w1", now=T0) == []
    assert await store.get_delivery(mine.id) == sent
    assert await store.record_sent([], worker="w1", now=T0) == []


async def test_record_sent_does_not_report_a_record_made_already_as_moved_again(
    store: Store,
) -> None:
    await add_deliveries(store, 2, now=T0)
    [one, two] = await store.claim_deliveries(now=T0, lease_s=LEASE_S, worker="w1", limit=2)
    same = SentRecord(one.id, "wa-one", 1)
    assert await store.record_sent([same], worker="w1", now=T0) == [one.id]
    sent = await store.get_delivery(one.id)
    # The very same record again, at the same instant, beside one that does move.
    moved = await store.record_sent([same, SentRecord(two.id, "wa-two", 1)], worker="w1", now=T0)
    assert moved == [two.id]
    assert await store.get_delivery(one.id) == sent


async def test_update_delivery_holds_only_under_its_conditions(store: Store) -> None:
    [delivery] = await add_deliveries(store, 1, now=T0)
    claimed = await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    assert claimed is not None

    assert (
        await store.update_delivery(
            delivery.id, expected_status=DeliveryStatus.queued, status=DeliveryStatus.sent
        )
        is None
    )
    assert await store.update_delivery(delivery.id, worker="w2", attempts=1) is None
    sent = await store.update_delivery(
        delivery.id,
        expected_status=[DeliveryStatus.queued, DeliveryStatus.sending],
        worker="w1",
        status=DeliveryStatus.sent,
        attempts=1,
        whatsapp_id="true_491510000000@c.us_ABC",
        sent_at=T0 + minutes(1),
        lease_owner=None,
        lease_until=None,
    )
    assert sent is not None
    assert (sent.status, sent.attempts, sent.sent_at, sent.lease_owner, sent.lease_until) == (
        DeliveryStatus.sent,
        1,
        T0 + minutes(1),
        None,
        None,
    )
    assert await store.get_delivery(delivery.id) == sent
    # No fields: the condition is checked and the delivery returned as it is.
    assert await store.update_delivery(delivery.id, expected_status=DeliveryStatus.sent) == sent
    assert await store.update_delivery(delivery.id, expected_status=DeliveryStatus.queued) is None
    assert await store.update_delivery(delivery.id + 100, attempts=2) is None
    with pytest.raises(TypeError):
        await store.update_delivery(delivery.id, colour="blue")


async def test_update_delivery_may_queue_a_retry_for_later(store: Store) -> None:
    [delivery] = await add_deliveries(store, 1, now=T0)
    await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    retry = await store.update_delivery(
        delivery.id,
        worker="w1",
        status="queued",
        attempts=1,
        last_error="sidecar down",
        error_code="unavailable",
        next_attempt_at=T0 + minutes(2),
        lease_owner=None,
        lease_until=None,
    )
    assert retry is not None and retry.status is DeliveryStatus.queued
    assert (retry.last_error, retry.error_code) == ("sidecar down", "unavailable")
    assert await store.claim_delivery(now=T0 + minutes(1), lease_s=LEASE_S, worker="w1") is None
    again = await store.claim_delivery(now=T0 + minutes(2), lease_s=LEASE_S, worker="w1")
    assert again is not None and again.id == delivery.id


async def test_find_delivery_by_whatsapp_id(store: Store) -> None:
    [a, b] = await add_deliveries(store, 2, now=T0)
    await store.update_delivery(b.id, whatsapp_id="wa-b")
    found = await store.find_delivery_by_whatsapp_id("wa-b")
    assert found is not None and found.id == b.id
    assert await store.find_delivery_by_whatsapp_id("wa-a") is None
    assert a.whatsapp_id is None


async def test_release_held_queues_held_deliveries_due_now(store: Store) -> None:
    held = await add_deliveries(store, 3, now=T0, status=DeliveryStatus.held)
    [queued] = await add_deliveries(store, 1, now=T0)
    assert await store.claim_delivery(now=T0, lease_s=3600, worker="w1")
    assert await store.claim_delivery(now=T0 + minutes(5), lease_s=LEASE_S, worker="w1") is None

    assert await store.release_held(now=T0 + minutes(10)) == 3
    assert await store.release_held(now=T0 + minutes(10)) == 0
    released = await store.get_delivery(held[0].id)
    assert released is not None
    assert (released.status, released.next_attempt_at, released.queued_at) == (
        DeliveryStatus.queued,
        T0 + minutes(10),
        T0 + minutes(10),
    )
    assert released.held_at == T0
    claimed = await store.claim_delivery(now=T0 + minutes(10), lease_s=LEASE_S, worker="w1")
    assert claimed is not None and claimed.id in {d.id for d in held}
    assert queued.id not in {d.id for d in held}


async def test_list_deliveries_filters_and_orders(store: Store) -> None:
    first_schedule = await add_schedule(store, owner_id=1)
    other_owner = await add_schedule(store, owner_id=2)
    run_a = await add_run(store, first_schedule, scheduled_for=T0)
    run_b = await add_run(store, first_schedule, scheduled_for=T0 + minutes(10))
    run_c = await add_run(store, other_owner, scheduled_for=T0 + minutes(20))
    a = await add_deliveries(store, 2, now=T0, run=run_a)
    b = await add_deliveries(store, 2, now=T0 + minutes(10), run=run_b)
    c = await add_deliveries(store, 1, now=T0 + minutes(20), run=run_c)
    await store.update_delivery(b[0].id, status=DeliveryStatus.failed)
    everything = [d.id for d in (*a, *b, *c)]

    def ids(found: list[Delivery]) -> list[int]:
        return [d.id for d in found]

    assert ids(await store.list_deliveries(DeliveryFilter())) == everything[::-1]
    assert ids(await store.list_deliveries(DeliveryFilter(order="oldest"))) == everything
    assert ids(await store.list_deliveries(DeliveryFilter(run_id=run_a.id))) == [a[1].id, a[0].id]
    by_schedule = await store.list_deliveries(
        DeliveryFilter(schedule_id=first_schedule.id, order="oldest")
    )
    assert ids(by_schedule) == [d.id for d in (*a, *b)]
    assert ids(await store.list_deliveries(DeliveryFilter(owner_id=2))) == [c[0].id]
    failed = await store.list_deliveries(
        DeliveryFilter(statuses=(DeliveryStatus.failed, DeliveryStatus.sent))
    )
    assert ids(failed) == [b[0].id]
    window = await store.list_deliveries(
        DeliveryFilter(since=T0 + minutes(10), until=T0 + minutes(20), order="oldest")
    )
    assert ids(window) == [b[0].id, b[1].id]
    assert ids(await store.list_deliveries(DeliveryFilter(since=T0 + minutes(20)))) == [c[0].id]
    assert ids(await store.list_deliveries(DeliveryFilter(until=T0 + minutes(1)))) == ids(
        await store.list_deliveries(DeliveryFilter(run_id=run_a.id))
    )
    latest_two = await store.list_deliveries(DeliveryFilter(limit=2))
    assert ids(latest_two) == [c[0].id, b[1].id]
    combined = await store.list_deliveries(
        DeliveryFilter(owner_id=1, statuses=(DeliveryStatus.queued,), limit=1, order="oldest")
    )
    assert ids(combined) == [a[0].id]
    assert await store.list_deliveries(DeliveryFilter(statuses=())) == []


async def test_count_deliveries_counts_every_status(store: Store) -> None:
    assert await store.count_deliveries() == {status: 0 for status in DeliveryStatus}
    await add_deliveries(store, 2, now=T0)
    await add_deliveries(store, 1, now=T0, status=DeliveryStatus.held)
    await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    counts = await store.count_deliveries()
    assert (counts[DeliveryStatus.queued], counts[DeliveryStatus.sending]) == (1, 1)
    assert (counts[DeliveryStatus.held], counts[DeliveryStatus.sent]) == (1, 0)
    assert sum(counts.values()) == 3


async def test_next_delivery_due_at_sees_queued_and_leased(store: Store) -> None:
    assert await store.next_delivery_due_at() is None
    await add_deliveries(store, 1, now=T0, status=DeliveryStatus.held)
    assert await store.next_delivery_due_at() is None
    await add_deliveries(store, 1, now=T0 + minutes(5))
    assert await store.next_delivery_due_at() == T0 + minutes(5)
    await add_deliveries(store, 1, now=T0)
    assert await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    # The lease of the claimed one ends at T0 + 1 min, before the queued one is due.
    assert await store.next_delivery_due_at() == T0 + minutes(1)


async def test_list_deliveries_with_a_limit_of_zero_or_less_returns_nothing(store: Store) -> None:
    await add_deliveries(store, 2, now=T0)
    assert await store.list_deliveries(DeliveryFilter(limit=0)) == []
    assert await store.list_deliveries(DeliveryFilter(limit=-1)) == []


async def test_apply_writes_a_change_while_its_status_and_worker_hold(store: Store) -> None:
    (delivery,) = await add_deliveries(store, 1, now=T0 - minutes(1))
    claimed = await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    assert claimed is not None and claimed.id == delivery.id
    reason = "WhatsApp is not linked."
    held = await store.apply(
        states.hold(claimed, worker="w1", now=T0 + minutes(1), reason=reason, code="not_ready")
    )
    assert held is not None
    assert (held.status, held.held_at, held.last_error, held.error_code) == (
        DeliveryStatus.held,
        T0 + minutes(1),
        reason,
        "not_ready",
    )
    assert (held.lease_owner, held.lease_until, held.attempts) == (None, None, 0)
    # Fields the change does not write are left as they were.
    assert (held.sending_at, held.next_attempt_at) == (claimed.sending_at, claimed.next_attempt_at)
    assert await store.get_delivery(delivery.id) == held


async def test_apply_refuses_a_change_when_the_status_moved_on(store: Store) -> None:
    (delivery,) = await add_deliveries(store, 1, now=T0 - minutes(1))
    claimed = await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    assert claimed is not None
    released = await store.apply(states.release(claimed, worker="w1"))
    assert released is not None and released.status is DeliveryStatus.queued
    # Another change built from the `sending` delivery expects `sending`: it no longer holds.
    hold = states.hold(claimed, worker="w1", now=T0, reason="Not linked.", code="not_ready")
    assert await store.apply(hold) is None
    assert await store.apply(states.sent(claimed, "wa-1", worker="w1", now=T0)) is None
    assert await store.get_delivery(delivery.id) == released
    # An ack expects the status it was read in: one built from an older read is refused.
    await store.update_delivery(delivery.id, status=DeliveryStatus.sent, whatsapp_id="wa-1")
    as_sent = await store.get_delivery(delivery.id)
    assert as_sent is not None
    delivered = states.ack(as_sent, 2, now=T0 + minutes(1))
    read = states.ack(as_sent, 3, now=T0 + minutes(2))
    assert delivered is not None and read is not None
    assert (await store.apply(delivered) or as_sent).status is DeliveryStatus.delivered
    assert await store.apply(read) is None
    assert (await store.get_delivery(delivery.id) or as_sent).status is DeliveryStatus.delivered


async def test_apply_refuses_a_change_when_another_worker_took_the_lease(store: Store) -> None:
    (delivery,) = await add_deliveries(store, 1, now=T0 - minutes(1))
    first = await store.claim_delivery(now=T0, lease_s=LEASE_S, worker="w1")
    assert first is not None
    # w1's lease ended (its process hangs); w2 takes the delivery over.
    second = await store.claim_delivery(now=T0 + minutes(2), lease_s=LEASE_S, worker="w2")
    assert second is not None and second.id == delivery.id
    late = states.release_now(first, worker="w1", now=T0 + minutes(3))
    assert await store.apply(late) is None
    assert await store.get_delivery(delivery.id) == second
    # The lease holder's own change is written.
    taken_back = await store.apply(states.release_now(second, worker="w2", now=T0 + minutes(3)))
    assert taken_back is not None
    assert (taken_back.status, taken_back.lease_owner, taken_back.next_attempt_at) == (
        DeliveryStatus.queued,
        None,
        T0 + minutes(3),
    )


async def test_apply_to_a_delivery_that_does_not_exist_returns_none(store: Store) -> None:
    (delivery,) = await add_deliveries(store, 1, now=T0)
    gone = delivery.model_copy(update={"id": delivery.id + 100, "status": DeliveryStatus.failed})
    retry = states.retry(gone, now=T0)
    assert retry is not None
    assert await store.apply(retry) is None
    assert await store.apply(states.release(gone, worker="w1")) is None


async def test_apply_queues_a_failed_delivery_again_from_scratch(store: Store) -> None:
    run = await add_run(store)
    (new,) = new_deliveries(run, 1)
    (failed,) = await store.add_deliveries(
        run, [states.render_failed(new, "There is no {city} for Person 0.")], now=T0
    )
    retry = states.retry(failed, now=T0 + minutes(5))
    assert retry is not None
    queued = await store.apply(retry)
    assert queued is not None
    assert (queued.status, queued.attempts, queued.last_error, queued.error_code) == (
        DeliveryStatus.queued,
        0,
        None,
        None,
    )
    assert (queued.failed_at, queued.queued_at, queued.next_attempt_at) == (
        None,
        T0 + minutes(5),
        T0 + minutes(5),
    )
    # Retried once: a second retry built from the failed delivery is refused.
    assert await store.apply(retry) is None


async def test_add_deliveries_stores_a_failed_delivery_with_its_reason(store: Store) -> None:
    run = await add_run(store)
    ok, bad = new_deliveries(run, 2)
    stored = await store.add_deliveries(
        run, [ok, states.render_failed(bad, "There is no {city} for Person 1.")], now=T0
    )
    assert [(d.status, d.last_error, d.error_code) for d in stored] == [
        (DeliveryStatus.queued, None, None),
        (DeliveryStatus.failed, "There is no {city} for Person 1.", "render_failed"),
    ]
    assert (stored[1].failed_at, stored[1].queued_at, stored[1].text) == (T0, None, "")
    assert await store.get_delivery(stored[1].id) == stored[1]
    # Inserted again (a fan-out completed after a crash), the stored one is returned as it is.
    again = await store.add_deliveries(run, [ok, bad], now=T0 + minutes(1))
    assert again == stored


async def test_release_held_leaves_deliveries_held_by_a_failure_spike(store: Store) -> None:
    [not_ready, spiked] = await add_deliveries(store, 2, now=T0)
    for delivery in (not_ready, spiked):
        await store.update_delivery(
            delivery.id, status=DeliveryStatus.held, error_code="not_ready"
        )
    change = states.hold_for_spike(
        await store.get_delivery(spiked.id) or spiked, now=T0, reason="spike"
    )
    assert change is not None and await store.apply(change) is not None

    assert await store.release_held(now=T0 + minutes(1)) == 1
    still = await store.get_delivery(spiked.id)
    assert still is not None and (still.status, still.error_code) == (
        DeliveryStatus.held,
        states.SPIKE_HOLD,
    )
    released = states.release_spike(still, now=T0 + minutes(2))
    assert released is not None
    queued = await store.apply(released)
    assert queued is not None and (queued.status, queued.error_code) == (
        DeliveryStatus.queued,
        None,
    )
    assert queued.next_attempt_at == T0 + minutes(2)
    assert states.release_spike(queued, now=T0) is None


async def test_claim_value_sets_a_key_once(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_value("told:1", f"by {n}") for n in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await store.get_value("told:1") == f"by {results.index(True)}"
    assert await store.claim_value("told:1", "again") is False
    exported = await store.export_all()
    assert {"key": "told:1", "value": f"by {results.index(True)}"} in exported["values"]
