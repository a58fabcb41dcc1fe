"""Ownership lives in the services: someone else's schedule, run or delivery is answered
exactly like a missing one (`NotFound`, the same words), and nothing is changed or sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest

from core.adapters.store import Store
from core.delivery.ack_watch import Recheck
from core.domain.errors import NotFound
from core.domain.models import (
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Run,
    Schedule,
    ScheduleState,
)
from core.services import Services

from .conftest import OWNER, RecordingHooks

STRANGER = OWNER + 1
MISSING = 4242


class WatchAsked:
    """The ack watch's part behind Check again / Send again, recording what it was asked:
    every `sent` message counts as not on the phone yet, like `AckWatch` before any ack."""

    def __init__(self) -> None:
        self.checked: list[int] = []
        self.asked = 0

    def unacked(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        self.asked += 1
        return [d for d in deliveries if d.status is DeliveryStatus.sent]

    async def check_again(self, run_id: int) -> Recheck:
        self.checked.append(run_id)
        return Recheck(run_id=run_id, checked=0, statuses={})


@pytest.fixture
def watch() -> WatchAsked:
    return WatchAsked()


@pytest.fixture
def unacked(watch: WatchAsked) -> WatchAsked:
    """The service fixture (conftest) with this watch behind Check again / Send again."""
    return watch


async def owners_run(service: Services, store: Store) -> tuple[Schedule, Run, Delivery]:
    """The owner's schedule, run now, its one message sent (so Send again would send it)."""
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00", text="Hi"
    )
    run, [delivery] = await service.runs.run_now(OWNER, schedule.id)
    sent = await store.update_delivery(
        delivery.id,
        status=DeliveryStatus.sent,
        whatsapp_id="true_1@c.us_A",
        sent_at=run.created_at,
    )
    assert sent is not None
    return schedule, run, sent


# (acting user id, schedule or run id) -> the service's answer
Call = Callable[[int, int], Awaitable[object]]


async def missing_words(call: Awaitable[object]) -> str:
    with pytest.raises(NotFound) as missing:
        await call
    return str(missing.value)


async def test_someone_elses_schedule_is_no_such_schedule_and_stays_as_it_is(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00", text="Hi"
    )
    changes = hooks.schedules_changes
    schedules = service.schedules
    calls: dict[str, Call] = {
        "get": lambda owner, sid: schedules.get_schedule(owner, sid),
        "edit": lambda owner, sid: schedules.edit_schedule(owner, sid, text="Mine now"),
        "pause": lambda owner, sid: schedules.pause(owner, sid),
        "resume": lambda owner, sid: schedules.resume(owner, sid),
        "delete": lambda owner, sid: schedules.delete(owner, sid),
        "preview": lambda owner, sid: schedules.preview(owner, sid),
        "run now": lambda owner, sid: service.runs.run_now(owner, sid),
        "logs": lambda owner, sid: service.logs.logs(owner, schedule_id=sid),
        "export": lambda owner, sid: service.logs.export_csv(owner, schedule_id=sid),
    }
    for what, call in calls.items():
        theirs = await missing_words(call(STRANGER, schedule.id))
        missing = await missing_words(call(STRANGER, MISSING))
        assert theirs == missing.replace(str(MISSING), str(schedule.id)), what
        assert f"no schedule #{schedule.id}" in theirs, what
    stored = await store.get_schedule(schedule.id)
    assert stored == schedule and stored.state is ScheduleState.active
    assert hooks.schedules_changes == changes
    assert await store.list_deliveries(DeliveryFilter()) == []  # nothing was run now


async def test_someone_elses_run_is_no_such_run_and_nothing_is_sent_again(
    service: Services, store: Store, hooks: RecordingHooks, watch: WatchAsked
) -> None:
    _, run, sent = await owners_run(service, store)
    queued = hooks.deliveries_queues
    runs = service.runs
    calls: dict[str, Call] = {
        "get": lambda owner, rid: runs.get_run(owner, rid),
        "retry": lambda owner, rid: runs.retry_run(owner, rid),
        "check again": lambda owner, rid: runs.check_unacked(owner, rid),
        "not on the phone": lambda owner, rid: runs.unacked(owner, rid),
        "send again": lambda owner, rid: runs.send_unacked_again(owner, rid),
    }
    for what, call in calls.items():
        theirs = await missing_words(call(STRANGER, run.id))
        missing = await missing_words(call(STRANGER, MISSING))
        assert theirs == missing.replace(str(MISSING), str(run.id)), what
        assert f"no run #{run.id}" in theirs, what
    assert watch.checked == [] and watch.asked == 0
    assert hooks.deliveries_queues == queued
    assert [d.id for d in await service.logs.logs(None)] == [sent.id]  # no second copy
    # The owner is answered.
    assert (await runs.get_run(OWNER, run.id))[0] == run
    _, again = await runs.unacked(OWNER, run.id)
    assert [d.id for d in again] == [sent.id]


async def test_someone_elses_failed_delivery_is_not_retried(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    _, _, sent = await owners_run(service, store)
    failed = await store.update_delivery(
        sent.id, status=DeliveryStatus.failed, last_error="not on WhatsApp", failed_at=sent.sent_at
    )
    assert failed is not None
    queued = hooks.deliveries_queues
    theirs = await missing_words(service.runs.retry_delivery(STRANGER, sent.id))
    missing = await missing_words(service.runs.retry_delivery(STRANGER, MISSING))
    assert theirs == missing.replace(str(MISSING), str(sent.id))
    after = await store.get_delivery(sent.id)
    assert after is not None and after.status is DeliveryStatus.failed
    assert hooks.deliveries_queues == queued
    retried = await service.runs.retry_delivery(OWNER, sent.id)
    assert retried.status is DeliveryStatus.queued
