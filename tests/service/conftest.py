"""Fixtures for the service layer: a real store (SQLite on tmp_path, and the real MongoDB
server in MONGODB_TEST_URI; every test runs on each), a fake clock, the real WhatsApp client
of the fake sidecar (over HTTP) and engine hooks that record what they were told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppClient
from core.domain.clock import FakeClock
from core.domain.models import Schedule
from core.services import Services
from core.services.ports import UnackedWatch
from tests.fakes.sidecar import FakeSidecar
from tests.store.conftest import BACKENDS, open_backend

# Saturday 28 November 2026, 10:00 UTC (11:00 in Berlin).
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OWNER = 1001


class RecordingHooks:
    def __init__(self) -> None:
        self.schedules_changes = 0
        self.deliveries_queues = 0
        self.ended: list[int] = []

    def schedules_changed(self) -> None:
        self.schedules_changes += 1

    def deliveries_queued(self) -> None:
        self.deliveries_queues += 1

    async def schedule_ended(self, schedule: Schedule) -> None:
        self.ended.append(schedule.id)


class RunningScheduler:
    def scheduler_state(self) -> str:
        return "running, 2 jobs"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in open_backend(request.param, tmp_path):
        yield opened


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
async def whatsapp() -> AsyncIterator[FakeSidecar]:
    """The sidecar, linked as "Me" with no contacts and no groups."""
    fake = FakeSidecar(
        me={"id": "4915199999999@c.us", "name": "Me"},
        address_book=[],
        group_list=[],
        qr="2@abc",
        pairing_code="ABCD-EFGH",
    )
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def whatsapp_client(whatsapp: FakeSidecar) -> AsyncIterator[WhatsAppClient]:
    client = WhatsAppClient(whatsapp.url)
    yield client
    await client.aclose()


@pytest.fixture
def unacked() -> UnackedWatch | None:
    """No ack watch (Check again / Send again are not available); a test module may give one."""
    return None


@pytest.fixture
def service(
    store: Store,
    clock: FakeClock,
    hooks: RecordingHooks,
    whatsapp_client: WhatsAppClient,
    unacked: UnackedWatch | None,
) -> Services:
    return Services(
        store,
        clock,
        default_timezone="Europe/Berlin",
        hooks=hooks,
        whatsapp=whatsapp_client,
        scheduler=RunningScheduler(),
        unacked=unacked,
    )
