"""Two cores on one store (a SQLite file, a real MongoDB server) never send an occurrence twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.domain.clock import FakeClock
from core.domain.models import DeliveryStatus
from tests.engine.conftest import PHONE, CoreFactory, eventually
from tests.fakes.sidecar import FakeSidecar
from tests.store.conftest import (
    FERRETDB_NOT_ATOMIC,
    SHARED_DATABASES,
    backend_of,
    database_url_of,
    expect_ferretdb_gap,
)


@pytest.fixture(params=SHARED_DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The cores' shared database: a SQLite file, or a fresh database on the real server."""
    async with database_url_of(request.param, tmp_path) as url:
        yield url


async def test_two_engines_and_senders_on_one_store_send_each_occurrence_once(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    # On FerretDB two senders claim the same delivery (the sidecar refuses the second send of
    # its key, so `sidecar.requests` counts more than the sends).
    expect_ferretdb_gap(request, backend_of(request, "database_url"), FERRETDB_NOT_ATOMIC)
    one = await start_core(worker="one")
    two = await start_core(worker="two")
    recipients = ", ".join(f"+49151000000{i:02d}" for i in range(5))
    for n in range(20):
        await one.services.schedules.create_schedule(
            7, recipients=recipients if n % 2 else PHONE, when="every 1 hour", text=f"#{n}"
        )
    expected = 10 * 5 + 10 * 1

    for occurrence in range(1, 4):  # three occurrences, each raced by both engines
        await clock.advance(3600)
        await asyncio.gather(one.engine.tick(), two.engine.tick(), one.engine.tick())
        one.sender.deliveries_queued()
        two.sender.deliveries_queued()
        # Let the sends finish before time moves on: moving the clock an hour past a send
        # in flight would end its lease, and the other worker would (rightly) take it over.
        total = occurrence * expected
        # Bounds, not measures: FerretDB takes about a second a send on a busy machine.
        await eventually(
            lambda: len(sidecar.outbox) == total,  # noqa: B023
            within_s=300,
            what="every send",
        )

        async def settled() -> bool:
            counts = await one.store.count_deliveries()
            return (
                counts.get(DeliveryStatus.sending, 0) + counts.get(DeliveryStatus.queued, 0) == 0
            )

        await eventually(settled, within_s=300, what="every send recorded")
        # Each sender counts its sends after the store has them, one by one: wait for the
        # count (the assertion below says it is exact), not for a moment.
        await eventually(
            lambda: one.sender.sent_count + two.sender.sent_count >= total,  # noqa: B023
            within_s=300,
            what="every send counted",
        )

    assert len(sidecar.keys()) == len(set(sidecar.keys())) == 3 * expected
    assert sidecar.requests == 3 * expected  # not even a refused duplicate
    runs = await one.store.list_runs(limit=1000)
    assert len(runs) == 3 * 20
    assert len({(r.schedule_id, r.scheduled_for) for r in runs}) == 3 * 20
    # Which worker claims which delivery is a race; that each send was recorded by exactly
    # one of them is not.
    assert one.sender.sent_count + two.sender.sent_count == 3 * expected
