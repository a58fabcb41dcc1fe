"""Core's log at INFO over a whole send (queued to read): ids, never the number or the text."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.app import open_core
from core.domain.clock import FakeClock
from core.domain.models import DeliveryFilter, DeliveryStatus
from tests.engine.conftest import START, RecordingNotifier, eventually, settings_for
from tests.fakes.sidecar import FakeSidecar

DIGITS = "4915112345678"
SECRET_TEXT = "the key is under the blue flower pot"


@pytest.fixture
async def sidecar() -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key="logs-key-0123456789")
    await fake.start()
    yield fake
    await fake.close()


async def test_a_send_logs_no_number_no_text_and_no_key_at_info(
    tmp_path: Path, sidecar: FakeSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # every logger, as `wasched run` configures the root
    clock = FakeClock(START)
    settings = settings_for(f"sqlite:///{tmp_path / 'w.db'}", sidecar)
    async with open_core(settings, notifier=RecordingNotifier(), clock=clock) as core:
        sidecar.events_url = f"{core.url}/whatsapp/events"
        schedule = await core.services.schedules.create_schedule(
            7, recipients=f"+{DIGITS}", when="tomorrow 9:00", text=SECRET_TEXT
        )
        run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)

        async def read() -> bool:
            found = await core.store.list_deliveries(DeliveryFilter(run_id=run.id))
            return [d.status for d in found] == [DeliveryStatus.read]

        await eventually(read, what="the message read")
        (delivery,) = await core.store.list_deliveries(DeliveryFilter(run_id=run.id))
    assert DIGITS in delivery.idempotency_key and sidecar.outbox
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any(f"delivery {delivery.id} " in line and "sent" in line for line in lines), lines
    for line in lines:
        assert DIGITS not in line, line
        assert SECRET_TEXT not in line, line
        assert settings.WHATSAPP_API_KEY not in line, line
