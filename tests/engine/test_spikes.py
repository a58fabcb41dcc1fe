"""Auto-pause on failure spikes: the rule, and a run cut short through the real core (sender,
store, fake sidecar over HTTP), across processes and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot import ui
from core.adapters.store import open_store
from core.app import Core
from core.delivery import states
from core.delivery.spikes import TOLD_KEY, SpikeRule, tally
from core.domain.clock import FakeClock
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, ScheduleState
from tests.engine.conftest import (
    START,
    CoreFactory,
    RecordingNotifier,
    deliveries,
    eventually,
)
from tests.fakes.sidecar import FakeSidecar
from tests.store.conftest import SHARED_DATABASES, database_url_of

# Six recipients; the first three sends fail in the tests below.
SIX = ", ".join(f"+49151000000{n:02d}" for n in range(1, 7))
GAP_S = 20
SENT = (DeliveryStatus.sent, DeliveryStatus.delivered, DeliveryStatus.read)


@pytest.fixture(params=SHARED_DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each core test runs on SQLite and, marked mongo, on the real MongoDB server."""
    async with database_url_of(request.param, tmp_path) as url:
        yield url


@pytest.mark.parametrize(
    ("failed", "tried", "tripped"),
    [
        (3, 3, True),  # every send so far failed
        (2, 2, False),  # fewer than PAUSE_MIN_FAILURES
        (3, 6, True),  # exactly half
        (3, 7, False),  # below half
        (5, 8, True),
        (0, 0, False),
    ],
)
def test_the_spike_rule_needs_the_share_and_the_minimum(
    failed: int, tried: int, tripped: bool
) -> None:
    assert SpikeRule(ratio=0.5, min_failures=3).tripped(failed, tried) is tripped


def test_a_ratio_of_zero_turns_the_rule_off() -> None:
    assert not SpikeRule(ratio=0, min_failures=1).tripped(10, 10)
    assert SpikeRule(ratio=1, min_failures=1).tripped(1, 1)
    assert not SpikeRule(ratio=1, min_failures=1).tripped(1, 2)


def test_failures_that_say_nothing_about_the_account_do_not_count() -> None:
    def delivery(
        n: int, status: DeliveryStatus, code: str | None = None, attempts: int = 1
    ) -> Delivery:
        return Delivery(
            id=n,
            run_id=1,
            schedule_id=1,
            owner_id=7,
            recipient=f"+49151000000{n:02d}",
            text="hi",
            idempotency_key=f"1:{n}",
            status=status,
            error_code=code,
            attempts=attempts,
            created_at=START,
            next_attempt_at=START,
        )

    run = [
        delivery(1, DeliveryStatus.failed, "not_on_whatsapp"),
        delivery(2, DeliveryStatus.failed, "send_failed"),  # WhatsApp kept refusing it
        delivery(3, DeliveryStatus.failed, "ack_error"),
        delivery(4, DeliveryStatus.failed, "unavailable"),  # the sidecar was down
        delivery(5, DeliveryStatus.failed, "render_failed"),
        delivery(6, DeliveryStatus.read),
        delivery(7, DeliveryStatus.queued, attempts=0),
        delivery(8, DeliveryStatus.missed, attempts=0),
        # Found not on WhatsApp before the run: never sent.
        delivery(9, DeliveryStatus.failed, "not_on_whatsapp", attempts=0),
    ]
    assert tally(run) == (3, 4)


async def start_run(core: Core, recipients: str = SIX) -> tuple[int, int]:
    """A daily schedule to `recipients`, run now: (schedule id, run id)."""
    schedule = await core.services.schedules.create_schedule(
        7, recipients=recipients, when="every day at 9:00", text="hi"
    )
    run, _ = await core.services.runs.run_now(7, schedule.id)
    return schedule.id, run.id


async def drive(core: Core, clock: FakeClock, done: Callable[[], Awaitable[bool]]) -> None:
    """Let the paced sender go on: each time it sleeps out the gap after a send, move the
    clock to its end (never while a send is on the wire: that could end its lease)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await done():
        if loop.time() > deadline:
            raise AssertionError("the sender did not get there")
        pacing = core.sender.pacing()
        if pacing is not None and pacing.next_at in clock.sleeping_until():
            # The sender sleeps out the gap after a send it has recorded: a `done` read
            # before that send was recorded must not let the clock on to one send more.
            if await done():
                return
            await clock.advance((pacing.next_at - clock.now()).total_seconds())
        else:
            await asyncio.sleep(0.01)


async def paced_run(
    start_core: CoreFactory, sidecar: FakeSidecar, *, failing: int
) -> tuple[Core, int, int]:
    """A core sending one at a time, and a run to SIX whose first `failing` sends are not on
    WhatsApp: (core, schedule id, run id)."""
    core = await start_core(SEND_GAP_MIN_S=GAP_S, SEND_GAP_MAX_S=GAP_S)
    sidecar.fail_next("not_on_whatsapp", count=failing)
    schedule_id, run_id = await start_run(core)
    return core, schedule_id, run_id


async def by_status(core: Core, run_id: int) -> dict[DeliveryStatus, int]:
    counts: dict[DeliveryStatus, int] = {}
    for delivery in await deliveries(core, run_id=run_id):
        counts[delivery.status] = counts.get(delivery.status, 0) + 1
    return counts


async def test_a_run_whose_sends_fail_is_cut_short_and_resume_sends_the_rest_once(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    core, schedule_id, run_id = await paced_run(start_core, sidecar, failing=3)

    async def cut() -> bool:
        return len(notifier.auto_paused) == 1

    await drive(core, clock, cut)
    # Long after: nothing more went to the sidecar than the three that failed.
    for _ in range(10):
        await clock.advance(GAP_S * 3)
    assert sidecar.requests == 3 and sidecar.outbox == []
    assert await by_status(core, run_id) == {DeliveryStatus.failed: 3, DeliveryStatus.held: 3}
    held = [d for d in await deliveries(core, run_id=run_id) if d.status is DeliveryStatus.held]
    assert {d.error_code for d in held} == {states.SPIKE_HOLD}
    assert all(d.attempts == 0 for d in held)
    schedule = await core.store.get_schedule(schedule_id)
    assert schedule is not None and schedule.state is ScheduleState.paused
    [(told_run, spike)] = notifier.auto_paused
    assert told_run.id == run_id
    assert (spike.failed, spike.tried, spike.held, spike.paused) == (3, 3, 3, True)
    assert (spike.reason_code, spike.reason_count) == ("not_on_whatsapp", 3)

    # WhatsApp working again is no reason to send them: only Resume is.
    await sidecar.set_state("STARTING")
    await sidecar.set_state("WORKING")
    assert await core.store.release_held(now=clock.now()) == 0
    assert await by_status(core, run_id) == {DeliveryStatus.failed: 3, DeliveryStatus.held: 3}

    resumed, released = await core.services.runs.resume_cut_short(7, run_id)
    assert released == 3
    assert resumed is not None and resumed.state is ScheduleState.active

    async def rest_sent() -> bool:
        counts = await by_status(core, run_id)
        return (
            counts.get(DeliveryStatus.failed) == 3
            and DeliveryStatus.held not in counts
            and (sum(counts.get(status, 0) for status in SENT) == 3)
        )

    await drive(core, clock, rest_sent)
    for _ in range(5):
        await clock.advance(GAP_S * 3)
    assert sidecar.requests == 6 and len(set(sidecar.keys())) == 3
    # Pressed again: nothing more goes, and the owner was told once.
    assert (await core.services.runs.resume_cut_short(7, run_id))[1] == 0
    assert len(notifier.auto_paused) == 1
    _, _, failed = await core.services.runs.failures(7, run_id)
    assert len(failed) == 3 and {d.error_code for d in failed} == {"not_on_whatsapp"}


async def test_failures_below_the_minimum_do_not_cut_a_run(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    core, schedule_id, run_id = await paced_run(start_core, sidecar, failing=2)

    async def all_tried() -> bool:
        counts = await by_status(core, run_id)
        return sum(counts.get(status, 0) for status in SENT) == 4

    await drive(core, clock, all_tried)
    assert sidecar.requests == 6 and notifier.auto_paused == []
    schedule = await core.store.get_schedule(schedule_id)
    assert schedule is not None and schedule.state is ScheduleState.active


async def test_failures_recorded_by_another_process_count(
    start_core: CoreFactory,
    database_url: str,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    """Two sends of the run failed in another process (or before a restart): the third
    failure here is the spike, though this process saw only one."""
    store = await open_store(database_url)
    core = await start_core(SEND_GAP_MIN_S=GAP_S, SEND_GAP_MAX_S=GAP_S)
    # Held back until the other process has failed two of them.
    await sidecar.set_state("STARTING")
    _, run_id = await start_run(core)

    async def all_held() -> bool:
        return await by_status(core, run_id) == {DeliveryStatus.held: 6}

    await eventually(all_held, what="the sender holding them")
    for _ in range(2):
        [queued] = await store.list_deliveries(
            DeliveryFilter(
                run_id=run_id, statuses=(DeliveryStatus.queued, DeliveryStatus.held), limit=1
            )
        )
        await store.update_delivery(queued.id, status=DeliveryStatus.sending, lease_owner="x")
        taken = await store.get_delivery(queued.id)
        assert taken is not None
        fail = states.failed_attempt(
            taken,
            worker="x",
            now=clock.now(),
            reason="no WhatsApp",
            code="not_on_whatsapp",
            transient=False,
            max_attempts=3,
            backoff=lambda attempts: 0.0,
        )
        assert await store.apply(fail) is not None
    await store.close()
    sidecar.fail_next("not_on_whatsapp", count=1)
    await sidecar.set_state("WORKING")

    async def cut() -> bool:
        return len(notifier.auto_paused) == 1

    await drive(core, clock, cut)
    for _ in range(5):
        await clock.advance(GAP_S * 3)
    assert sidecar.requests == 1
    assert await by_status(core, run_id) == {DeliveryStatus.failed: 3, DeliveryStatus.held: 3}


async def test_a_run_held_but_untold_before_a_crash_is_told_once_after_restart(
    start_core: CoreFactory,
    database_url: str,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    # The process that cut the run short died before telling: its rest is held, no one told.
    store = await open_store(database_url)
    core = await start_core()
    await sidecar.set_state("STARTING")
    _, run_id = await start_run(core, "+4915100000001, +4915100000002")

    async def both_held() -> bool:
        return await by_status(core, run_id) == {DeliveryStatus.held: 2}

    await eventually(both_held, what="the sender holding them")
    for delivery in await store.list_deliveries(DeliveryFilter(run_id=run_id)):
        change = states.hold_for_spike(delivery, now=clock.now(), reason="held")
        assert change is not None and await store.apply(change) is not None
    assert await store.get_value(TOLD_KEY.format(run_id)) is None
    await store.close()

    again = await start_core()
    await eventually(lambda: len(notifier.auto_paused) == 1, what="the owner told")
    assert notifier.auto_paused[0][1].held == 2
    await start_core()  # and a third process does not tell again
    assert len(notifier.auto_paused) == 1
    assert await again.store.get_value(TOLD_KEY.format(run_id)) is not None


async def test_resuming_the_schedule_by_hand_sends_the_held_rest_too(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    core, schedule_id, run_id = await paced_run(start_core, sidecar, failing=3)

    async def cut() -> bool:
        return len(notifier.auto_paused) == 1

    await drive(core, clock, cut)
    resumed = await core.services.schedules.resume(7, schedule_id)  # /resume, not the button
    assert resumed.state is ScheduleState.active

    async def rest_sent() -> bool:
        counts = await by_status(core, run_id)
        return sum(counts.get(status, 0) for status in SENT) == 3

    await drive(core, clock, rest_sent)
    assert sidecar.requests == 6
    assert (await core.services.runs.resume_cut_short(7, run_id))[1] == 0


async def test_a_send_of_another_process_that_comes_back_queued_after_the_cut_is_held(
    start_core: CoreFactory,
    database_url: str,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    """Another process was sending one of the run when it was cut short; its send then failed
    for a while (queued again): it is held with the rest, not sent."""
    store = await open_store(database_url)
    core = await start_core(SEND_GAP_MIN_S=GAP_S, SEND_GAP_MAX_S=GAP_S)
    await sidecar.set_state("STARTING")
    _, run_id = await start_run(core)

    async def all_held() -> bool:
        return await by_status(core, run_id) == {DeliveryStatus.held: 6}

    await eventually(all_held, what="the sender holding them")
    last = (await store.list_deliveries(DeliveryFilter(run_id=run_id, order="oldest")))[-1]
    await store.update_delivery(
        last.id,
        status=DeliveryStatus.sending,
        lease_owner="x",
        lease_until=clock.now() + timedelta(days=1),
    )
    sidecar.fail_next("not_on_whatsapp", count=3)
    await sidecar.set_state("WORKING")

    async def cut() -> bool:
        return len(notifier.auto_paused) == 1

    await drive(core, clock, cut)
    taken = await store.get_delivery(last.id)
    assert taken is not None and taken.status is DeliveryStatus.sending
    retry = states.failed_attempt(
        taken,
        worker="x",
        now=clock.now(),
        reason="WhatsApp did not answer",
        code="unavailable",
        transient=True,
        max_attempts=3,
        backoff=lambda attempts: 0.0,
    )
    assert isinstance(retry, states.RetryLater) and await store.apply(retry) is not None
    await store.close()
    core.sender.deliveries_queued()

    async def held_again() -> bool:
        return await by_status(core, run_id) == {
            DeliveryStatus.failed: 3,
            DeliveryStatus.held: 3,
        }

    await drive(core, clock, held_again)
    for _ in range(5):
        await clock.advance(GAP_S * 3)
    assert sidecar.requests == 3
    assert await by_status(core, run_id) == {DeliveryStatus.failed: 3, DeliveryStatus.held: 3}


async def test_error_acks_count_toward_the_spike(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    """WhatsApp took three sends, then reported an error for each (ack -1): the run is cut
    short as if it had refused them."""
    sidecar.auto_ack = False
    core = await start_core(SEND_GAP_MIN_S=GAP_S, SEND_GAP_MAX_S=GAP_S)
    schedule_id, run_id = await start_run(core)

    async def three_sent() -> bool:
        return (await by_status(core, run_id)).get(DeliveryStatus.sent) == 3

    await drive(core, clock, three_sent)
    # The gap after the third send is not over: nothing more goes until the clock moves.
    for record in sidecar.outbox:
        assert await sidecar.post_event("message.ack", {"id": record.id, "ack": -1}) == 200
    await eventually(lambda: len(notifier.auto_paused) == 1, what="the owner told")
    for _ in range(5):
        await clock.advance(GAP_S * 3)
    assert sidecar.requests == 3
    assert await by_status(core, run_id) == {DeliveryStatus.failed: 3, DeliveryStatus.held: 3}
    [(_, spike)] = notifier.auto_paused
    assert (spike.failed, spike.tried, spike.reason_code) == (3, 3, "ack_error")
    schedule = await core.store.get_schedule(schedule_id)
    assert schedule is not None and schedule.state is ScheduleState.paused


async def test_numbers_refused_before_the_run_do_not_count_toward_the_spike(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    """Three numbers of the run were found not on WhatsApp at fan-out (never sent): the
    first send WhatsApp refuses is one failure of one try, not four of four."""
    gone = [f"+4915199999{n:03d}" for n in range(1, 4)]
    good = [f"+49151000000{n:02d}" for n in range(1, 4)]
    core = await start_core(SEND_GAP_MIN_S=GAP_S, SEND_GAP_MAX_S=GAP_S)
    await sidecar.set_state("SCAN_QR_CODE")  # saved unchecked: WhatsApp could not be asked
    schedule = await core.services.schedules.create_schedule(
        7, recipients=", ".join(gone + good), when="every day at 9:00", text="hi"
    )
    sidecar.not_on_whatsapp = set(gone)
    await sidecar.set_state("WORKING")
    sidecar.fail_next("not_on_whatsapp", count=1)
    run, _ = await core.services.runs.run_now(7, schedule.id)

    async def all_tried() -> bool:
        counts = await by_status(core, run.id)
        return sum(counts.get(status, 0) for status in SENT) == 2

    await drive(core, clock, all_tried)
    assert sidecar.requests == 3 and notifier.auto_paused == []
    counts = await by_status(core, run.id)
    assert counts[DeliveryStatus.failed] == 4 and DeliveryStatus.held not in counts
    refused = await core.store.get_schedule(schedule.id)
    assert refused is not None and refused.state is ScheduleState.active


async def test_resume_sends_recent_runs_held_and_says_so_leaving_older_ones_held(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    """Two runs of a schedule were cut short, one longer ago than the misfire grace (an
    hour here): /resume sends the recent one's held rest, keeps the old one's held, and
    its answer counts both."""
    core, schedule_id, old_run = await paced_run(start_core, sidecar, failing=3)
    await drive(core, clock, lambda: _told(notifier, 1))
    await clock.advance(2 * 3600)
    sidecar.fail_next("not_on_whatsapp", count=3)
    new_run, _ = await core.services.runs.run_now(7, schedule_id)
    await drive(core, clock, lambda: _told(notifier, 2))
    assert sidecar.requests == 6

    resumed = await core.services.schedules.resume_held(7, schedule_id)
    assert resumed.schedule.state is ScheduleState.active
    assert (resumed.sent, resumed.left_held) == ({new_run.id: 3}, {old_run: 3})
    text = ui.resumed("", resumed)
    assert f"3 held messages go out now (run {new_run.id}: 3)" in text
    assert f"3 messages stay held (run {old_run}: 3)" in text and "Resume button" in text

    async def rest_sent() -> bool:
        counts = await by_status(core, new_run.id)
        return sum(counts.get(status, 0) for status in SENT) == 3

    await drive(core, clock, rest_sent)
    for _ in range(5):
        await clock.advance(GAP_S * 3)
    assert sidecar.requests == 9
    assert await by_status(core, old_run) == {DeliveryStatus.failed: 3, DeliveryStatus.held: 3}
    # Its own Resume still sends the old run's rest.
    assert (await core.services.runs.resume_cut_short(7, old_run))[1] == 3


async def _told(notifier: RecordingNotifier, times: int) -> bool:
    return len(notifier.auto_paused) == times


@pytest.mark.parametrize("by", ["button", "command"])
async def test_resuming_a_run_cut_short_after_its_schedule_ended_sends_the_rest_and_ends_it(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
    by: str,
) -> None:
    """A one-time schedule's run was cut short and its time passed while it was paused:
    Resume (the run's button or /resume) sends the held rest and makes the schedule done,
    and says so, instead of leaving it paused for ever."""
    core = await start_core(SEND_GAP_MIN_S=GAP_S, SEND_GAP_MAX_S=GAP_S)
    sidecar.fail_next("not_on_whatsapp", count=3)
    schedule = await core.services.schedules.create_schedule(
        7, recipients=SIX, when="in 10 minutes", text="hi"
    )
    run, _ = await core.services.runs.run_now(7, schedule.id)
    await drive(core, clock, lambda: _told(notifier, 1))
    await clock.advance(20 * 60)

    if by == "button":
        ended, released = await core.services.runs.resume_cut_short(7, run.id)
        assert released == 3
        assert ended is not None
        assert "has nothing left to send: it is done" in ui.spike_resumed(ended, run, released)
    else:
        resumed = await core.services.schedules.resume_held(7, schedule.id)
        assert resumed.sent == {run.id: 3}
        ended = resumed.schedule
        text = ui.resumed("", resumed)
        assert "passed while it was paused, so it is done now" in text
        assert "3 held messages go out now" in text
    assert ended.state is ScheduleState.done and ended.next_run_at is None

    async def rest_sent() -> bool:
        counts = await by_status(core, run.id)
        return sum(counts.get(status, 0) for status in SENT) == 3

    await drive(core, clock, rest_sent)
    assert sidecar.requests == 6
    stored = await core.store.get_schedule(schedule.id)
    assert stored is not None and stored.state is ScheduleState.done
