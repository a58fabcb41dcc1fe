"""Runs: sending a schedule now, a run and its deliveries, retrying what failed, and the
alert's Check again / Send again for messages not on the recipient's phone.

A method that acts on one run (or schedule) takes the acting owner's id: someone else's run is
as good as missing (`NotFound`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from core.adapters.store import Store
from core.delivery import states
from core.delivery.ack_watch import RESENT_KEY, Recheck
from core.delivery.numbers import NumberGuard
from core.delivery.runs import idempotency_key, start_run
from core.delivery.sender import Pacing
from core.delivery.spikes import release_run
from core.delivery.states import RETRYABLE
from core.domain.errors import InvalidState, NotFound
from core.domain.models import (
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)
from core.services._shared import is_id, no_run, recipient_of, stored
from core.services.ports import EngineHooks, UnackedWatch
from core.services.schedules import Schedules

logger = logging.getLogger(__name__)


class Runs:
    """Runs and deliveries as the bot offers them, each checked against the acting owner."""

    def __init__(
        self,
        store: Store,
        schedules: Schedules,
        hooks: EngineHooks,
        watch: UnackedWatch | None,
        numbers: NumberGuard | None = None,
    ) -> None:
        self.store, self.clock, self.hooks = store, schedules.clock, hooks
        self._schedules, self._watch = schedules, watch
        # When the sender may send next (`Sender.pacing`), set by `Services`.
        self.pacing: Callable[[], Pacing | None] | None = None
        # Checks the run's numbers with WhatsApp as it fans out, as the engine's runs do.
        self._numbers = numbers

    async def run_now(self, owner_id: int, schedule_id: int) -> tuple[Run, list[Delivery]]:
        """Send a schedule at once as a manual run (paused and done schedules too)."""
        schedule = await self._schedules.get_schedule(owner_id, schedule_id)
        run, deliveries = await start_run(
            self.store,
            self.clock,
            schedule,
            scheduled_for=self.clock.now(),
            trigger=RunTrigger.manual,
            guard=self._numbers,
        )
        logger.info("manual run %s of schedule %s", run.id, schedule.id)
        self.hooks.deliveries_queued()
        return run, deliveries

    async def get_run(self, owner_id: int, run_id: int) -> tuple[Run, list[Delivery]]:
        """A run and its deliveries as they are now (for refreshing a run's report); a
        missing run and someone else's are both `NotFound`."""
        run = await stored(self.store.get_run, run_id)
        if run is None or run.owner_id != owner_id:
            raise no_run(run_id)
        deliveries = await self.store.list_deliveries(
            DeliveryFilter(run_id=run_id, order="oldest")
        )
        return run, deliveries

    async def retry_delivery(self, owner_id: int, delivery_id: int) -> Delivery:
        """Queue a failed or missed delivery again (same idempotency key, attempts reset)."""
        found = await stored(self.store.get_delivery, delivery_id)
        if found is not None and found.owner_id != owner_id:
            raise NotFound(f"There is no delivery #{delivery_id}: see /logs.")
        delivery = await self._retry(delivery_id)
        self.hooks.deliveries_queued()
        return delivery

    async def retry_run(self, owner_id: int, run_id: int) -> list[Delivery]:
        """Queue every failed or missed delivery of a run again."""
        _, deliveries = await self.get_run(owner_id, run_id)
        retryable = [d for d in deliveries if d.status in RETRYABLE]
        if not retryable:
            raise InvalidState(
                f"Nothing to retry in run #{run_id}: none of its deliveries failed or was missed."
            )
        retried = [await self._retry(d.id) for d in retryable]
        self.hooks.deliveries_queued()
        return retried

    async def _retry(self, delivery_id: int) -> Delivery:
        delivery = await self.store.get_delivery(delivery_id) if is_id(delivery_id) else None
        if delivery is None:
            raise NotFound(f"There is no delivery #{delivery_id}: see /logs.")
        change = states.retry(delivery, now=self.clock.now())
        if change is None:
            raise InvalidState(
                f"Delivery #{delivery_id} is {delivery.status.value}: only failed or missed "
                "deliveries can be retried."
            )
        updated = await self.store.apply(change)
        if updated is None:
            raise InvalidState(
                f"Delivery #{delivery_id} changed meanwhile: see /logs for its status."
            )
        return updated

    async def check_unacked(self, owner_id: int, run_id: int) -> Recheck:
        """Check again: ask WhatsApp now where each message of the run that is only `sent`
        stands, and record what it says (delivered, read, failed)."""
        run, _ = await self.get_run(owner_id, run_id)
        return await self._unacked().check_again(run.id)

    async def unacked(self, owner_id: int, run_id: int) -> tuple[Run, list[Delivery]]:
        """The run and those of its messages that are not on the recipient's phone yet (none
        where WhatsApp cannot be asked), before Send again asks to confirm."""
        run, deliveries = await self.get_run(owner_id, run_id)
        return run, self._watch.unacked(deliveries) if self._watch is not None else []

    async def send_unacked_again(self, owner_id: int, run_id: int) -> tuple[Run, list[Delivery]]:
        """Send again: a second copy (same text, new idempotency keys) as a new manual run, to
        each recipient of the run whose message is not on their phone yet; once per run."""
        watch = self._unacked()
        run, deliveries = await self.get_run(owner_id, run_id)
        key = RESENT_KEY.format(run.id)
        earlier = await self.store.get_value(key)
        if earlier is not None:
            raise InvalidState(
                f"Run {run.id} was sent again already, as run {earlier}: "
                "it is not sent a third time."
            )
        again = watch.unacked(deliveries)
        if not again:
            raise InvalidState(
                f"Every message of run {run.id} is on the recipient's phone now, or failed: "
                "nothing to send again."
            )
        if await self.store.get_schedule(run.schedule_id) is None:
            raise NotFound(
                f"Schedule #{run.schedule_id} was deleted, so run {run.id} cannot be sent again."
            )
        copy = await self.store.insert_run(
            schedule_id=run.schedule_id,
            owner_id=run.owner_id,
            # Its occurrence's time, so the card and the logs tie it to the first copy.
            scheduled_for=run.scheduled_for,
            trigger=RunTrigger.manual,
            outcome=f"second copy of run {run.id}",
        )
        # Marked before its deliveries are stored: a crash in between must leave a run that
        # sends nothing, not one the engine completes to every recipient of the schedule.
        await self.store.mark_run_fanned_out(copy.id)
        await self.store.set_value(key, str(copy.id))
        new = [
            NewDelivery(
                recipient=d.recipient,
                recipient_name=d.recipient_name,
                text=d.text,
                idempotency_key=idempotency_key(copy, recipient_of(d)),
            )
            for d in again
        ]
        added = await self.store.add_deliveries(copy, new, now=self.clock.now())
        logger.info(
            "run %s: second copy to %d recipient(s) as run %s", run.id, len(added), copy.id
        )
        self.hooks.deliveries_queued()
        return copy.model_copy(update={"fanned_out": True}), added

    def _unacked(self) -> UnackedWatch:
        if self._watch is None:
            raise InvalidState("Checking messages with WhatsApp is not available here.")
        return self._watch

    # --- pace: a run cut short by a failure spike ---------------------------------------

    async def resume_cut_short(self, owner_id: int, run_id: int) -> tuple[Schedule | None, int]:
        """Resume: the held rest of a run cut short goes out now, and its schedule, paused by
        the cut, is active again (done when its time has passed). Return the schedule as it is
        now and how many deliveries were queued (0 when pressed again)."""
        run, _ = await self.get_run(owner_id, run_id)
        # The run first: resuming the schedule releases every run of it cut short, and this
        # press is to say how many of this one went.
        released = await release_run(self.store, self.clock, run.id)
        schedule = await self.store.get_schedule(run.schedule_id)
        if schedule is not None and schedule.state is ScheduleState.paused:
            # Done instead when its time has passed meanwhile.
            schedule = await self._schedules.resume(owner_id, schedule.id)
        if released:
            logger.info("run %s resumed after a failure spike: %d queued", run.id, released)
            self.hooks.deliveries_queued()
        return schedule, released

    async def failures(
        self, owner_id: int, run_id: int
    ) -> tuple[Schedule | None, Run, list[Delivery]]:
        """Show failures: the run's schedule (None once deleted), the run, and its deliveries
        that failed, oldest first."""
        run, deliveries = await self.get_run(owner_id, run_id)
        schedule = await self.store.get_schedule(run.schedule_id)
        return schedule, run, [d for d in deliveries if d.status is DeliveryStatus.failed]

    async def waiting_for_cap(self, owner_id: int) -> dict[int, tuple[int, Pacing]]:
        """While a cap holds sends back: how many messages of each of `owner_id`'s schedules
        wait (by schedule id), with when the next may go. Empty while no cap is reached."""
        pacing = self.pacing() if self.pacing is not None else None
        if pacing is None or pacing.capped is None:
            return {}
        queued = await self.store.list_deliveries(
            DeliveryFilter(owner_id=owner_id, statuses=(DeliveryStatus.queued,))
        )
        counts = Counter(d.schedule_id for d in queued)
        return {schedule_id: (count, pacing) for schedule_id, count in counts.items()}
