"""Logs: one line per event naming schedule, run and delivery ids; never a message body."""

from __future__ import annotations

import logging

import pytest

from core.app import Core
from core.domain.clock import FakeClock
from core.domain.models import DeliveryStatus
from tests.engine.conftest import PHONE, deliveries, eventually
from tests.fakes.sidecar import FakeSidecar

SECRET_TEXT = "the surprise party is at 8"


async def test_a_fired_run_and_its_delivery_are_logged_by_id_without_the_text(
    core: Core, clock: FakeClock, sidecar: FakeSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core")
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="every 2 hours", text=SECRET_TEXT
    )
    assert schedule.next_run_at is not None
    await clock.advance((schedule.next_run_at - clock.now()).total_seconds())
    await core.engine.tick()
    await eventually(lambda: len(sidecar.outbox) == 1, what="the send")
    (run,) = await core.store.list_runs(schedule_id=schedule.id)

    async def read() -> bool:
        return [d.status for d in await deliveries(core, run_id=run.id)] == [DeliveryStatus.read]

    await eventually(read, what="acks up to read")
    (delivery,) = await deliveries(core, run_id=run.id)

    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert f"engine: schedule {schedule.id} fired run {run.id} (schedule, 1 deliveries" in (
        "\n".join(lines)
    )
    ids = f"delivery {delivery.id} (schedule {schedule.id}, run {run.id})"
    assert f"sender: {ids} sent" in lines
    assert any(line == f"sender: {ids} is delivered (ack 2)" for line in lines)
    assert any(line == f"sender: {ids} is read (ack 3)" for line in lines)
    assert not [line for line in lines if SECRET_TEXT in line or PHONE in line]
