"""Acks that never reached core (it was down, the sidecar restarted, the events route failed)
are asked for: after start, after a gap and after a silence, a page at a time, through the
sender's one ack path; at rest nothing is asked."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from core.app import Core, open_core
from core.delivery.receipts import QUIET_S, Receipts
from core.domain.clock import FakeClock
from core.domain.models import DeliveryStatus
from tests.engine.conftest import (
    CoreFactory,
    RecordingNotifier,
    deliveries,
    eventually,
    settings_for,
)
from tests.fakes.sidecar import FakeSidecar

ANNA = "+4915100000001"
BEN = "+4915100000002"


async def sent_run(core: Core, recipients: list[str]) -> int:
    """Run a schedule now and wait until WhatsApp took every message; the run's id."""
    schedule = await core.services.schedules.create_schedule(
        1001, recipients=", ".join(recipients), when="every day at 9:00", text="Hi {time}"
    )
    run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)

    async def all_sent() -> bool:
        found = await deliveries(core, run_id=run.id)
        return len(found) == len(recipients) and all(d.sent_at is not None for d in found)

    await eventually(all_sent, what="every message sent")
    return run.id


async def statuses(core: Core, run_id: int) -> list[DeliveryStatus]:
    return [d.status for d in await deliveries(core, run_id=run_id)]


async def settled(receipts: Receipts, clock: FakeClock) -> None:
    """Wait until the reconcile loop caught up with the clock and waits for a later instant,
    asleep on the clock (the loop says until when before its sleep is on the clock: moving
    the clock in between would move that sleep along with it)."""

    def waiting() -> bool:
        until = receipts.waiting_until
        return until is not None and until > clock.now() and until in clock.sleeping_until()

    await eventually(waiting, what="the receipts loop to wait")


async def advance(receipts: Receipts, clock: FakeClock, seconds: float, step_s: float) -> None:
    """Move the clock by `seconds` in steps, letting the loop catch up after each."""
    moved = 0.0
    while moved < seconds:
        await clock.advance(step_s)
        moved += step_s
        await settled(receipts, clock)


def phones_read(sidecar: FakeSidecar, ack: int = 3) -> None:
    """The phones moved on while no event reached core (GET /messages/{id} says so)."""
    for record in sidecar.outbox:
        record.ack = ack


async def test_acks_missed_while_core_was_down_are_asked_for_after_start(
    database_url: str, sidecar: FakeSidecar, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    sidecar.ack_up_to = 1
    first = settings_for(database_url, sidecar)
    async with open_core(first, notifier=notifier, clock=clock) as core:
        sidecar.events_url = f"{core.url}/whatsapp/events"
        run_id = await sent_run(core, [ANNA, BEN])
    phones_read(sidecar)  # read while core was down; the events are gone
    asked_before = sidecar.ack_requests

    async with open_core(
        settings_for(database_url, sidecar), notifier=notifier, clock=clock
    ) as core:

        async def all_read() -> bool:
            return await statuses(core, run_id) == [DeliveryStatus.read] * 2

        await eventually(all_read, what="the acks asked for after start")
        await core.sender.reporter.flush()
        # One request asked for both messages awaiting an ack.
        assert sidecar.ack_requests - asked_before == 1
        assert core.receipts.asked == 2
        # The one ack path: the run's card was edited to say so.
        assert notifier.last_statuses(run_id) == ["read", "read"]


async def test_the_session_back_to_working_asks_for_acks_missed_meanwhile(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core()
    run_id = await sent_run(core, [ANNA, BEN])
    await settled(core.receipts, clock)
    asked = sidecar.ack_requests
    await sidecar.set_state("STARTING")
    phones_read(sidecar, ack=2)
    await eventually(lambda: core.sender.paused, what="the sender to hold")
    assert sidecar.ack_requests == asked  # not while the session does not work

    await sidecar.set_state("WORKING")

    async def delivered() -> bool:
        return await statuses(core, run_id) == [DeliveryStatus.delivered] * 2

    await eventually(delivered, what="the acks asked for after the gap")
    assert sidecar.ack_requests - asked == 1


async def test_a_silence_of_events_asks_with_backoff_and_at_rest_nothing_is_asked(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1  # the phones' acks never come as events
    core = await start_core()
    run_id = await sent_run(core, [ANNA, BEN])
    await settled(core.receipts, clock)
    asked = sidecar.ack_requests
    passes = core.receipts.passes

    # Events stop; the phones never ack: one pass after QUIET_S of silence, then after twice
    # that, and so on: 300 s, 900 s, 2100 s into the hour, one request for both each.
    asked_ids = sidecar.acks_asked
    await advance(core.receipts, clock, 3600, step_s=60)
    assert QUIET_S == 300
    assert core.receipts.passes - passes == 3
    assert sidecar.ack_requests - asked == 3
    assert sidecar.acks_asked - asked_ids == 3 * 2

    # The phones read them; the next silent pass learns it.
    phones_read(sidecar)
    await advance(core.receipts, clock, 3600, step_s=60)
    assert await statuses(core, run_id) == [DeliveryStatus.read] * 2

    # At rest (WORKING, nothing awaiting an ack): passes read the store and ask nothing.
    asked, passes = sidecar.ack_requests, core.receipts.passes
    await advance(core.receipts, clock, 3 * 3600, step_s=60)
    assert core.receipts.passes > passes
    assert sidecar.ack_requests == asked


async def test_while_events_come_no_silence_pass_asks_anything(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1  # two messages wait for their phones all along
    core = await start_core()
    await sent_run(core, [ANNA, BEN])
    await settled(core.receipts, clock)
    requests = sidecar.ack_requests
    for _ in range(18):  # an hour and a half, an event every 5 minutes less a second
        await advance(core.receipts, clock, QUIET_S - 1, step_s=QUIET_S - 1)
        assert await sidecar.post_event("session.status", {"state": "WORKING"}) == 200
    assert sidecar.ack_requests == requests


async def test_an_idle_core_held_working_asks_nothing_over_an_hour(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    core = await start_core()
    await settled(core.receipts, clock)
    assert core.receipts.passes == 1  # the pass after start: nothing awaits an ack
    await advance(core.receipts, clock, 3600, step_s=30)
    assert sidecar.ack_requests == 0
    assert core.receipts.asked == 0


async def test_a_pass_asks_a_page_at_a_time_with_a_pause_between_pages(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core()
    receipts = core.receipts
    recipients = [f"+49151{n:08d}" for n in range(120)]
    run_id = await sent_run(core, recipients)
    await settled(receipts, clock)
    phones_read(sidecar)
    requests, asked = sidecar.ack_requests, sidecar.acks_asked

    receipts.gap()  # as the sender does when the session is back
    await eventually(lambda: sidecar.ack_requests > requests, what="the first page")
    await settled(receipts, clock)
    assert receipts.waiting_until == clock.now() + timedelta(seconds=receipts.pause_s)
    # One request per page of 50, then a pause on the clock before the next.
    assert (sidecar.ack_requests - requests, sidecar.acks_asked - asked) == (1, 50)
    await clock.advance(receipts.pause_s)
    await settled(receipts, clock)
    assert (sidecar.ack_requests - requests, sidecar.acks_asked - asked) == (2, 100)
    await clock.advance(receipts.pause_s)
    await settled(receipts, clock)
    assert (sidecar.ack_requests - requests, sidecar.acks_asked - asked) == (3, 120)
    assert set(await statuses(core, run_id)) == {DeliveryStatus.read}


async def test_a_sidecar_without_the_bulk_route_is_asked_one_message_at_a_time(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    sidecar.bulk_acks = False  # an older sidecar: POST /messages/acks is 404, no route
    core = await start_core()
    receipts = core.receipts
    receipts.page = 3
    run_id = await sent_run(core, [f"+49151{n:08d}" for n in range(5)])
    await settled(receipts, clock)
    phones_read(sidecar)
    requests = sidecar.ack_requests

    receipts.gap()
    await eventually(lambda: sidecar.ack_requests - requests >= 4, what="the first page")
    await settled(receipts, clock)
    # The refused bulk request, then the page's three one by one; then the pause.
    assert sidecar.ack_requests - requests == 1 + 3
    await clock.advance(receipts.pause_s)
    await settled(receipts, clock)
    assert sidecar.ack_requests - requests == 1 + 5  # never in bulk again
    assert set(await statuses(core, run_id)) == {DeliveryStatus.read}


async def test_a_pass_cut_short_by_the_sidecar_going_down_is_finished_later(
    start_core: CoreFactory,
    sidecar: FakeSidecar,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="core.delivery.receipts")
    sidecar.ack_up_to = 1
    core = await start_core()
    run_id = await sent_run(core, [ANNA, BEN])
    await settled(core.receipts, clock)
    phones_read(sidecar)
    passes = core.receipts.passes
    await sidecar.go_down()
    core.receipts.gap()
    await eventually(lambda: "did not answer" in caplog.text, what="the pass to stop")
    await settled(core.receipts, clock)
    assert core.receipts.passes == passes  # not gone through
    assert await statuses(core, run_id) == [DeliveryStatus.sent] * 2

    await sidecar.start()
    await advance(core.receipts, clock, 60, step_s=60)
    assert core.receipts.passes == passes + 1
    assert await statuses(core, run_id) == [DeliveryStatus.read] * 2
    said = [r.getMessage() for r in caplog.records if r.name == "core.delivery.receipts"]
    assert len([line for line in said if "did not answer" in line]) == 1


async def test_with_the_window_at_zero_nothing_is_asked(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core(ACK_RECONCILE_WINDOW_S=0)
    await sent_run(core, [ANNA, BEN])
    phones_read(sidecar)
    await sidecar.set_state("STARTING")
    await sidecar.set_state("WORKING")
    for _ in range(24):
        await clock.advance(600)
    assert sidecar.ack_requests == 0
    assert core.receipts.passes == 0


async def test_silences_ask_only_about_sent_messages_gaps_about_delivered_ones_too(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    """A recipient with read receipts off stays `delivered` for good: silences do not ask
    about it again and again (each is a page call in the real engine); a gap still does."""
    sidecar.ack_up_to = 2  # delivered, never read
    core = await start_core()
    run_id = await sent_run(core, [ANNA, BEN])

    async def delivered() -> bool:
        return await statuses(core, run_id) == [DeliveryStatus.delivered] * 2

    await eventually(delivered, what="both delivered")
    await settled(core.receipts, clock)
    asked = sidecar.acks_asked

    await advance(core.receipts, clock, 3 * 3600, step_s=60)
    assert core.receipts.passes >= 4  # silences came, and asked nothing
    assert sidecar.acks_asked == asked

    await sidecar.set_state("STARTING")
    await eventually(lambda: core.sender.paused, what="the sender to hold")
    phones_read(sidecar)
    await sidecar.set_state("WORKING")

    async def read() -> bool:
        return await statuses(core, run_id) == [DeliveryStatus.read] * 2

    await eventually(read, what="the acks asked for after the gap")
    assert sidecar.acks_asked - asked == 2
