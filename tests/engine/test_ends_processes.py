"""A schedule that ends runs across a SIGKILL and a restart of the real `python -m core`, with
the sidecar in its fake engine (node): each occurrence is sent once, and the owner is told
once that it is done (core alone tells the log: "schedule N is done after ...")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.adapters.store.sqlite import SQLiteStore
from core.domain.clock import SystemClock
from core.domain.models import Recipient, RecipientKind, Rule, RuleKind, RunTrigger
from tests.engine.conftest import PHONE, eventually
from tests.engine.test_receipts_crash import World, kill, needs_node, world  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVERY_S = 5
DONE = "is done after"
RUNNING = "wasched core running"


async def seed(database_url: str) -> int:
    """`3 times` every EVERY_S seconds, the first sent already, the second due now and the
    third EVERY_S seconds later (a rule only the store can hold: typed ones repeat each minute
    at most)."""
    now = SystemClock().now()
    start = now - timedelta(seconds=2 * EVERY_S)
    rule = Rule(
        kind=RuleKind.interval,
        timezone="UTC",
        every_seconds=EVERY_S,
        start=start,
        times=3,
        ends_at=start + timedelta(seconds=3 * EVERY_S),
    )
    store = await SQLiteStore.open(database_url)
    try:
        schedule = await store.add_schedule(
            owner_id=7,
            recipients=[Recipient(kind=RecipientKind.phone, address=PHONE)],
            rule=rule,
            next_run_at=start + timedelta(seconds=2 * EVERY_S),
            text="ends",
        )
        run = await store.insert_run(
            schedule_id=schedule.id,
            owner_id=7,
            scheduled_for=start + timedelta(seconds=EVERY_S),
            trigger=RunTrigger.schedule,
        )
        await store.mark_run_fanned_out(run.id)
        return schedule.id
    finally:
        await store.close()


@needs_node
async def test_an_ending_schedule_across_a_kill_sends_each_once_and_tells_done_once(
    world: World,  # noqa: F811
) -> None:
    await world.start_sidecar()
    schedule_id = await seed(world.database_url)

    async def sent() -> int:
        return len((await world.sidecar("GET", "/fake/outbox"))["messages"])

    async def sent_some() -> bool:
        return await sent() >= 1

    def log() -> str:
        return (world.tmp / "core.log").read_text(errors="replace")

    def log_has(text: str, count: int) -> bool:
        return log().count(text) >= count

    first = await world.start_core()
    await eventually(sent_some, within_s=60, what="the second occurrence")
    await kill(first)  # before or after the third fell due: either way it is told once
    await world.start_core()
    await eventually(lambda: log_has(RUNNING, 2), within_s=60, what="core started again")
    await eventually(lambda: log_has(DONE, 1), within_s=60, what="the done notice")

    async def sent_both() -> bool:
        return await sent() == 2

    await eventually(sent_both, within_s=60, what="the third occurrence sent")

    # Started once more after it ended: nothing is sent, nobody is told again.
    await kill(world.processes[-1])
    await world.start_core()
    await eventually(lambda: log_has(RUNNING, 3), within_s=60, what="core started a third time")
    store = await SQLiteStore.open(world.database_url)
    try:
        runs = await store.list_runs(schedule_id=schedule_id)
        schedule = await store.get_schedule(schedule_id)
    finally:
        await store.close()
    assert len(runs) == 3
    assert schedule is not None and schedule.state.value == "done"
    assert log().count(DONE) == 1, log()
    assert f"schedule {schedule_id} is done after 3 occurrence(s)" in log()
    assert await sent() == 2
