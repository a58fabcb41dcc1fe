"""Messages WhatsApp took but that do not reach the recipient's phone: noticed and told once.

A delivery is `sent` once WhatsApp's server took it (ack 1); the phone's ack (2, delivered)
may never come: the phone is offline for days, the number is not active, or the session broke
silently and acks stopped. `AckWatch` passes over the store at a bounded rate (every
min(60 s, ACK_ALERT_AFTER_S / 2) of the injected clock, one store query per pass, no log line
per pass) and tells the owner of each run with such a delivery once; that is remembered in the
store's key-value table, so a restart does not tell again. Messages of a told run that pass
the threshold later (a paced run) only mark its card. Nothing is resent by itself: the
owner may check again (the sidecar's current ack of each message, applied through the one
ack path, `acks.Acks`) or send a second copy, which may arrive twice and is their choice.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from core.adapters.store import Store
from core.delivery._loop import Loop
from core.domain.clock import Clock
from core.domain.errors import WhatsAppError
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, Record

if TYPE_CHECKING:
    from core.delivery.notifier import Notifier

logger = logging.getLogger(__name__)

# Run N was told about (the value is when); kept so that a restart does not tell again.
ALERTED_KEY = "ack_alert.run.{}"
# Run N was sent again as a second copy (the value is the new run's id).
RESENT_KEY = "ack_alert.resent.{}"
# The longest gap between two passes.
MAX_EVERY_S = 60.0
# How far back the first pass after start-up looks: what was sent while this process was not
# watching. Older messages were watched by an earlier process (or predate the alert).
STARTUP_LOOKBACK = timedelta(days=1)
# Deliveries one pass reads at most; a longer backlog is read by the next passes.
PASS_LIMIT = 1000
# Runs remembered in memory as told; older ones are looked up in the store again.
TOLD_REMEMBERED = 10_000


def is_unacked(delivery: Delivery, *, now: datetime, after_s: float) -> bool:
    """WhatsApp took it at least `after_s` before `now` and the phone has not acked it."""
    return (
        after_s > 0
        and delivery.status is DeliveryStatus.sent
        and delivery.sent_at is not None
        and delivery.sent_at <= now - timedelta(seconds=after_s)
    )


def unacked(deliveries: Iterable[Delivery], *, now: datetime, after_s: float) -> list[Delivery]:
    return [d for d in deliveries if is_unacked(d, now=now, after_s=after_s)]


class AckPort(Protocol):
    """What the watcher asks the sidecar (`core.adapters.whatsapp.WhatsAppClient`)."""

    async def message_ack(self, message_id: str) -> int: ...


class AckSink(Protocol):
    """Where an ack goes (`core.delivery.acks.Acks.apply_ack`, the one ack path)."""

    async def apply_ack(self, whatsapp_id: str, ack: int) -> bool: ...


async def ask_ack(whatsapp: AckPort, acks: AckSink, delivery: Delivery) -> bool:
    """Ask the sidecar how far `delivery`'s message got and apply that through the ack path;
    False when the sidecar does not know the message (any more). Other failures raise."""
    if not delivery.whatsapp_id:
        return False
    try:
        ack = await whatsapp.message_ack(delivery.whatsapp_id)
    except WhatsAppError as exc:
        if exc.code != "not_found":
            raise
        return False
    await acks.apply_ack(delivery.whatsapp_id, ack)
    return True


class Recheck(Record):
    """What Check again found for the run's messages that were still only `sent`."""

    run_id: int
    checked: int
    # Their statuses after the check (still `sent`, or delivered, read, failed), but for...
    statuses: dict[DeliveryStatus, int]
    # ...messages the sidecar does not know (any more), e.g. sent by another linked session.
    unknown: int = 0


class AckWatch(Loop):
    """Tells owners once per run about messages not on the recipient's phone after
    `after_s` seconds (0: never)."""

    name = "ack-watch"
    off_text = "ack alerts are off (ACK_ALERT_AFTER_S=0)"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        whatsapp: AckPort,
        acks: AckSink,
        *,
        after_s: float,
        every_s: float | None = None,
    ) -> None:
        super().__init__(clock, logger)
        self.store = store
        self.notifier = notifier
        self.whatsapp = whatsapp
        self.acks = acks
        self.after_s = max(0.0, after_s)
        self.every_s = every_s or min(MAX_EVERY_S, self.after_s / 2)
        # Passes done; the next one is armed on the clock before this count moves.
        self.passes = 0
        # Where the next pass reads on: after (sent_at, id) (None: not since start-up).
        self._checked_until: tuple[datetime, int] | None = None
        self._told: OrderedDict[int, None] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.after_s > 0

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                self.failed("ack watch: a pass failed; trying again every pass", traceback=True)
            else:
                self.worked("ack watch: passes work again")
            await self.clock.sleep(self.every_s)

    # --- one pass --------------------------------------------------------------------
    async def check(self) -> int:
        """One pass: tell the owner of each run with a message newly past the threshold;
        return how many runs were told."""
        if not self.enabled:
            return 0
        now = self.clock.now()
        cutoff = now - timedelta(seconds=self.after_s)
        since, after_id = self._checked_until or (cutoff - STARTUP_LOOKBACK, None)
        # Paged on (sent_at, id): a backlog sent in one instant is read on, never again.
        found = await self.store.sent_deliveries(
            statuses=(DeliveryStatus.sent,),
            since=since,
            after_id=after_id,
            until=cutoff,
            limit=PASS_LIMIT,
        )
        last = found[-1] if found else None
        if (
            last is not None
            and last.sent_at is not None
            and (len(found) == PASS_LIMIT or last.sent_at == cutoff)
        ):
            # The rest of the backlog (or of the instant at the cutoff) next pass.
            self._checked_until = (last.sent_at, last.id)
        else:
            self._checked_until = (cutoff, 0)
        told = 0
        for run_id in dict.fromkeys(d.run_id for d in found):
            if await self._report(run_id, now):
                told += 1
        self.passes += 1
        return told

    async def _report(self, run_id: int, now: datetime) -> bool:
        """Tell the owner about the run the first time; after that (more of its messages
        passed the threshold, or a restart) only its card is marked again. True if told."""
        key = ALERTED_KEY.format(run_id)
        first = run_id not in self._told and await self.store.get_value(key) is None
        run = await self.store.get_run(run_id)
        if run is None:
            return False
        deliveries = await self.store.list_deliveries(
            DeliveryFilter(run_id=run_id, order="oldest")
        )
        if not unacked(deliveries, now=now, after_s=self.after_s):
            return False  # acked since the query
        schedule = await self.store.get_schedule(run.schedule_id)
        if first:
            # Remembered before telling: an owner is told at most once, even if telling fails.
            await self.store.set_value(key, now.isoformat())
        self._remember(run_id)
        await self.notifier.deliveries_unacked(
            schedule, run, deliveries, now=now, after_s=self.after_s, tell=first
        )
        return first

    def _remember(self, run_id: int) -> None:
        self._told[run_id] = None
        while len(self._told) > TOLD_REMEMBERED:
            self._told.popitem(last=False)

    # --- what the owner can do -------------------------------------------------------
    def unacked(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """Those of `deliveries` past the threshold now."""
        return unacked(deliveries, now=self.clock.now(), after_s=self.after_s)

    async def count(self) -> int | None:
        """How many deliveries are past the threshold now (None when the alert is off)."""
        if not self.enabled:
            return None
        cutoff = self.clock.now() - timedelta(seconds=self.after_s)
        return await self.store.count_unacked(sent_before=cutoff)

    async def check_again(self, run_id: int) -> Recheck:
        """Ask the sidecar for the current ack of each of the run's messages still only
        `sent`, and apply each through the one ack path (never backwards)."""
        query = DeliveryFilter(run_id=run_id, order="oldest")
        pending = [
            d
            for d in await self.store.list_deliveries(query)
            if d.status is DeliveryStatus.sent and d.whatsapp_id
        ]
        unknown: set[int] = set()
        for delivery in pending:
            # Down or not linked raises: the owner hears why.
            if not await ask_ack(self.whatsapp, self.acks, delivery):
                unknown.add(delivery.id)
        ids = {d.id for d in pending} - unknown
        statuses: dict[DeliveryStatus, int] = {}
        for delivery in await self.store.list_deliveries(query):
            if delivery.id in ids:
                statuses[delivery.status] = statuses.get(delivery.status, 0) + 1
        return Recheck(
            run_id=run_id, checked=len(pending), statuses=statuses, unknown=len(unknown)
        )
