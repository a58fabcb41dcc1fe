"""A database that does not take writes, or that another process holds locked, while core runs:
reported by /healthz and /metrics within a bound, logged once, and what was due meanwhile is
caught up once writes work again."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import httpx
import pytest

from core.adapters.counters import EVENTS
from core.adapters.health import STORE_RECHECK_S
from core.adapters.store.sqlite import SQLiteStore, database_path
from core.app import Core
from core.commands.status import core_status
from core.domain.clock import FakeClock
from core.domain.errors import StoreError
from core.domain.models import DeliveryStatus, Recipient, RecipientKind, Rule, RuleKind, Schedule
from tests.engine.conftest import START, CoreFactory, deliveries, eventually
from tests.engine.disk import fill, small_disk
from tests.fakes.sidecar import FakeSidecar

PHONE = "+4915112345678"


async def get(core: Core, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{core.url}{path}") as response:
        if path == "/metrics":
            return response.status, await response.text()
        return response.status, await response.json()


async def once_at(
    core: Core, seconds: float, text: str = "due while the store failed"
) -> Schedule:
    at = START + timedelta(seconds=seconds)
    return await core.store.add_schedule(
        owner_id=7,
        recipients=[Recipient(kind=RecipientKind.phone, address=PHONE)],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=at),
        next_run_at=at,
        text=text,
    )


def sample(name: str) -> float:
    return EVENTS.get_sample_value(name) or 0.0


def metric(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


async def _attempted_once(core: Core, schedule_id: int) -> bool:
    found = await deliveries(core, schedule_id=schedule_id)
    return [(d.status, d.attempts) for d in found] == [(DeliveryStatus.queued, 1)]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk") as directory:
        yield directory


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


async def test_writes_failing_for_15_s_are_reported_logged_once_and_caught_up(
    disk: Path,  # first: unmounted after the core on it stopped
    start_core: CoreFactory,
    sidecar: FakeSidecar,
    clock: FakeClock,
    records: pytest.LogCaptureFixture,
) -> None:
    core = await start_core(DATABASE_URL=f"sqlite:///{disk / 'wasched.db'}")
    # One message whose first send fails: the sender tries it again (and writes) meanwhile.
    sidecar.fail_next("send_failed")
    retried = await once_at(core, 5, "tried again while the store failed")
    await clock.advance(5)
    await core.engine.tick()
    await eventually(
        lambda: _attempted_once(core, retried.id), what="the first send failed and recorded"
    )
    schedule = await once_at(core, 10)
    filler = fill(disk)
    records.clear()

    # Due at +10 s; the disk refuses every write for 15 s (a pass every 5 s, health asked).
    await clock.advance(5)
    for _ in range(4):
        await core.engine.tick()
        status, answer = await get(core, "/healthz")
        assert status == 503
        assert answer["ok"] is False and answer["store"] == "failing"
        assert "disk is full" in answer["database"]["error"]
        await clock.advance(5)
    status, text = await get(core, "/metrics")
    assert metric(text, "wasched_store_writable") == 0
    assert sidecar.outbox == [] and await core.store.list_runs(schedule_id=schedule.id) == []
    (waiting,) = await deliveries(core, schedule_id=retried.id)
    assert waiting.status is DeliveryStatus.queued and waiting.next_attempt_at < clock.now()

    failing = [r for r in records.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in failing] == [
        "the database does not take writes: the database cannot grow: the disk is full "
        "(database or disk is full): free space on the disk that holds it"
    ]
    assert not [r for r in records.records if r.exc_info], "a traceback per failed write"

    filler.unlink()
    await core.engine.tick()
    await eventually(lambda: len(sidecar.outbox) == 2, what="the caught-up sends")
    (run,) = await core.store.list_runs(schedule_id=schedule.id)
    assert run.late_by_s == 20
    assert sorted(r.text for r in sidecar.outbox) == [
        "due while the store failed",
        "tried again while the store failed",
    ]
    recovered = [r.getMessage() for r in records.records if r.name == "core.adapters.health"]
    assert recovered[1:] == ["the database takes writes again (after 20 s of failures)"]
    status, answer = await get(core, "/healthz")
    assert status == 200 and answer["store"] == "ok"
    status, text = await get(core, "/metrics")
    assert metric(text, "wasched_store_writable") == 1


async def test_healthz_answers_busy_while_another_process_holds_the_lock_and_nothing_is_lost(
    core: Core, database_url: str, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    schedule = await once_at(core, 10, "held back by a lock")
    lateness = sample("wasched_run_lateness_seconds_sum")
    send_delay = sample("wasched_delivery_send_delay_seconds_sum")
    sends = sample("wasched_delivery_send_delay_seconds_count")

    holder = sqlite3.connect(database_path(database_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    try:
        await clock.advance(10)
        # The engine's write waits for the lock (SQLite's busy timeout), holding the store.
        firing = asyncio.create_task(core.engine.tick())
        store = cast(SQLiteStore, core.store)
        await eventually(lambda: store._lock.locked(), what="the engine's write")
        status, answer = await get(core, "/healthz")
        assert status == 503
        assert answer["ok"] is False and answer["store"] == "busy"
        assert core.store_health.checking, "the store's write check finished under the lock"
        assert not firing.done()
        await clock.advance(8)  # the lock is held 8 s past the due time
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    await firing
    await eventually(lambda: len(sidecar.outbox) == 1, what="the send after the lock")
    (run,) = await core.store.list_runs(schedule_id=schedule.id)
    (delivery,) = await deliveries(core, run_id=run.id)
    # Sent (the fake sidecar's acks may already have moved it on to delivered or read).
    assert delivery.status in (DeliveryStatus.sent, DeliveryStatus.delivered, DeliveryStatus.read)
    # Fired on time by the pass's reading; stored and sent 8 s late, and /metrics says so.
    assert run.late_by_s == 0
    assert sample("wasched_run_lateness_seconds_sum") - lateness == 8
    await eventually(
        lambda: sample("wasched_delivery_send_delay_seconds_count") - sends == 1,
        what="the send delay counted",
    )
    assert sample("wasched_delivery_send_delay_seconds_sum") - send_delay == 8
    await eventually(lambda: not core.store_health.checking, what="the write check")
    status, answer = await get(core, "/healthz")
    assert status == 200 and answer["store"] == "ok"


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_every_figure_the_readme_names_for_health_is_served(core: Core) -> None:
    readme = await asyncio.to_thread(README.read_text, encoding="utf-8")
    section = readme.split("## Health and metrics", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(wasched_[a-z_]+)`", section))
    _, text = await get(core, "/metrics")
    served = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert named >= {"wasched_store_writable", "wasched_delivery_send_delay_seconds"}
    assert named <= served


async def test_a_store_that_failed_is_tried_again_and_reported_writable_by_itself(
    disk: Path,  # first: unmounted after the core on it stopped
    start_core: CoreFactory,
    clock: FakeClock,
    records: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = await start_core(DATABASE_URL=f"sqlite:///{disk / 'wasched.db'}")
    filler = fill(disk)
    status, _ = await get(core, "/healthz")  # nothing is due: only the health check writes
    assert status == 503
    monkeypatch.setenv("WASCHED_DATA_DIR", str(disk.parent))
    async with httpx.AsyncClient(timeout=5) as client:
        shown = await core_status(core.settings, client)  # as `wasched status` shows it
    assert shown.notes == (
        "database: does not take writes: the database cannot grow: the disk is full "
        "(database or disk is full): free space on the disk that holds it",
    )
    _, text = await get(core, "/metrics")
    assert metric(text, "wasched_store_writable") == 0

    filler.unlink()
    await clock.advance(STORE_RECHECK_S)
    await eventually(lambda: core.store_health.writable, what="the store tried again")
    _, text = await get(core, "/metrics")
    assert metric(text, "wasched_store_writable") == 1
    said = [r.getMessage() for r in records.records if r.name == "core.adapters.health"]
    assert len(said) == 2 and said[1].startswith("the database takes writes again")


async def test_a_store_error_that_is_no_refused_write_keeps_its_traceback_and_health(
    start_core: CoreFactory,
    clock: FakeClock,
    records: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One schedule's write failing for its own reason (not a read-only or full database) is
    logged with the schedule and its traceback; the database is not reported as failing."""
    core = await start_core()
    schedule = await once_at(core, 5)

    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("The SQLite database failed: datatype mismatch")

    monkeypatch.setattr(core.store, "insert_run", broken)
    records.clear()
    await clock.advance(5)
    await core.engine.tick()

    (logged,) = [r for r in records.records if r.exc_info]
    assert logged.getMessage() == f"engine: schedule {schedule.id} could not fire"
    assert not [r for r in records.records if r.name == "core.adapters.health"]
    _status, answer = await get(core, "/healthz")
    assert answer["store"] == "ok"
