"""The sender's window: several sends in flight without pacing, one at a time with a gap, and
the caps hold either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.adapters.store.sqlite import SQLiteStore
from core.adapters.whatsapp import SentMessage, SessionHealth
from core.delivery import runs
from core.delivery.sender import Sender
from core.domain.clock import FakeClock
from core.domain.models import (
    DeliveryFilter,
    DeliveryStatus,
    Media,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    RunTrigger,
)
from core.domain.session import SessionState
from tests.engine.conftest import START, RecordingNotifier, eventually


class GatedSidecar:
    """A `SendPort` whose sends wait until the test opens the gate; it counts how many are
    in flight at once and every key it sent."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.keys: list[str] = []

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        self.keys.append(idempotency_key)
        return SentMessage(id=f"wa-{idempotency_key}", to=to, timestamp=None, duplicate=False)

    async def health(self, *, within_s: float | None = None) -> SessionHealth:
        return SessionHealth(status="ok", engine="fake", state=SessionState.WORKING, me=None)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 'wasched.db'}")
    yield opened
    await opened.close()


async def queue_deliveries(store: SQLiteStore, clock: FakeClock, count: int) -> int:
    """One run with `count` recipients, due now; return the run id."""
    schedule = await store.add_schedule(
        owner_id=7,
        recipients=[
            Recipient(kind=RecipientKind.phone, address=f"+4915100000{n:03d}")
            for n in range(count)
        ],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=clock.now() + timedelta(days=1)),
        next_run_at=clock.now() + timedelta(days=1),
        text="hi",
    )
    run, _ = await runs.start_run(
        store, clock, schedule, scheduled_for=clock.now(), trigger=RunTrigger.manual
    )
    return run.id


def make_sender(
    store: SQLiteStore, clock: FakeClock, sidecar: GatedSidecar, **pacing: Any
) -> Sender:
    settings: dict[str, Any] = {
        "gap_min_s": 0.0,
        "gap_max_s": 0.0,
        "hourly_cap": 10_000,
        "daily_cap": 100_000,
        "retry_max_attempts": 3,
        "report_every_s": 0.0,
    }
    settings.update(pacing)
    return Sender(store, clock, sidecar, RecordingNotifier(), worker="w1", **settings)


async def sent_statuses(store: SQLiteStore, run_id: int) -> list[DeliveryStatus]:
    return [d.status for d in await store.list_deliveries(DeliveryFilter(run_id=run_id))]


async def test_without_pacing_a_window_of_sends_is_in_flight_and_each_goes_out_once(
    store: SQLiteStore,
) -> None:
    clock = FakeClock(START)
    sidecar = GatedSidecar()
    run_id = await queue_deliveries(store, clock, 10)
    sender = make_sender(store, clock, sidecar, send_window=4)
    await sender.start()
    try:
        await eventually(lambda: sidecar.in_flight == 4, what="four sends in flight")
        for _ in range(20):
            await asyncio.sleep(0)
        assert sidecar.in_flight == 4
        sidecar.gate.set()
        await eventually(lambda: sender.sent_count == 10, what="all ten recorded")
    finally:
        await sender.stop()
    assert sidecar.most_in_flight == 4
    assert len(sidecar.keys) == len(set(sidecar.keys)) == 10
    assert await sent_statuses(store, run_id) == [DeliveryStatus.sent] * 10


async def test_with_a_gap_between_sends_only_one_is_in_flight(store: SQLiteStore) -> None:
    clock = FakeClock(START)
    sidecar = GatedSidecar()
    run_id = await queue_deliveries(store, clock, 3)
    sender = make_sender(store, clock, sidecar, gap_min_s=5.0, gap_max_s=5.0, send_window=16)
    await sender.start()
    try:
        await eventually(lambda: sidecar.in_flight == 1, what="the first send")
        for _ in range(20):
            await asyncio.sleep(0)
        assert sidecar.in_flight == 1
        sidecar.gate.set()
        await eventually(lambda: sender.sent_count == 1, what="the first send recorded")
        # The next one waits for the gap on the clock.
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(sidecar.keys) == 1
        for sent in (2, 3):
            await clock.advance(5)

            def recorded(n: int = sent) -> bool:
                return sender.sent_count == n

            await eventually(recorded, what=f"send {sent}")
    finally:
        await sender.stop()
    assert sidecar.most_in_flight == 1
    assert await sent_statuses(store, run_id) == [DeliveryStatus.sent] * 3


async def test_the_daily_cap_holds_with_a_window_and_delays_the_rest(
    store: SQLiteStore,
) -> None:
    clock = FakeClock(START)
    sidecar = GatedSidecar()
    sidecar.gate.set()
    run_id = await queue_deliveries(store, clock, 5)
    sender = make_sender(store, clock, sidecar, daily_cap=3, send_window=16)
    await sender.start()
    try:
        await eventually(lambda: sender.sent_count == 3, what="three sends")
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(sidecar.keys) == 3
        assert sorted(await sent_statuses(store, run_id)) == sorted(
            [DeliveryStatus.sent] * 3 + [DeliveryStatus.queued] * 2
        )
        await clock.advance(24 * 3600)
        await eventually(lambda: sender.sent_count == 5, what="the rest a day later")
    finally:
        await sender.stop()
    assert sidecar.most_in_flight <= 3
    assert len(set(sidecar.keys)) == 5
