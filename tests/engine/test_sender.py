"""The sender: retries, held deliveries, permanent failures, acks, caps, crash leases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from core.adapters.store.sqlite import SQLiteStore
from core.adapters.whatsapp import SentMessage, SessionHealth
from core.app import Core
from core.delivery import runs
from core.delivery.sender import Sender
from core.domain.clock import FakeClock
from core.domain.errors import WhatsAppNotReady
from core.domain.models import (
    DeliveryFilter,
    DeliveryStatus,
    Media,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    RunTrigger,
)
from core.domain.session import SessionState
from tests.engine.conftest import (
    PHONE,
    CoreFactory,
    RecordingNotifier,
    SlowStore,
    bare_sender,
    deliveries,
    eventually,
)
from tests.fakes.sidecar import FakeSidecar, SentRecord

OTHER = "+4915199999999"
# A delivery the sender recorded as sent; acks may already have moved it on.
SENT = (DeliveryStatus.sent, DeliveryStatus.delivered, DeliveryStatus.read)


async def run_now(core: Core, recipients: str = PHONE) -> int:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=recipients, when="tomorrow 9:00", text="hi"
    )
    run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)
    return run.id


async def statuses(core: Core, run_id: int) -> list[str]:
    return [d.status.value for d in await deliveries(core, run_id=run_id)]


async def test_retry_after_the_sidecar_was_down_then_recovery(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    await sidecar.go_down()
    run_id = await run_now(core)

    async def retried() -> bool:
        (d,) = await deliveries(core, run_id=run_id)
        return d.attempts == 1 and d.status is DeliveryStatus.queued

    await eventually(retried, what="the failed first attempt")
    (waiting,) = await deliveries(core, run_id=run_id)
    assert waiting.error_code == "unavailable"
    assert waiting.last_error and "cannot be reached" in waiting.last_error
    assert waiting.next_attempt_at > clock.now()

    await sidecar.start()
    await clock.advance((waiting.next_attempt_at - clock.now()).total_seconds())

    # Not the fake's outbox: it keeps the send before it answers, and the sender records
    # the attempt after the answer.
    async def recorded() -> bool:
        return await statuses(core, run_id) in (["sent"], ["delivered"], ["read"])

    await eventually(recorded, what="the send after recovery, recorded")
    assert len(sidecar.outbox) == 1 and sidecar.requests == 1
    (sent,) = await deliveries(core, run_id=run_id)
    assert sent.attempts == 2
    assert sent.last_error is None


async def test_transient_failures_give_up_after_the_attempts_setting(
    core: Core, clock: FakeClock, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    sidecar.fail_next("send_failed", count=10)
    run_id = await run_now(core)

    for attempt in (1, 2):

        async def failed_attempt(n: int = attempt) -> bool:
            (d,) = await deliveries(core, run_id=run_id)
            return d.attempts == n and d.status is DeliveryStatus.queued

        await eventually(failed_attempt, what=f"attempt {attempt}")
        (d,) = await deliveries(core, run_id=run_id)
        await clock.advance((d.next_attempt_at - clock.now()).total_seconds())

    async def gave_up() -> bool:
        return await statuses(core, run_id) == ["failed"]

    await eventually(gave_up, what="failure after 3 attempts")
    (d,) = await deliveries(core, run_id=run_id)
    assert d.attempts == 3 and d.error_code == "send_failed"
    assert d.last_error is not None and "Gave up after 3 attempts" in d.last_error
    assert sidecar.outbox == []
    await eventually(lambda: notifier.last_statuses(run_id) == ["failed"], what="report")


async def test_a_permanent_failure_fails_at_once_with_the_reason(
    core: Core, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    sidecar.fail_next("not_on_whatsapp")
    run_id = await run_now(core)

    async def failed() -> bool:
        return await statuses(core, run_id) == ["failed"]

    await eventually(failed, what="the failure")
    (d,) = await deliveries(core, run_id=run_id)
    assert d.attempts == 1
    assert d.error_code == "not_on_whatsapp"
    assert d.last_error == f"{PHONE} has no WhatsApp account (WhatsApp service said: " + (
        "fake failure not_on_whatsapp)."
    )
    assert sidecar.requests == 1
    await eventually(lambda: notifier.last_statuses(run_id) == ["failed"], what="report")


async def test_held_while_not_linked_then_released_when_working(
    core: Core, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    sidecar.state = "SCAN_QR_CODE"
    first = await run_now(core)

    async def held() -> bool:
        return await statuses(core, first) == ["held"]

    await eventually(held, what="the held delivery")
    assert core.sender.paused
    # While paused, new deliveries are held without reaching the sidecar.
    second = await run_now(core, OTHER)

    async def both_held() -> bool:
        return await statuses(core, second) == ["held"]

    await eventually(both_held, what="the second held delivery")
    requests_while_down = sidecar.requests
    (d,) = await deliveries(core, run_id=first)
    assert d.attempts == 0 and d.error_code == "not_ready"

    await sidecar.set_state("WORKING")  # posts session.status to core

    # The sidecar keeps a send before it answers; the sender records it after the answer.
    # Wait for the store, which is what the attempts below are read from.
    async def both_sent() -> bool:
        return all(d.status in SENT for d in await deliveries(core))

    await eventually(both_sent, what="both sends after linking, recorded")
    assert requests_while_down <= 1  # at most the send that found out
    # Each held delivery reached the sidecar once, and nothing else did.
    assert sidecar.requests == requests_while_down + 2
    assert sorted(d.idempotency_key for d in await deliveries(core)) == sorted(sidecar.keys())
    assert ("WORKING", {"id": "15550001111@c.us", "name": "Fake"}) in notifier.sessions
    assert [d.attempts for d in await deliveries(core)] == [1, 1]


async def test_acks_move_a_delivery_forward_never_backwards(
    core: Core, sidecar: FakeSidecar
) -> None:
    run_id = await run_now(core)

    async def read() -> bool:
        return await statuses(core, run_id) == ["read"]

    await eventually(read, what="acks 1, 2, 3")
    message_id = sidecar.outbox[0].id
    for ack in (2, 1, -1):
        assert await sidecar.post_event("message.ack", {"id": message_id, "ack": ack}) == 200
    assert await statuses(core, run_id) == ["read"]
    (d,) = await deliveries(core, run_id=run_id)
    assert d.sent_at and d.delivered_at and d.read_at


async def test_an_error_ack_fails_a_sent_delivery(core: Core, sidecar: FakeSidecar) -> None:
    sidecar.auto_ack = False
    run_id = await run_now(core)

    async def sent() -> bool:
        return await statuses(core, run_id) == ["sent"]

    await eventually(sent, what="the send")
    assert await sidecar.post_event("message.ack", {"id": sidecar.outbox[0].id, "ack": -1}) == 200
    (d,) = await deliveries(core, run_id=run_id)
    assert d.status is DeliveryStatus.failed and d.error_code == "ack_error"


async def test_an_ack_before_the_message_id_is_stored_is_applied_later(
    core: Core, sidecar: FakeSidecar
) -> None:
    sidecar.auto_ack = False
    sidecar.send_delay_s = 0.3
    run_id = await run_now(core)
    await eventually(lambda: len(sidecar.outbox) == 1, what="the send reaching the sidecar")
    # The sidecar acks while wasched still waits for the answer to its send.
    assert await sidecar.post_event("message.ack", {"id": sidecar.outbox[0].id, "ack": 2}) == 200

    async def delivered() -> bool:
        return await statuses(core, run_id) == ["delivered"]

    await eventually(delivered, what="the early ack applied")


async def test_the_hourly_cap_delays_sends_and_never_drops_them(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    core = await start_core(SEND_HOURLY_CAP=2)
    run_id = await run_now(core, f"{PHONE}, {OTHER}, +4915100000001")

    async def two_read() -> bool:
        return sorted(await statuses(core, run_id)) == ["queued", "read", "read"]

    await eventually(two_read, what="two sends, recorded and acked")
    # The sender sleeps until the first send is an hour old; until then nothing goes out.
    hour_later = clock.now() + timedelta(hours=1)
    await eventually(
        lambda: hour_later in clock.sleeping_until(), what="the sender waiting for the cap"
    )
    assert len(sidecar.outbox) == 2 and sidecar.requests == 2
    assert sorted(await statuses(core, run_id)) == ["queued", "read", "read"]

    await clock.advance(3600)
    await eventually(lambda: len(sidecar.outbox) == 3, what="the third send an hour later")


async def test_pacing_says_when_the_next_send_may_go_and_which_cap_holds_it(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    core = await start_core(SEND_HOURLY_CAP=2)
    assert core.sender.pacing() is None  # no gap and no cap reached: nothing paces sends
    run_id = await run_now(core, f"{PHONE}, {OTHER}, +4915100000001")

    async def two_read() -> bool:
        return sorted(await statuses(core, run_id)) == ["queued", "read", "read"]

    await eventually(two_read, what="two sends, recorded and acked")
    pacing = core.sender.pacing()
    assert pacing is not None  # the fake clock stood still: both went at this instant
    assert (pacing.capped, pacing.next_at) == ("hourly", clock.now() + timedelta(hours=1))

    await clock.advance(3600)
    await eventually(lambda: len(sidecar.outbox) == 3, what="the third send an hour later")

    async def three_read() -> bool:
        return sorted(await statuses(core, run_id)) == ["read", "read", "read"]

    await eventually(three_read, what="the third recorded")
    assert core.sender.pacing() is None  # one send in the last hour: the cap has room

    await sidecar.set_state("SCAN_QR_CODE")
    await eventually(lambda: core.sender.paused, what="the sender to pause")
    assert core.sender.pacing() is None  # held, not paced: the card says why instead


async def test_pacing_with_a_gap_says_the_next_send_after_the_gap(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    core = await start_core(SEND_GAP_MIN_S=20, SEND_GAP_MAX_S=20)
    run_id = await run_now(core)

    async def read() -> bool:
        return await statuses(core, run_id) == ["read"]

    await eventually(read, what="the send recorded")
    pacing = core.sender.pacing()
    assert pacing is not None
    assert pacing.capped is None and (pacing.gap_min_s, pacing.gap_max_s) == (20, 20)
    assert pacing.next_at == clock.now() + timedelta(seconds=20)  # the clock stood still


async def test_a_delivery_left_sending_by_a_crash_is_sent_again_with_the_same_key(
    start_core: CoreFactory, database_url: str, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    # Before this core starts, a worker claimed a delivery, the sidecar sent it, and the
    # worker died before recording it.
    store = await SQLiteStore.open(database_url)
    run_id = await run_now_to_phone(store, clock, text="once only")
    claimed = await store.claim_delivery(now=clock.now(), lease_s=120, worker="dead:1")
    await store.close()
    assert claimed is not None
    earlier = SentRecord(
        id="true_earlier",
        to=PHONE,
        text="once only",
        idempotency_key=claimed.idempotency_key,
        media=None,
    )
    sidecar.outbox.append(earlier)
    sidecar.by_key[earlier.idempotency_key] = earlier

    core = await start_core()
    await asyncio.sleep(0.2)
    (d,) = await deliveries(core, run_id=run_id)
    assert d.status is DeliveryStatus.sending  # still leased to the dead worker

    await clock.advance(121)

    async def sent() -> bool:
        (d,) = await deliveries(core, run_id=run_id)
        return d.status is DeliveryStatus.sent and d.whatsapp_id == "true_earlier"

    await eventually(sent, what="the reclaimed delivery")
    assert sidecar.keys() == [claimed.idempotency_key]
    assert sidecar.requests == 1


async def run_now_to_phone(store: SQLiteStore, clock: FakeClock, text: str = "hi") -> int:
    """Start a run now of a one-shot schedule (due tomorrow) to PHONE: one queued delivery;
    the run's id."""
    schedule = await store.add_schedule(
        owner_id=7,
        recipients=[Recipient(kind=RecipientKind.phone, address=PHONE)],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=clock.now() + timedelta(days=1)),
        next_run_at=clock.now() + timedelta(days=1),
        text=text,
    )
    run, _ = await runs.start_run(
        store, clock, schedule, scheduled_for=clock.now(), trigger=RunTrigger.manual
    )
    return run.id


class WorkingSidecar:
    """A `SendPort` whose session works and which accepts every send."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage:
        self.keys.append(idempotency_key)
        return SentMessage(id=f"wa-{idempotency_key}", to=to, timestamp=None, duplicate=False)

    async def health(self, *, within_s: float | None = None) -> SessionHealth:
        return SessionHealth(status="ok", engine="fake", state=SessionState.WORKING, me=None)


class LinkedWhileRefusingSidecar(WorkingSidecar):
    """A `SendPort` whose session links while the first send is on the wire: it refuses
    that send (`not_ready`), and its WORKING event reaches the sender before the refusal."""

    def __init__(self) -> None:
        super().__init__()
        self.sender: Sender | None = None
        self.refused = 0

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage:
        if not self.refused:
            self.refused += 1
            assert self.sender is not None
            self.sender.session_changed(SessionState.WORKING)  # what POST /whatsapp/events does
            raise WhatsAppNotReady("session is STARTING")
        return await super().send(to, text, idempotency_key=idempotency_key, media=media)


async def test_working_heard_while_a_send_is_refused_sends_it_again_without_a_probe(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await SQLiteStore.open(f"sqlite:///{tmp_path / 'wasched.db'}")
    sidecar = LinkedWhileRefusingSidecar()
    sender = bare_sender(store, clock, sidecar)
    sidecar.sender = sender
    await sender.start()
    try:
        await eventually(
            lambda: sender.status()["session_state"] == SessionState.WORKING,
            what="the first probe",
        )
        run_id = await run_now_to_phone(store, clock)
        sender.deliveries_queued()

        # The clock does not move: no probe comes to say the session works.
        async def sent() -> bool:
            (d,) = await store.list_deliveries(DeliveryFilter(run_id=run_id))
            return d.status is DeliveryStatus.sent

        await eventually(sent, what="the refused send going out again")
        (d,) = await store.list_deliveries(DeliveryFilter(run_id=run_id))
        assert d.attempts == 1 and sidecar.refused == 1
        assert sidecar.keys == [d.idempotency_key]
        assert not sender.paused
    finally:
        await sender.stop()
        await store.close()


async def test_a_delivery_that_came_due_while_the_sender_looked_goes_out_at_once(
    slow_store: SlowStore, clock: FakeClock
) -> None:
    store = slow_store
    store.stall_on = "next_delivery_due_at"
    run_id = await run_now_to_phone(store, clock)
    (queued,) = await store.list_deliveries(DeliveryFilter(run_id=run_id))
    due = clock.now() + timedelta(seconds=40)  # a retry's backoff, say
    await store.update_delivery(queued.id, next_attempt_at=due)
    store.slow = True
    sidecar = WorkingSidecar()
    sender = bare_sender(store, clock, sidecar, idle_check_s=60)
    await sender.start()
    try:
        # It found nothing to claim and asks when the next one is due; the store is slow
        # to answer, and meanwhile the delivery comes due.
        await eventually(store.entered.is_set, what="the sender asking when one is due")
        await clock.advance(40)
        store.gate.set()
        await eventually(lambda: clock.sleeping_until() != [], what="the sender asleep")
        assert sidecar.keys == [queued.idempotency_key]
    finally:
        await sender.stop()
