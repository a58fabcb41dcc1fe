"""A message goes out: fire, claim, fan out, send, report (README.md, "How it works")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.app import Core
from core.domain.clock import FakeClock, SystemClock
from core.domain.models import DeliveryStatus, Recipient, RecipientKind, Rule, RuleKind, RunTrigger
from tests.engine.conftest import (
    PHONE,
    CoreFactory,
    RecordingNotifier,
    deliveries,
    eventually,
)
from tests.fakes.sidecar import FakeSidecar


async def test_run_now_sends_at_once_through_the_same_path(
    core: Core, sidecar: FakeSidecar, notifier: RecordingNotifier
) -> None:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="tomorrow 9:00", text="Hello, it is {weekday}"
    )

    run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)

    await eventually(lambda: len(sidecar.outbox) == 1, what="the send")
    sent = sidecar.outbox[0]
    assert sent.to == PHONE
    assert sent.idempotency_key.startswith(f"run{run.id}.")
    assert sent.idempotency_key.endswith(f":{PHONE}")
    assert run.trigger is RunTrigger.manual

    async def read() -> bool:
        return [d.status for d in await deliveries(core, run_id=run.id)] == ["read"]

    await eventually(read, what="acks up to read")
    await eventually(lambda: notifier.last_statuses(run.id) == ["read"], what="the report")


async def test_a_scheduled_message_reaches_the_sidecar_through_apscheduler(
    start_core: CoreFactory, sidecar: FakeSidecar
) -> None:
    """The real wake-up path: SystemClock, APScheduler's timer, a coroutine job awaited."""
    core = await start_core(clock_=SystemClock())
    at = datetime.now(UTC) + timedelta(seconds=1)
    schedule = await core.store.add_schedule(
        owner_id=7,
        recipients=[Recipient(kind=RecipientKind.phone, address=PHONE)],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=at),
        next_run_at=at,
        text="on time",
    )
    core.engine.schedules_changed()

    await eventually(lambda: sidecar.keys() != [], within_s=15, what="the scheduled send")

    assert [r.text for r in sidecar.outbox] == ["on time"]
    (run,) = await core.store.list_runs(schedule_id=schedule.id)
    assert run.trigger is RunTrigger.schedule
    stored = await core.store.get_schedule(schedule.id)
    assert stored is not None and stored.state == "done" and stored.next_run_at is None


async def test_a_recurring_schedule_fires_each_occurrence_once(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="every 2 hours", text="tick"
    )
    assert schedule.next_run_at is not None

    await core.engine.tick()  # not due yet
    await clock.advance((schedule.next_run_at - clock.now()).total_seconds())
    await core.engine.tick()
    await core.engine.tick()  # a second pass at the same instant finds nothing
    await eventually(lambda: len(sidecar.outbox) == 1, what="first occurrence")

    await clock.advance(2 * 3600)
    await core.engine.tick()
    await eventually(lambda: len(sidecar.outbox) == 2, what="second occurrence")

    runs = await core.store.list_runs(schedule_id=schedule.id)
    assert len(runs) == 2
    assert {r.trigger for r in runs} == {RunTrigger.schedule}
    assert len(set(sidecar.keys())) == 2
    assert sidecar.requests == 2


async def test_pause_stops_firing_and_resume_fires_again(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="every 1 hour", text="tock"
    )
    await core.services.schedules.pause(schedule.owner_id, schedule.id)

    await clock.advance(3 * 3600)
    await core.engine.tick()
    assert await core.store.list_runs(schedule_id=schedule.id) == []

    resumed = await core.services.schedules.resume(schedule.owner_id, schedule.id)
    assert resumed.next_run_at is not None and resumed.next_run_at > clock.now()
    await clock.advance(3600)
    await core.engine.tick()
    await eventually(lambda: len(sidecar.outbox) == 1, what="the send after resume")
    assert len(await core.store.list_runs(schedule_id=schedule.id)) == 1


async def test_delete_takes_effect_on_the_live_engine(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="in 10 minutes", text="never"
    )
    await core.services.schedules.delete(schedule.owner_id, schedule.id)
    await clock.advance(3600)
    await core.engine.tick()
    assert sidecar.requests == 0
    assert core.engine.status()["next_run"] is None


async def test_a_once_schedule_ends_done_after_it_fired(
    core: Core, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=f"{PHONE}, +4915199999999", when="in 10 minutes", text="bye"
    )
    await clock.advance(600)
    await core.engine.tick()
    await eventually(lambda: len(sidecar.outbox) == 2, what="both recipients")
    stored = await core.store.get_schedule(schedule.id)
    assert stored is not None and stored.state == "done"
    assert sorted(r.to for r in sidecar.outbox) == sorted([PHONE, "+4915199999999"])


async def test_a_schedule_report_shows_each_recipient(
    core: Core, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="in 1 minute", text="x"
    )
    await clock.advance(60)
    await core.engine.tick()
    (run,) = await core.store.list_runs(schedule_id=schedule.id)
    # A wake-up of the live scheduler may have fired it just before this tick did.
    await eventually(lambda: notifier.updates, what="the first report")
    first = notifier.updates[0]
    assert first[1].id == run.id and [d.status for d in first[2]] == [DeliveryStatus.queued]
    await eventually(lambda: notifier.last_statuses(run.id) == ["read"], what="final report")
