"""Core as it runs (`open_core`), against the fake sidecar over real HTTP and SQLite on disk.

Time is a `FakeClock` unless a test asks for the system clock; waiting for background work
uses `eventually`, which polls and never asserts on how long something took.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.adapters.store.sqlite import SQLiteStore
from core.app import Core, open_core
from core.config import Settings, load_settings
from core.delivery.asker import Question
from core.delivery.notifier import Told
from core.delivery.sender import Sender, SendPort
from core.delivery.spikes import Spike
from core.domain.clock import Clock, FakeClock
from core.domain.models import Ask, Delivery, DeliveryFilter, Run, Schedule
from core.domain.session import SessionFailure
from tests.fakes.sidecar import FakeSidecar, free_port

START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
PHONE = "+4915112345678"


class RecordingNotifier:
    """A Notifier that remembers every event, as the bot would receive them."""

    def __init__(self) -> None:
        self.updates: list[tuple[Schedule | None, Run, list[Delivery]]] = []
        self.missed: list[tuple[Schedule, Run, float]] = []
        self.sessions: list[tuple[str, dict[str, str] | None]] = []
        # The failure that came with each of `sessions`.
        self.failures: list[SessionFailure | None] = []
        self.qrs: list[str] = []
        # (run, its deliveries, now, tell): `tell` the first time for a run, then False.
        self.unacked: list[tuple[Run, list[Delivery], datetime, bool]] = []
        # (schedule, occurrences sent) per `schedule_done`.
        self.done: list[tuple[Schedule, int]] = []
        # (run, spike) per run cut short by a failure spike.
        self.auto_paused: list[tuple[Run, Spike]] = []
        # Ask me first: each question asked, and each policy followed for lack of an answer.
        self.questions: list[Question] = []
        self.unanswered: list[tuple[Schedule, Ask]] = []

    async def run_updated(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery]
    ) -> None:
        self.updates.append((schedule, run, deliveries))

    async def run_missed(self, schedule: Schedule, run: Run, late_by_s: float) -> None:
        self.missed.append((schedule, run, late_by_s))

    async def session_changed(
        self, state: str, me: dict[str, str] | None, failure: SessionFailure | None = None
    ) -> None:
        self.sessions.append((state, me))
        self.failures.append(failure)

    async def qr_available(self, qr: str) -> None:
        self.qrs.append(qr)

    async def deliveries_unacked(
        self,
        schedule: Schedule | None,
        run: Run,
        deliveries: list[Delivery],
        *,
        now: datetime,
        after_s: float,
        tell: bool = True,
    ) -> None:
        self.unacked.append((run, deliveries, now, tell))

    async def schedule_auto_paused(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery], *, spike: Spike
    ) -> None:
        self.auto_paused.append((run, spike))

    async def ask_before_run(self, question: Question, told: Told) -> None:
        self.questions.append(question)
        await told()

    async def ask_unanswered(self, schedule: Schedule, ask: Ask) -> None:
        self.unanswered.append((schedule, ask))

    def last_statuses(self, run_id: int) -> list[str]:
        for _, run, deliveries in reversed(self.updates):
            if run.id == run_id:
                return [d.status.value for d in deliveries]
        return []

    async def schedule_done(self, schedule: Schedule, occurrences: int) -> None:
        self.done.append((schedule, occurrences))


async def eventually(
    check: Callable[[], Any], *, within_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `check` (sync or async) until it is true; fail after `within_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def deliveries(core: Core, **query: Any) -> list[Delivery]:
    return await core.store.list_deliveries(DeliveryFilter(order="oldest", **query))


def settings_for(database_url: str, sidecar: FakeSidecar, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": free_port(),
        "WHATSAPP_URL": sidecar.url,
        "WHATSAPP_API_KEY": sidecar.api_key,
        "SEND_GAP_MIN_S": 0,
        "SEND_GAP_MAX_S": 0,
        "SEND_HOURLY_CAP": 10_000,
        "SEND_DAILY_CAP": 100_000,
        "RETRY_MAX_ATTEMPTS": 3,
        "MISFIRE_GRACE_S": 3600,
        "DEFAULT_TIMEZONE": "UTC",
    }
    values.update(overrides)
    return load_settings(**values)


CoreFactory = Callable[..., Awaitable[Core]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wasched.db'}"


@pytest.fixture
async def sidecar() -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key="test-key")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def start_core(
    clock: FakeClock, notifier: RecordingNotifier, database_url: str, sidecar: FakeSidecar
) -> AsyncIterator[CoreFactory]:
    """Start a core (several may share the database); all are stopped after the test."""
    stack: list[Any] = []

    async def start(
        *, clock_: Clock | None = None, worker: str | None = None, **overrides: Any
    ) -> Core:
        settings = settings_for(database_url, sidecar, **overrides)
        manager = open_core(settings, notifier=notifier, clock=clock_ or clock, worker=worker)
        core = await manager.__aenter__()
        stack.append(manager)
        if sidecar.events_url is None:
            sidecar.events_url = f"{core.url}/whatsapp/events"
        return core

    yield start
    for manager in reversed(stack):
        await manager.__aexit__(None, None, None)


@pytest.fixture
async def core(start_core: CoreFactory) -> Core:
    return await start_core()


class SlowStore(SQLiteStore):
    """The SQLite store on a slow disk: once `slow` is set, the next call of `stall_on`
    (`claim_delivery` or `next_delivery_due_at`) waits, `entered` set, until the test opens
    `gate` (the test moves the clock meanwhile)."""

    slow = False
    stall_on = "claim_delivery"
    entered: asyncio.Event
    gate: asyncio.Event

    async def _stall(self, call: str) -> None:
        if self.slow and call == self.stall_on:
            self.slow = False
            self.entered.set()
            await self.gate.wait()

    async def claim_delivery(
        self, *, now: datetime, lease_s: float, worker: str
    ) -> Delivery | None:
        await self._stall("claim_delivery")
        return await super().claim_delivery(now=now, lease_s=lease_s, worker=worker)

    async def next_delivery_due_at(self) -> datetime | None:
        await self._stall("next_delivery_due_at")
        return await super().next_delivery_due_at()


@pytest.fixture
async def slow_store(tmp_path: Path) -> AsyncIterator[SlowStore]:
    """A `SlowStore` on a fresh SQLite file, not slow yet; closed after the test."""
    store = await SlowStore.open(f"sqlite:///{tmp_path / 'wasched.db'}")
    assert isinstance(store, SlowStore)
    store.entered, store.gate = asyncio.Event(), asyncio.Event()
    yield store
    await store.close()


def bare_sender(store: SQLiteStore, clock: Clock, sidecar: SendPort, **settings: Any) -> Sender:
    """A Sender of its own on `store` (no core around it), with no pacing and no cap in the
    way unless `settings` say otherwise."""
    values: dict[str, Any] = {
        "gap_min_s": 0,
        "gap_max_s": 0,
        "hourly_cap": 10_000,
        "daily_cap": 100_000,
        "retry_max_attempts": 3,
        "report_every_s": 0,
        "worker": "w1",
    }
    return Sender(store, clock, sidecar, RecordingNotifier(), **(values | settings))
