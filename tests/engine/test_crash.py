"""Kill `python -m core` with SIGKILL in the middle of a burst, start it again: every delivery
ends exactly once in the sidecar's ledger or is recorded failed. Nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.adapters.store import open_store
from core.domain.models import DeliveryFilter, DeliveryStatus
from tests.engine.conftest import eventually
from tests.engine.processes import all_final, seed_burst, start_python
from tests.fakes.sidecar import FakeSidecar, free_port
from tests.store.conftest import SHARED_DATABASES, database_url_of

SCHEDULES = 20
RECIPIENTS = 10  # 200 deliveries


@pytest.fixture(params=SHARED_DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url_of(request.param, tmp_path) as url:
        yield url


@pytest.mark.slow
async def test_sigkill_mid_burst_loses_nothing_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    sidecar = FakeSidecar(api_key="crash-key", send_delay_s=0.02)
    await sidecar.start()
    port = free_port()
    while port == sidecar.port:
        port = free_port()
    sidecar.events_url = f"http://127.0.0.1:{port}/whatsapp/events"

    await seed_burst(database_url, schedules=SCHEDULES, recipients=RECIPIENTS)

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WHATSAPP_URL": sidecar.url,
        "WHATSAPP_API_KEY": "crash-key",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "SEND_GAP_MIN_S": "0",
        "SEND_GAP_MAX_S": "0",
        "SEND_HOURLY_CAP": "100000",
        "SEND_DAILY_CAP": "100000",
        "MISFIRE_GRACE_S": "3600",
        "TELEGRAM_BOT_TOKEN": "",
    }
    log = tmp_path / "core.log"
    first = await start_python("-m", "core", env=env, log=log)
    try:
        await eventually(lambda: len(sidecar.outbox) >= 40, within_s=300, what="some sends")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    sent_before_kill = len(sidecar.outbox)
    assert sent_before_kill < SCHEDULES * RECIPIENTS, "the kill came too late to prove much"

    second = await start_python("-m", "core", env=env, log=log)
    store = await open_store(database_url)
    try:
        # A bound, not a measure: FerretDB on SQLite takes about a second a send on a busy
        # machine (its sorts and filters are not pushed down to SQLite).
        await eventually(
            lambda: all_final(store, SCHEDULES * RECIPIENTS),
            within_s=600,
            what="every delivery to end",
        )
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0, log.read_text()[-3000:]

        found = await store.list_deliveries(DeliveryFilter())
        runs = await store.list_runs(limit=1000)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
        await store.close()
        await sidecar.close()

    # The fake, like the real sidecar, sends a key at most once (a resend after the crash is
    # answered as a duplicate), so its ledger holds each key once by construction; what is
    # checked is that every stored delivery's key is in it and nothing else is.
    ledger = sidecar.keys()
    failed = {d.idempotency_key for d in found if d.status is DeliveryStatus.failed}
    delivered = {d.idempotency_key for d in found if d.status is not DeliveryStatus.failed}
    assert delivered == set(ledger), "stored outcome and the sidecar's ledger disagree"
    assert failed == set(), "nothing had a reason to fail here"
    assert len(delivered) == SCHEDULES * RECIPIENTS
    assert len(runs) == SCHEDULES  # one run per occurrence, across both processes
