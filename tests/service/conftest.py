"""Fixtures for the service layer: a real store (SQLite on tmp_path, and the real MongoDB
server in MONGODB_TEST_URI; every test runs on each), a fake clock, a fake WhatsApp port and
engine hooks that record what they were told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.adapters.store import Store
from core.domain.clock import FakeClock
from core.domain.errors import WhatsAppError, WhatsAppNotReady
from core.domain.session import SessionFailure
from core.services.scheduling import Scheduling
from tests.store.conftest import BACKENDS, open_backend

# Saturday 28 November 2026, 10:00 UTC (11:00 in Berlin).
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OWNER = 1001


@dataclass(frozen=True)
class Health:
    status: str
    engine: str
    state: str
    me: dict[str, str] | None
    failure: SessionFailure | None = None


@dataclass(frozen=True)
class Qr:
    qr: str
    png_base64: str


@dataclass(frozen=True)
class WaContact:
    id: str
    name: str
    number: str | None


@dataclass(frozen=True)
class WaGroup:
    id: str
    name: str
    participants: tuple[str, ...]


@dataclass
class FakeWhatsApp:
    """Answers like the sidecar client; `error` makes every call raise it."""

    state: str = "WORKING"
    me: dict[str, str] | None = field(
        default_factory=lambda: {"id": "4915199999999@c.us", "name": "Me"}
    )
    address_book: list[WaContact] = field(default_factory=list)
    group_list: list[WaGroup] = field(default_factory=list)
    error: WhatsAppError | None = None
    failure: SessionFailure | None = None
    calls: list[str] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.error is not None:
            raise self.error

    async def health(self) -> Health:
        self._call("health")
        return Health(
            status="ok", engine="fake", state=self.state, me=self.me, failure=self.failure
        )

    def _waiting_to_link(self) -> None:
        # Like the sidecar: a QR or pairing code only while the session waits to be linked.
        if self.state != "SCAN_QR_CODE":
            raise WhatsAppNotReady(f"WhatsApp is {self.state}; there is nothing to scan.")

    async def qr(self) -> Qr:
        self._call("qr")
        self._waiting_to_link()
        return Qr(qr="2@abc", png_base64="iVBORw0KGgo=")

    async def pairing_code(self, phone: str) -> str:
        self._call(f"pairing_code {phone}")
        self._waiting_to_link()
        return "ABCD-EFGH"

    async def logout(self) -> None:
        self._call("logout")

    async def contacts(self) -> list[WaContact]:
        self._call("contacts")
        return list(self.address_book)

    async def groups(self) -> list[WaGroup]:
        self._call("groups")
        # Like the sidecar: the account's groups only while the session works.
        if self.state != "WORKING":
            raise WhatsAppNotReady(f"WhatsApp is not ready to list groups (state {self.state})")
        return list(self.group_list)


class RecordingHooks:
    def __init__(self) -> None:
        self.schedules_changes = 0
        self.deliveries_queues = 0

    def schedules_changed(self) -> None:
        self.schedules_changes += 1

    def deliveries_queued(self) -> None:
        self.deliveries_queues += 1


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
def whatsapp() -> FakeWhatsApp:
    return FakeWhatsApp()


@pytest.fixture
def service(
    store: Store, clock: FakeClock, hooks: RecordingHooks, whatsapp: FakeWhatsApp
) -> Scheduling:
    return Scheduling(
        store,
        clock,
        default_timezone="Europe/Berlin",
        hooks=hooks,
        whatsapp=whatsapp,
        scheduler=RunningScheduler(),
    )
