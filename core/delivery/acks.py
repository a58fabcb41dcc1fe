"""Acks: WhatsApp's word on how far a sent message got, applied to its delivery.

Every ack takes this one path, whether it came as an event (`POST /whatsapp/events`), was
asked for after a gap (`receipts.Receipts`) or by the owner (`ack_watch`). An ack may arrive
before the sender stored the message id (the sidecar can be quicker than our own write): it
waits here until the sender says the id is stored (`stored`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from core.adapters.counters import observe_time_to_ack
from core.adapters.store import Store
from core.delivery import states
from core.delivery.spikes import SpikeGuard
from core.domain.clock import Clock
from core.domain.models import Delivery

logger = logging.getLogger(__name__)

# Acks kept for message ids not stored yet, at most this many (the oldest go first).
EARLY_ACKS_KEPT = 1000


class Acks:
    """Applies acks to deliveries; `on_change(run_id)` is told of each delivery moved (the
    sender's `RunReporter.mark`, so the owner's run card follows). An error ack fails its
    delivery for good, which counts toward its run's failure spike (`spikes`) as a send
    WhatsApp refused does."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        on_change: Callable[[int], None],
        *,
        spikes: SpikeGuard | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change
        self._spikes = spikes
        self._early: OrderedDict[str, int] = OrderedDict()

    async def apply_ack(self, whatsapp_id: str, ack: int) -> bool:
        """Move a delivery by a `message.ack` (1 sent, 2 delivered, 3/4 read, -1 failed),
        never backwards. Return False when the message id is unknown (kept a while, in case
        the sender has not stored it yet)."""
        for _ in range(3):
            delivery = await self._store.find_delivery_by_whatsapp_id(whatsapp_id)
            if delivery is None:
                self._early[whatsapp_id] = max(ack, self._early.get(whatsapp_id, ack))
                while len(self._early) > EARLY_ACKS_KEPT:
                    self._early.popitem(last=False)
                return False
            change = states.ack(delivery, ack, now=self._clock.now())
            if change is None:
                return True
            updated = await self._store.apply(change)
            if updated is not None:
                logger.info(
                    # Worded as the sender's lines, so one delivery's story reads (and is
                    # searched for) as one in the log.
                    "sender: delivery %s (schedule %s, run %s) is %s (ack %s)",
                    delivery.id,
                    delivery.schedule_id,
                    delivery.run_id,
                    updated.status.value,
                    ack,
                )
                observe_ack_times(delivery, updated)
                self._on_change(delivery.run_id)
                if isinstance(change, states.AckFailed):
                    await self._check_spike(delivery.run_id)
                return True
            # Moved meanwhile (another ack, a retry): read it again.
        return True

    async def _check_spike(self, run_id: int) -> None:
        # The sender's own claims of the run are held at its next step (`holds_back`).
        if self._spikes is not None and await self._spikes.spiked(run_id):
            await self._spikes.cut_short(run_id)

    async def stored(self, whatsapp_id: str) -> None:
        """The sender stored message `whatsapp_id`: apply the ack that came before it."""
        early = self._early.pop(whatsapp_id, None)
        if early is not None:
            await self.apply_ack(whatsapp_id, early)


def observe_ack_times(before: Delivery, after: Delivery) -> None:
    """Count the time from sent to delivered, and to read, of an ack that just moved a
    message there (`/metrics`); an ack that moved it once counts once."""
    if after.sent_at is None:
        return
    if before.delivered_at is None and after.delivered_at is not None:
        observe_time_to_ack("delivered", (after.delivered_at - after.sent_at).total_seconds())
    if before.read_at is None and after.read_at is not None:
        observe_time_to_ack("read", (after.read_at - after.sent_at).total_seconds())
