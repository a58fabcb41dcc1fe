"""After downtime: occurrences within the misfire grace run once, late; older ones are missed."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.adapters.store.sqlite import SQLiteStore
from core.domain.clock import FakeClock
from core.domain.models import (
    DeliveryStatus,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    RunTrigger,
    Schedule,
)
from tests.engine.conftest import (
    PHONE,
    START,
    CoreFactory,
    RecordingNotifier,
    deliveries,
    eventually,
)
from tests.fakes.sidecar import FakeSidecar

TO = [Recipient(kind=RecipientKind.phone, address=PHONE)]


async def stored_while_down(database_url: str, rule: Rule, next_run_at: datetime) -> Schedule:
    """A schedule written before core starts, as if core had been down since."""
    store = await SQLiteStore.open(database_url)
    try:
        return await store.add_schedule(
            owner_id=7, recipients=TO, rule=rule, next_run_at=next_run_at, text="late hello"
        )
    finally:
        await store.close()


async def test_missed_occurrences_within_grace_are_sent_once_late(
    start_core: CoreFactory, database_url: str, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    # Every 10 minutes; down for the last 30: three occurrences missed, all within the grace.
    every = Rule(
        kind=RuleKind.interval, timezone="UTC", every_seconds=600, start=START - timedelta(hours=1)
    )
    schedule = await stored_while_down(database_url, every, START - timedelta(minutes=30))

    core = await start_core(MISFIRE_GRACE_S=3600)

    await eventually(lambda: len(sidecar.outbox) == 1, what="the catch-up send")
    (run,) = await core.store.list_runs(schedule_id=schedule.id)
    assert run.trigger is RunTrigger.catch_up
    assert run.late_by_s == 1800
    after = await core.store.get_schedule(schedule.id)
    assert after is not None and after.next_run_at == START + timedelta(minutes=10)
    await core.engine.tick()
    assert len(await core.store.list_runs(schedule_id=schedule.id)) == 1
    assert sidecar.requests == 1


async def test_occurrences_beyond_grace_are_recorded_missed_and_reported(
    start_core: CoreFactory,
    database_url: str,
    sidecar: FakeSidecar,
    notifier: RecordingNotifier,
) -> None:
    # Every 10 minutes from 12:05 ago; the last occurrence (5 minutes ago) is within a
    # 10-minute grace, every earlier one is not.
    every = Rule(
        kind=RuleKind.interval,
        timezone="UTC",
        every_seconds=600,
        start=START - timedelta(hours=2, minutes=15),
    )
    recurring = await stored_while_down(database_url, every, START - timedelta(hours=2, minutes=5))
    once_at = START - timedelta(hours=3)
    once = await stored_while_down(
        database_url, Rule(kind=RuleKind.once, timezone="UTC", at=once_at), once_at
    )

    core = await start_core(MISFIRE_GRACE_S=600)

    # The recurring schedule: one missed run for the old occurrences, one catch-up run.
    runs = sorted(await core.store.list_runs(schedule_id=recurring.id), key=lambda r: r.id)
    assert [(r.trigger, r.outcome) for r in runs] == [
        (RunTrigger.catch_up, "missed"),
        (RunTrigger.catch_up, None),
    ]
    assert runs[0].scheduled_for == START - timedelta(hours=2, minutes=5)
    assert runs[1].scheduled_for == START - timedelta(minutes=5)
    missed = await deliveries(core, run_id=runs[0].id)
    assert [d.status for d in missed] == [DeliveryStatus.missed]

    # The one-time schedule: missed, done, nothing sent.
    (once_run,) = await core.store.list_runs(schedule_id=once.id)
    assert once_run.outcome == "missed"
    done = await core.store.get_schedule(once.id)
    assert done is not None and done.state == "done"

    assert sorted(s.id for s, _, _ in notifier.missed) == sorted([recurring.id, once.id])
    await eventually(lambda: len(sidecar.outbox) == 1, what="the catch-up send")
    assert sidecar.outbox[0].idempotency_key.startswith(f"run{runs[1].id}.")


async def test_a_run_cut_short_before_fan_out_is_completed_at_start(
    start_core: CoreFactory, database_url: str, sidecar: FakeSidecar
) -> None:
    at = START - timedelta(minutes=1)
    schedule = await stored_while_down(
        database_url, Rule(kind=RuleKind.once, timezone="UTC", at=at), at
    )
    store = await SQLiteStore.open(database_url)
    run = await store.insert_run(
        schedule_id=schedule.id,
        owner_id=7,
        scheduled_for=at,
        trigger=RunTrigger.schedule,
    )
    await store.close()  # crash: run claimed, nothing fanned out, next_run_at not moved

    core = await start_core()

    await eventually(lambda: len(sidecar.outbox) == 1, what="the completed run's send")
    assert sidecar.outbox[0].idempotency_key.startswith(f"run{run.id}.")
    assert len(await core.store.list_runs(schedule_id=schedule.id)) == 1
    after = await core.store.get_schedule(schedule.id)
    assert after is not None and after.state == "done"
