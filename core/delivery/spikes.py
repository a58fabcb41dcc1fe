"""Auto-pause on failure spikes: a run whose sends fail for good too often is cut short.

WhatsApp restricts accounts that message many numbers that are not on WhatsApp or never wrote
to them; a run that keeps failing is a sign of a bad list, and sending the rest of it makes it
worse. Within one run, once the deliveries that failed for good reach `ratio` of the
deliveries tried so far (sent or failed) and number at least `min_failures`, the rest of the
run is held (`states.hold_for_spike`: not sent, not lost), the schedule is paused and the owner
is told once, with the counts and the commonest reason. Resume (`release_run`) sends the held
rest and turns the rule off for that run: the owner has seen the failures.

The decision is made on the store's counts, so it holds with several sender processes and
after a restart: a process that dies after deciding leaves the held deliveries behind, and the
next one to start tells the owner (`SpikeGuard.tell_pending`). Sends already on the wire when
the rule trips (several in flight without pacing, or in another process) still finish.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.delivery import states
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, Run, ScheduleState

if TYPE_CHECKING:
    from datetime import datetime

    from core.adapters.store import Store
    from core.delivery.notifier import Notifier
    from core.domain.clock import Clock

logger = logging.getLogger(__name__)

# Set once per run by the process that tells the owner (`Store.claim_value`).
TOLD_KEY = "spike_told:{}"
# Set when the owner resumed the run: the rule does not cut it short again.
RESUMED_KEY = "spike_resumed:{}"

# What a delivery held by a spike says in /logs and on the run's card.
HELD_REASON = (
    "Held: too many messages of this run failed, so the schedule was paused. "
    "Resume sends the rest."
)

# Sent to WhatsApp (or failed by it): the deliveries the ratio counts.
TRIED = (
    DeliveryStatus.sent,
    DeliveryStatus.delivered,
    DeliveryStatus.read,
    DeliveryStatus.failed,
)


@dataclass(frozen=True)
class SpikeRule:
    """When a run's failures are a spike. `ratio` 0 turns the rule off."""

    ratio: float
    min_failures: int

    def tripped(self, failed: int, tried: int) -> bool:
        """`failed` of `tried` deliveries failed for good: is that a spike?"""
        if self.ratio <= 0 or tried <= 0:
            return False
        return failed >= max(1, self.min_failures) and failed >= self.ratio * tried


@dataclass(frozen=True)
class Spike:
    """A run cut short: how many of its deliveries were tried and failed, how many are held,
    the commonest reason (its error code and one delivery's text of it) and how many failed
    with it."""

    run_id: int
    tried: int
    failed: int
    held: int
    reason_code: str
    reason: str
    reason_count: int
    # True when this cut paused the schedule (False: it was paused, done or gone already).
    paused: bool


# Failures that say nothing about the account: a text that could not be rendered, the
# sidecar or WhatsApp not answering until the attempts ran out, a bug of wasched's.
NOT_THE_ACCOUNT = frozenset({"render_failed", "unavailable", "not_ready", "internal"})


def failed_for_good(delivery: Delivery) -> bool:
    """A delivery WhatsApp refused (not on WhatsApp, an invalid number, a send it kept
    refusing, an error ack); see `NOT_THE_ACCOUNT` for the failures that do not count. A
    delivery failed without an attempt (its number found not on WhatsApp before the run,
    `states.without_whatsapp`) never reached WhatsApp: it is neither tried nor failed."""
    return (
        delivery.status is DeliveryStatus.failed
        and delivery.attempts > 0
        and delivery.error_code not in NOT_THE_ACCOUNT
    )


def tally(deliveries: Sequence[Delivery]) -> tuple[int, int]:
    """(failed for good, tried: sent or failed for good) among a run's deliveries."""
    failed = sum(1 for d in deliveries if failed_for_good(d))
    tried = failed + sum(
        1 for d in deliveries if d.status in TRIED and d.status is not DeliveryStatus.failed
    )
    return failed, tried


def spike_of(run_id: int, deliveries: Sequence[Delivery], *, paused: bool) -> Spike:
    """The counts and commonest reason of a run's failures, as the owner is told them."""
    failed_ones = [d for d in deliveries if failed_for_good(d)]
    failed, tried = tally(deliveries)
    codes = Counter(d.error_code or "unknown" for d in failed_ones)
    code, count = codes.most_common(1)[0] if codes else ("unknown", 0)
    reason = next(
        (d.last_error or "" for d in failed_ones if (d.error_code or "unknown") == code), ""
    )
    held = sum(1 for d in deliveries if is_spike_held(d))
    return Spike(run_id, tried, failed, held, code, reason, count, paused)


def is_spike_held(delivery: Delivery) -> bool:
    return delivery.status is DeliveryStatus.held and delivery.error_code == states.SPIKE_HOLD


class SpikeGuard:
    """Watches the runs of deliveries that failed for good (the sender tells it) and cuts a
    run short when its failures spike."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        rule: SpikeRule,
        *,
        on_paused: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.rule = rule
        # Told when a schedule was paused (the engine re-reads its schedules).
        self.on_paused = on_paused
        # Runs known cut short (told) and known resumed: neither ever goes back.
        self._told: set[int] = set()
        self._resumed: set[int] = set()

    async def holds_back(self, run_id: int) -> bool:
        """Whether run `run_id` was cut short and not resumed, by any process: its deliveries
        are held, not sent, whenever they come back queued (a send on the wire when it was
        cut that then failed for a while, a lease taken back after a crash)."""
        if run_id in self._resumed:
            return False
        if run_id not in self._told:
            if await self.store.get_value(TOLD_KEY.format(run_id)) is None:
                return False
            self._told.add(run_id)
        if await self.store.get_value(RESUMED_KEY.format(run_id)) is not None:
            self._resumed.add(run_id)
            return False
        return True

    async def spiked(self, run_id: int) -> bool:
        """Whether run `run_id`'s failures, as the store counts them now, are a spike the
        rule still acts on (not after the owner resumed the run)."""
        if self.rule.ratio <= 0:
            return False
        deliveries = await self.store.list_deliveries(DeliveryFilter(run_id=run_id))
        failed, tried = tally(deliveries)
        if not self.rule.tripped(failed, tried):
            return False
        return await self.store.get_value(RESUMED_KEY.format(run_id)) is None

    async def cut_short(self, run_id: int) -> Spike | None:
        """Hold the rest of the run, pause its schedule and tell the owner (once, whichever
        process gets there first). Every step may run twice: holding and pausing again change
        nothing."""
        run = await self.store.get_run(run_id)
        if run is None:
            return None
        now = self.clock.now()
        deliveries = await self.store.list_deliveries(
            DeliveryFilter(run_id=run_id, order="oldest")
        )
        for delivery in deliveries:
            change = states.hold_for_spike(delivery, now=now, reason=HELD_REASON)
            if change is not None:
                await self.store.apply(change)
        paused = await self._pause(run)
        deliveries = await self.store.list_deliveries(
            DeliveryFilter(run_id=run_id, order="oldest")
        )
        spike = spike_of(run_id, deliveries, paused=paused)
        logger.warning(
            "run %s of schedule %s: %d of %d sends failed for good (mostly %s); holding the "
            "other %d and pausing the schedule",
            run_id,
            run.schedule_id,
            spike.failed,
            spike.tried,
            spike.reason_code,
            spike.held,
        )
        await self._tell(run, deliveries, spike)
        return spike

    async def _pause(self, run: Run) -> bool:
        schedule = await self.store.get_schedule(run.schedule_id)
        if schedule is None or schedule.state is not ScheduleState.active:
            return False
        await self.store.update_schedule(schedule.id, state=ScheduleState.paused)
        if self.on_paused is not None:
            self.on_paused()
        return True

    async def _tell(self, run: Run, deliveries: list[Delivery], spike: Spike) -> None:
        told = await self.store.claim_value(TOLD_KEY.format(run.id), self.clock.now().isoformat())
        if not told:
            return
        schedule = await self.store.get_schedule(run.schedule_id)
        await self.notifier.schedule_auto_paused(schedule, run, deliveries, spike=spike)

    async def tell_pending(self) -> None:
        """Tell the owners of runs held by a spike whom no process told (it died between
        holding and telling)."""
        held = await self.store.list_deliveries(
            DeliveryFilter(statuses=(DeliveryStatus.held,), order="oldest")
        )
        for run_id in dict.fromkeys(d.run_id for d in held if is_spike_held(d)):
            if await self.store.get_value(TOLD_KEY.format(run_id)) is None:
                await self.cut_short(run_id)


async def release_run(store: Store, clock: Clock, run_id: int) -> int:
    """Resume a run cut short: its held rest is queued, due now, and the rule leaves the run
    alone from now on. Return how many deliveries were queued (0 when pressed again)."""
    await store.set_value(RESUMED_KEY.format(run_id), clock.now().isoformat())
    now = clock.now()
    released = 0
    for delivery in await store.list_deliveries(DeliveryFilter(run_id=run_id, order="oldest")):
        change = states.release_spike(delivery, now=now)
        if change is not None and await store.apply(change) is not None:
            released += 1
    return released


async def release_schedule(
    store: Store, clock: Clock, schedule_id: int, *, since: datetime
) -> tuple[dict[int, int], dict[int, int]]:
    """Resume the runs of a schedule cut short and due since `since` (the schedule was
    resumed by hand, /resume or its card's button); older runs stay held, their messages
    likely stale: their own Resume sends them. Return how many deliveries were queued and
    how many stay held, each by run id."""
    held = await store.list_deliveries(
        DeliveryFilter(schedule_id=schedule_id, statuses=(DeliveryStatus.held,), order="oldest")
    )
    counts = Counter(d.run_id for d in held if is_spike_held(d))
    released: dict[int, int] = {}
    left: dict[int, int] = {}
    for run_id, count in counts.items():
        run = await store.get_run(run_id)
        if run is not None and run.scheduled_for < since:
            left[run_id] = count
            continue
        queued = await release_run(store, clock, run_id)
        if queued:
            released[run_id] = queued
    return released, left
