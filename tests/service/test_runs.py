"""The fan-out path shared by the engine and run-now: runs.start_run and runs.complete_run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from core.adapters.store import Store
from core.delivery.runs import complete_run, idempotency_key, start_run
from core.domain.clock import FakeClock
from core.domain.errors import DuplicateRun
from core.domain.models import (
    WHATSAPP_TEXT_LIMIT,
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
)
from core.domain.recipients import contact_recipient

from .conftest import OWNER

# 2026-11-30 08:00 UTC is Monday 09:00 in Berlin.
OCCURRENCE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
RULE = Rule(kind=RuleKind.cron, timezone="Europe/Berlin", cron="0 9 * * 1")
PHONE = Recipient(kind=RecipientKind.phone, address="+12025550143")
GROUP = Recipient(kind=RecipientKind.group, address="120363041234567890@g.us")


async def add_schedule(
    store: Store,
    recipients: list[Recipient],
    *,
    text: str | None = None,
    template_id: int | None = None,
) -> Schedule:
    return await store.add_schedule(
        owner_id=OWNER,
        recipients=recipients,
        rule=RULE,
        next_run_at=OCCURRENCE,
        text=text,
        template_id=template_id,
    )


async def test_start_run_stores_one_rendered_delivery_per_recipient(
    store: Store, clock: FakeClock
) -> None:
    anna = await store.add_contact("Anna Maria", "+4915123456789", fields={"company": "ACME"})
    schedule = await add_schedule(
        store, [contact_recipient(anna), PHONE, GROUP], text="Hi {first_name}, {weekday} {time}"
    )
    run, deliveries = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.schedule
    )
    assert run.trigger is RunTrigger.schedule
    assert run.scheduled_for == OCCURRENCE
    assert run.fanned_out
    assert [d.recipient for d in deliveries] == [
        "+4915123456789",
        "+12025550143",
        "120363041234567890@g.us",
    ]
    assert [d.text for d in deliveries] == [
        "Hi Anna, Monday 09:00",
        "Hi +12025550143, Monday 09:00",
        "Hi 120363041234567890@g.us, Monday 09:00",
    ]
    assert deliveries[0].recipient_name == "Anna Maria"
    created_ms = (run.created_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert [d.idempotency_key for d in deliveries] == [
        f"run{run.id}.{created_ms}:+4915123456789",
        f"run{run.id}.{created_ms}:+12025550143",
        f"run{run.id}.{created_ms}:120363041234567890@g.us",
    ]
    assert all(d.status is DeliveryStatus.queued for d in deliveries)
    assert await store.unfinished_runs() == []
    stored = await store.get_run(run.id)
    assert stored is not None and stored.fanned_out


async def test_the_same_scheduled_occurrence_twice_is_a_duplicate_run(
    store: Store, clock: FakeClock
) -> None:
    schedule = await add_schedule(store, [PHONE], text="Hello")
    await start_run(store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.schedule)
    with pytest.raises(DuplicateRun):
        await start_run(
            store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.catch_up
        )
    assert len(await store.list_deliveries(DeliveryFilter(schedule_id=schedule.id))) == 1


async def test_manual_runs_of_the_same_moment_are_separate_runs(
    store: Store, clock: FakeClock
) -> None:
    schedule = await add_schedule(store, [PHONE], text="Hello")
    first, _ = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.manual
    )
    second, deliveries = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.manual
    )
    assert first.id != second.id
    assert deliveries[0].idempotency_key == idempotency_key(second, PHONE)
    assert idempotency_key(first, PHONE) != idempotency_key(second, PHONE)


async def test_complete_run_finishes_a_fan_out_cut_by_a_crash(
    store: Store, clock: FakeClock
) -> None:
    schedule = await add_schedule(store, [PHONE, GROUP], text="Hello {name}")
    # The crash: the run was claimed and one delivery stored, then the process died.
    run = await store.insert_run(
        schedule_id=schedule.id,
        owner_id=OWNER,
        scheduled_for=OCCURRENCE,
        trigger=RunTrigger.schedule,
    )
    [before] = await store.add_deliveries(
        run,
        [
            NewDelivery(
                recipient=PHONE.address,
                text="Hello +12025550143",
                idempotency_key=idempotency_key(run, PHONE),
            )
        ],
        now=clock.now(),
    )
    assert [r.id for r in await store.unfinished_runs()] == [run.id]

    deliveries = await complete_run(store, clock, run)

    assert [d.recipient for d in deliveries] == [PHONE.address, GROUP.address]
    assert deliveries[0].id == before.id
    assert len(await store.list_deliveries(DeliveryFilter(run_id=run.id))) == 2
    assert await store.unfinished_runs() == []
    # Completing again changes nothing.
    again = await complete_run(store, clock, run)
    assert [d.id for d in again] == [d.id for d in deliveries]


async def test_complete_run_of_a_deleted_schedule_ends_the_run_without_deliveries(
    store: Store, clock: FakeClock
) -> None:
    schedule = await add_schedule(store, [PHONE], text="Hello")
    run = await store.insert_run(
        schedule_id=schedule.id,
        owner_id=OWNER,
        scheduled_for=OCCURRENCE,
        trigger=RunTrigger.schedule,
    )
    await store.delete_schedule(schedule.id)
    assert await complete_run(store, clock, run) == []
    assert await store.unfinished_runs() == []
    stored = await store.get_run(run.id)
    assert stored is not None and stored.outcome is not None


async def test_template_is_read_at_fan_out_time(store: Store, clock: FakeClock) -> None:
    template = await store.add_template("greeting", "Good morning {name}, it is {date}")
    schedule = await add_schedule(store, [PHONE], template_id=template.id)
    _, [delivery] = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.schedule
    )
    assert delivery.text == "Good morning +12025550143, it is 2026-11-30"


async def test_a_deleted_template_fails_the_deliveries_with_the_reason(
    store: Store, clock: FakeClock
) -> None:
    template = await store.add_template("greeting", "Good morning")
    schedule = await add_schedule(store, [PHONE], template_id=template.id)
    await store.delete_template(template.id)
    _, [delivery] = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.schedule
    )
    assert delivery.status is DeliveryStatus.failed
    assert delivery.last_error is not None and "deleted" in delivery.last_error
    assert delivery.failed_at == clock.now()


async def test_a_text_too_long_after_rendering_fails_only_that_recipient(
    store: Store, clock: FakeClock
) -> None:
    long_name = "N" * 20
    anna = await store.add_contact(long_name, "+4915123456789")
    text = "x" * (WHATSAPP_TEXT_LIMIT - 16) + "{name}"
    schedule = await add_schedule(store, [contact_recipient(anna), PHONE], text=text)
    _, deliveries = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.schedule
    )
    assert [d.status for d in deliveries] == [DeliveryStatus.failed, DeliveryStatus.queued]
    assert deliveries[0].last_error is not None
    assert "characters" in deliveries[0].last_error
    assert deliveries[0].error_code == "render_failed"


def test_idempotency_keys_are_stable_for_a_run_and_differ_across_databases() -> None:
    """A new database numbers runs from 1 again while the sidecar still remembers the old
    database's keys: run #1 of each must not share a key, or the new one is never sent."""
    created = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    run = Run(
        id=1,
        schedule_id=1,
        owner_id=OWNER,
        scheduled_for=OCCURRENCE,
        trigger=RunTrigger.schedule,
        created_at=created,
    )
    # Stores keep milliseconds: the run read back has the same key.
    read_back = run.model_copy(update={"created_at": created.replace(microsecond=123000)})
    assert idempotency_key(run, PHONE) == idempotency_key(read_back, PHONE)
    other_database = run.model_copy(update={"created_at": created + timedelta(milliseconds=1)})
    assert idempotency_key(run, PHONE) != idempotency_key(other_database, PHONE)


async def test_a_render_failure_is_logged_once_when_a_crashed_run_is_completed(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The failed delivery was stored before the crash; finishing the run must not say it again.
    template = await store.add_template("greeting", "Good morning")
    schedule = await add_schedule(store, [PHONE, GROUP], template_id=template.id)
    await store.delete_template(template.id)
    caplog.set_level(logging.WARNING, logger="core.delivery.runs")
    run, _ = await start_run(
        store, clock, schedule, scheduled_for=OCCURRENCE, trigger=RunTrigger.schedule
    )
    await complete_run(store, clock, run)
    said = [r.getMessage() for r in caplog.records if "cannot render" in r.getMessage()]
    assert len(said) == 2  # one line a recipient, at the fan-out that stored it
