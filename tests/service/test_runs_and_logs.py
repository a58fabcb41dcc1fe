"""Run now, retries, logs and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest

from core.adapters.store import Store
from core.domain.clock import FakeClock
from core.domain.errors import InvalidInput, InvalidState, NotFound
from core.domain.models import DeliveryStatus, RunTrigger, Schedule, ScheduleState
from core.domain.when import describe
from core.services import Services

from .conftest import OWNER, START, RecordingHooks


async def make_schedule(service: Services, *, recipients: str = "+12025550143") -> Schedule:
    return await service.schedules.create_schedule(
        OWNER, recipients=recipients, when="every day at 9:00", text="Hi, it is {time}"
    )


async def fail(store: Store, delivery_id: int, error: str = "not on WhatsApp") -> None:
    failed = await store.update_delivery(
        delivery_id,
        status=DeliveryStatus.failed,
        attempts=3,
        last_error=error,
        error_code="not_on_whatsapp",
        failed_at=START,
    )
    assert failed is not None


# --- run now ---------------------------------------------------------------------------------


async def test_run_now_on_a_paused_schedule_makes_a_manual_run_with_deliveries(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    schedule = await make_schedule(service, recipients="+12025550143, 120363041234567890@g.us")
    await service.schedules.pause(schedule.owner_id, schedule.id)
    run, deliveries = await service.runs.run_now(schedule.owner_id, schedule.id)
    assert run.trigger is RunTrigger.manual
    assert run.scheduled_for == START
    assert run.schedule_id == schedule.id
    assert run.fanned_out
    assert [d.status for d in deliveries] == [DeliveryStatus.queued] * 2
    # {time} is the moment of the manual run, in Berlin.
    assert deliveries[0].text == "Hi, it is 11:00"
    assert deliveries[1].idempotency_key.startswith(f"run{run.id}.")
    assert deliveries[1].idempotency_key.endswith(":120363041234567890@g.us")
    assert hooks.deliveries_queues == 1
    # The schedule itself is untouched: still paused, same next run.
    after = await store.get_schedule(schedule.id)
    assert after is not None
    assert after.state is ScheduleState.paused
    assert after.next_run_at == schedule.next_run_at


async def test_run_now_works_on_a_done_schedule_and_twice(service: Services, store: Store) -> None:
    schedule = await make_schedule(service)
    await store.update_schedule(schedule.id, state=ScheduleState.done, next_run_at=None)
    first, _ = await service.runs.run_now(schedule.owner_id, schedule.id)
    second, _ = await service.runs.run_now(schedule.owner_id, schedule.id)
    assert first.id != second.id


async def test_run_now_of_an_unknown_schedule(service: Services, hooks: RecordingHooks) -> None:
    with pytest.raises(NotFound, match="/list"):
        await service.runs.run_now(OWNER, 42)
    assert hooks.deliveries_queues == 0


# --- retries ---------------------------------------------------------------------------------


async def test_retry_a_failed_delivery_requeues_it_with_the_same_key(
    service: Services, store: Store, clock: FakeClock, hooks: RecordingHooks
) -> None:
    schedule = await make_schedule(service)
    _, [delivery] = await service.runs.run_now(schedule.owner_id, schedule.id)
    await fail(store, delivery.id)
    await clock.advance(60)
    retried = await service.runs.retry_delivery(delivery.owner_id, delivery.id)
    assert retried.status is DeliveryStatus.queued
    assert retried.attempts == 0
    assert retried.last_error is None
    assert retried.idempotency_key == delivery.idempotency_key
    assert retried.next_attempt_at == START + timedelta(seconds=60)
    assert hooks.deliveries_queues == 2


async def test_retry_a_missed_delivery(service: Services, store: Store) -> None:
    schedule = await make_schedule(service)
    _, [delivery] = await service.runs.run_now(schedule.owner_id, schedule.id)
    await store.update_delivery(delivery.id, status=DeliveryStatus.missed, missed_at=START)
    assert (
        await service.runs.retry_delivery(delivery.owner_id, delivery.id)
    ).status is DeliveryStatus.queued


@pytest.mark.parametrize(
    "status", [DeliveryStatus.queued, DeliveryStatus.sent, DeliveryStatus.read]
)
async def test_only_failed_or_missed_deliveries_can_be_retried(
    service: Services, store: Store, status: DeliveryStatus
) -> None:
    schedule = await make_schedule(service)
    _, [delivery] = await service.runs.run_now(schedule.owner_id, schedule.id)
    await store.update_delivery(delivery.id, status=status)
    with pytest.raises(InvalidState, match=f"is {status.value}"):
        await service.runs.retry_delivery(delivery.owner_id, delivery.id)
    stored = await store.get_delivery(delivery.id)
    assert stored is not None and stored.status is status


async def test_retry_unknown_delivery_or_run(service: Services) -> None:
    with pytest.raises(NotFound, match="/logs"):
        await service.runs.retry_delivery(OWNER, 7)
    with pytest.raises(NotFound, match="/logs"):
        await service.runs.retry_run(OWNER, 7)


async def test_retry_run_requeues_only_its_failed_deliveries(
    service: Services, store: Store
) -> None:
    schedule = await make_schedule(service, recipients="+12025550143, +4915123456789")
    run, [first, second] = await service.runs.run_now(schedule.owner_id, schedule.id)
    await fail(store, first.id)
    await store.update_delivery(second.id, status=DeliveryStatus.sent)
    retried = await service.runs.retry_run(run.owner_id, run.id)
    assert [d.id for d in retried] == [first.id]
    assert retried[0].status is DeliveryStatus.queued
    with pytest.raises(InvalidState, match="Nothing to retry"):
        await service.runs.retry_run(run.owner_id, run.id)


# --- logs ------------------------------------------------------------------------------------


async def test_logs_newest_first_by_schedule_owner_and_limit(service: Services) -> None:
    one = await make_schedule(service)
    two = await service.schedules.create_schedule(
        OWNER + 1, recipients="+4915123456789", when="in 1 hour", text="x"
    )
    _, [a] = await service.runs.run_now(one.owner_id, one.id)
    _, [b] = await service.runs.run_now(two.owner_id, two.id)
    _, [c] = await service.runs.run_now(one.owner_id, one.id)
    assert [d.id for d in await service.logs.logs(None)] == [c.id, b.id, a.id]
    assert [d.id for d in await service.logs.logs(None, schedule_id=one.id)] == [c.id, a.id]
    assert [d.id for d in await service.logs.logs(OWNER + 1)] == [b.id]
    assert [d.id for d in await service.logs.logs(None, limit=1)] == [c.id]
    with pytest.raises(InvalidInput):
        await service.logs.logs(None, limit=0)


# --- export ----------------------------------------------------------------------------------


async def test_export_csv_parses_back_with_every_column(service: Services, store: Store) -> None:
    await service.contacts.add_contact("=HYPERLINK(1)", "+4915123456789")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="=hyperlink(1), +12025550143", when="in 1 hour", text="Hi"
    )
    run, [contact_d, phone_d] = await service.runs.run_now(schedule.owner_id, schedule.id)
    await fail(store, contact_d.id, error="-bad number")
    sent = await store.update_delivery(
        phone_d.id,
        status=DeliveryStatus.read,
        whatsapp_id="true_1@c.us_ABC",
        sent_at=START,
        delivered_at=START,
        read_at=START,
        attempts=1,
    )
    assert sent is not None

    data = await service.logs.export_csv(None)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[0] == [
        "delivery id",
        "schedule",
        "schedule when",
        "run",
        "recipient",
        "recipient name",
        "message",
        "status",
        "attempts",
        "error",
        "whatsapp id",
        "created at",
        "queued at",
        "sending at",
        "sent at",
        "delivered at",
        "read at",
        "failed at",
        "missed at",
        "held at",
        "skipped at",
        "choice",
        "chosen by",
        "chosen at",
    ]
    assert len(rows) == 3
    first, second = (dict(zip(rows[0], row, strict=True)) for row in rows[1:])
    assert first["delivery id"] == str(contact_d.id)
    assert first["schedule"] == str(schedule.id)
    assert first["schedule when"] == describe(schedule.rule)
    assert first["run"] == str(run.id)
    assert first["recipient"] == "'+4915123456789"
    assert first["recipient name"] == "'=HYPERLINK(1)"
    assert first["message"] == "Hi"
    assert first["status"] == "failed"
    assert first["attempts"] == "3"
    assert first["error"] == "'-bad number"
    assert first["created at"] == first["failed at"] == START.isoformat()
    assert first["sent at"] == first["read at"] == first["held at"] == ""
    assert second["recipient"] == "'+12025550143" and second["recipient name"] == ""
    assert second["message"] == "Hi" and second["status"] == "read"
    assert second["whatsapp id"] == "true_1@c.us_ABC"
    for column in ("created at", "sent at", "delivered at", "read at"):
        assert second[column] == START.isoformat(), column


async def test_export_csv_has_each_message_text_and_marks_a_deleted_schedule(
    service: Services,
) -> None:
    kept = await make_schedule(service)
    gone = await make_schedule(service, recipients="+4915123456789")
    await service.schedules.edit_schedule(
        kept.owner_id, kept.id, text="=1+1 first line\nsecond line"
    )
    await service.runs.run_now(kept.owner_id, kept.id)
    await service.runs.run_now(gone.owner_id, gone.id)
    await service.schedules.delete(gone.owner_id, gone.id)
    rows = list(csv.DictReader(io.StringIO((await service.logs.export_csv(None)).decode())))
    assert rows[0]["message"] == "'=1+1 first line\nsecond line"
    assert rows[1]["message"].startswith("Hi, it is ") and "{time}" not in rows[1]["message"]
    assert rows[0]["schedule when"] == describe(kept.rule)
    assert rows[1]["schedule when"] == "(deleted)"
    assert rows[0]["queued at"] == START.isoformat()


async def test_export_csv_by_schedule_oldest_first(service: Services) -> None:
    one = await make_schedule(service)
    two = await make_schedule(service, recipients="+4915123456789")
    _, [a] = await service.runs.run_now(one.owner_id, one.id)
    await service.runs.run_now(two.owner_id, two.id)
    _, [c] = await service.runs.run_now(one.owner_id, one.id)
    rows = list(
        csv.reader(io.StringIO((await service.logs.export_csv(None, schedule_id=one.id)).decode()))
    )
    assert [row[0] for row in rows[1:]] == [str(a.id), str(c.id)]


async def test_export_reads_the_schedules_once_not_one_at_a_time(
    service: Services, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedules = [await make_schedule(service) for _ in range(3)]
    gone = await make_schedule(service, recipients="+4915123456789")
    for schedule in [*schedules, gone]:
        await service.runs.run_now(schedule.owner_id, schedule.id)
    await service.schedules.delete(gone.owner_id, gone.id)
    reads: list[str] = []
    for name in ("get_schedule", "list_schedules"):
        real = getattr(store, name)

        async def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            reads.append(_name)
            return await _real(*args, **kw)

        monkeypatch.setattr(store, name, counted)
    rows = list(csv.DictReader(io.StringIO((await service.logs.export_csv(OWNER)).decode())))
    assert reads == ["list_schedules"]
    assert [r["schedule when"] for r in rows] == [describe(s.rule) for s in schedules] + [
        "(deleted)"
    ]


async def test_export_of_nothing_is_the_header(service: Services) -> None:
    rows = list(csv.reader(io.StringIO((await service.logs.export_csv(None)).decode())))
    assert len(rows) == 1


async def test_get_run_returns_its_deliveries_in_recipient_order(service: Services) -> None:
    schedule = await make_schedule(service, recipients="+12025550143, +4915123456789")
    run, deliveries = await service.runs.run_now(schedule.owner_id, schedule.id)
    assert await service.runs.get_run(run.owner_id, run.id) == (run, deliveries)
    with pytest.raises(NotFound, match="/logs"):
        await service.runs.get_run(run.owner_id, run.id + 1)
