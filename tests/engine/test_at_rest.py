"""What the core costs while WhatsApp is not working: held for an hour of (fake) time in each
state a real install lives in, it asks the sidecar at a bounded rate and logs state changes,
not probes.

Before the fix, a paused sender's probe woke the sender itself, so about `probe_every_s` after
the state changed it asked /health in a tight loop (hundreds of requests a second).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from core.adapters.whatsapp import SentMessage, SessionHealth
from core.app import Core
from core.domain.clock import FakeClock
from core.domain.errors import WhatsAppNotReady
from core.domain.models import DeliveryStatus, Media
from tests.engine.conftest import (
    PHONE,
    START,
    CoreFactory,
    SlowStore,
    bare_sender,
    deliveries,
    eventually,
)
from tests.fakes.sidecar import FakeSidecar

PROBE_EVERY_S = 30.0
PROBE_MAX_S = 300.0
HOUR_S = 3600


async def start(start_core: CoreFactory) -> Core:
    return await start_core(WHATSAPP_PROBE_EVERY_S=PROBE_EVERY_S, WHATSAPP_PROBE_MAX_S=PROBE_MAX_S)


async def let_it_run(turns: int = 50) -> None:
    """Give the core's tasks (and their loopback HTTP requests) real time to run."""
    for _ in range(turns):
        await asyncio.sleep(0.002)


def asleep_until_its_next_probe(core: Core, clock: FakeClock) -> bool:
    """The paused sender did what the clock woke it for: its probe was answered (or failed)
    and it sleeps until the next one. A working sender does not probe."""
    sender = core.sender
    if not sender.paused:
        return True
    at = sender.next_probe_at
    return at is not None and at > clock.now() and at in clock.sleeping_until()


async def hold_for(core: Core, clock: FakeClock, seconds: int, *, step_s: int = 10) -> None:
    """Move the fake clock through `seconds`, letting the core run at every step; the clock
    moves on only once the sender is asleep again (a loaded machine delays the probe, and
    the clock must not move past it)."""

    async def at_rest() -> None:
        await eventually(
            lambda: asleep_until_its_next_probe(core, clock),
            what="the sender asleep until its next probe",
        )

    await at_rest()
    for _ in range(seconds // step_s):
        await clock.advance(step_s)
        await let_it_run(5)
        await at_rest()


def records_at_info(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO]


@pytest.mark.parametrize("state", ["STARTING", "SCAN_QR_CODE", "FAILED"])
async def test_an_hour_not_working_costs_one_probe_per_interval_and_no_log_per_probe(
    state: str,
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sidecar.state = state
    core = await start(start_core)
    await eventually(lambda: core.sender.paused, what="the sender pausing")
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    before = sidecar.health_requests

    await hold_for(core, clock, HOUR_S)
    await let_it_run(200)  # a sender spinning on its own wake-up would show here

    probes = sidecar.health_requests - before
    expected = HOUR_S / PROBE_EVERY_S
    assert expected - 3 <= probes <= expected + 1, probes
    assert core.sender.paused
    # Nothing per probe: no record at INFO or above in the hour (httpx would log each
    # request at INFO if its logger were let through; wasched run keeps it at WARNING).
    assert [r.getMessage() for r in records_at_info(caplog) if r.name != "httpx"] == []


async def test_working_at_rest_asks_the_sidecar_nothing(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = await start(start_core)
    await eventually(lambda: sidecar.health_requests == 1, what="the first probe")
    caplog.set_level(logging.DEBUG)
    caplog.clear()

    await hold_for(core, clock, HOUR_S)
    await let_it_run(200)

    assert not core.sender.paused
    assert sidecar.health_requests == 1
    assert records_at_info(caplog) == []


async def test_with_the_sidecar_down_probes_back_off_and_the_outage_is_one_log_line(
    start_core: CoreFactory,
    clock: FakeClock,
    sidecar: FakeSidecar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sidecar.state = "SCAN_QR_CODE"
    core = await start(start_core)
    await eventually(lambda: core.sender.paused, what="the sender pausing")
    caplog.set_level(logging.INFO, logger="core.delivery.sender")
    caplog.clear()
    await sidecar.go_down()
    probes_before = core.sender.probe_count

    await hold_for(core, clock, HOUR_S)
    await let_it_run(200)

    # 30, 60, 120, 240 s, then every 300 s: 4 + (3600 - 450) / 300 = 14.5 probes in the hour.
    probes = core.sender.probe_count - probes_before
    assert 13 <= probes <= 16, probes
    said = [r.getMessage() for r in records_at_info(caplog)]
    assert len(said) == 1 and "does not answer" in said[0], said

    # Back, still waiting for a link: one line says so, and probing is at its base rate.
    await sidecar.start()
    await hold_for(core, clock, int(PROBE_MAX_S))
    await let_it_run(100)
    said = [r.getMessage() for r in records_at_info(caplog)]
    assert len(said) == 2 and "answers again" in said[1], said
    before = sidecar.health_requests
    await hold_for(core, clock, 600)
    await let_it_run(100)
    assert 600 / PROBE_EVERY_S - 2 <= sidecar.health_requests - before <= 600 / PROBE_EVERY_S


async def run_now_and_see_it_held(core: Core) -> int:
    """Run a one-recipient schedule now and wait until its delivery is held; its run id."""
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="tomorrow 9:00", text="hi"
    )
    run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)

    async def held() -> bool:
        return [d.status for d in await deliveries(core, run_id=run.id)] == [DeliveryStatus.held]

    await eventually(held, what="the held delivery")
    return run.id


async def test_an_event_comes_first_and_a_held_delivery_goes_out_without_waiting_for_a_probe(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    sidecar.state = "STARTING"
    core = await start(start_core)
    await eventually(lambda: core.sender.paused, what="the sender pausing")
    await run_now_and_see_it_held(core)
    probes = sidecar.health_requests

    # The sidecar announces WORKING (no clock movement: no probe is due).
    await sidecar.set_state("WORKING")
    await eventually(lambda: len(sidecar.outbox) == 1, what="the send after the event")
    assert sidecar.health_requests == probes


async def test_a_burst_of_repeated_status_events_postpones_the_probe_adding_none(
    start_core: CoreFactory, clock: FakeClock, sidecar: FakeSidecar
) -> None:
    sidecar.state = "STARTING"
    core = await start(start_core)
    await eventually(lambda: core.sender.paused, what="the sender pausing")
    probes = sidecar.health_requests
    for _ in range(50):
        await sidecar.set_state("STARTING")
    await let_it_run(100)
    # Events say the sidecar is there: they postpone the probe instead of adding to it.
    await hold_for(core, clock, int(PROBE_EVERY_S) - 10)
    await let_it_run(50)
    assert sidecar.health_requests == probes


async def test_a_delivery_held_while_the_network_is_down_says_so_not_that_it_is_unlinked(
    start_core: CoreFactory, sidecar: FakeSidecar
) -> None:
    await sidecar.set_state("FAILED", failure="whatsapp_web_unreachable", announce=False)
    core = await start(start_core)
    await eventually(lambda: core.sender.paused, what="the sender pausing")
    run_id = await run_now_and_see_it_held(core)
    (delivery,) = await deliveries(core, run_id=run_id)
    assert delivery.last_error == (
        "This server cannot reach WhatsApp Web (no internet connection or no DNS). "
        "It goes out once WhatsApp works again."
    )


async def test_held_after_a_refused_send_while_thought_working_says_not_linked_not_working(
    start_core: CoreFactory, sidecar: FakeSidecar
) -> None:
    core = await start(start_core)
    await eventually(lambda: sidecar.health_requests == 1, what="the first probe")
    sidecar.fail_next("not_ready")  # the session dropped; no event about it has come yet
    await run_now_and_see_it_held(core)
    assert core.sender.paused
    second = await run_now_and_see_it_held(core)  # held by the paused sender itself
    (delivery,) = await deliveries(core, run_id=second)
    assert (
        delivery.last_error == "WhatsApp is not linked or not connected; it goes out once it is."
    )


class StartingSidecar:
    """A `SendPort` whose session is STARTING: /health says so, a send is refused."""

    def __init__(self) -> None:
        self.health_requests = 0

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage:
        raise WhatsAppNotReady("session is STARTING")

    async def health(self, *, within_s: float | None = None) -> SessionHealth:
        self.health_requests += 1
        return SessionHealth(status="ok", engine="fake", state="STARTING", me=None)


async def test_a_paused_sender_slow_to_hold_due_deliveries_still_probes_on_time(
    slow_store: SlowStore, clock: FakeClock
) -> None:
    store = slow_store
    sidecar = StartingSidecar()
    sender = bare_sender(
        store, clock, sidecar, probe_every_s=PROBE_EVERY_S, probe_max_s=PROBE_MAX_S
    )
    probe_at = START + timedelta(seconds=PROBE_EVERY_S)
    await sender.start()
    try:
        # Only the sender sleeps on this clock.
        await eventually(lambda: clock.sleeping_until() == [probe_at], what="the paused sender")
        assert sender.paused and sidecar.health_requests == 1
        store.slow = True
        await clock.advance(PROBE_EVERY_S)  # the second probe; then it holds what is due
        await eventually(store.entered.is_set, what="the sender claiming after its probe")
        assert sidecar.health_requests == 2
        await clock.advance(20)  # the claim takes 20 s
        store.gate.set()

        # It sleeps until the third probe is due, a whole interval after the second.
        await eventually(lambda: clock.sleeping_until() != [], what="the sender asleep again")
        assert clock.sleeping_until() == [probe_at + timedelta(seconds=PROBE_EVERY_S)]
        await clock.advance(PROBE_EVERY_S - 20)
        await eventually(lambda: sidecar.health_requests == 3, what="the third probe")
    finally:
        await sender.stop()
