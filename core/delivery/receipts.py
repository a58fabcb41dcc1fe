"""Acks that never reached core are asked for, so receipts converge across crashes.

Events (`message.ack`) are the fast path, but they are lost when core is down longer than the
sidecar keeps them, when the sidecar itself is killed with events queued, or when an ack beats
core's own record of the send and core dies before that record. `Receipts` makes the store
converge to what the sidecar says (`POST /messages/acks`, or `GET /messages/{id}` one by one
from a sidecar without that route): after core starts, after a gap (the
sidecar answers again, the session is WORKING again, a send was answered as a duplicate of an
earlier process's) one pass asks for the current ack of every delivery `sent` or
`delivered` within the last `window_s` (ACK_RECONCILE_WINDOW_S); after `quiet_s` without any
event, a pass asks only about the ones still `sent` (a recipient with read receipts off stays
`delivered` for good: asking again every silence would cost a page call each time). Passes go
`page` messages at a time with `pause_s` between pages, and apply each answer through the
one ack path (`acks.Acks`), so run cards update too. At rest (nothing awaiting an ack) a pass is
one store query and no request, and a silence needs twice as long before each next pass.

The sidecar answering again after failed probes counts as a gap while the sender is paused
(it probes only then); otherwise the silence passes catch what was missed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from core.adapters.store import Store
from core.delivery._loop import Loop
from core.delivery.ack_watch import AckPort, AckSink, ask_ack
from core.domain.clock import Clock
from core.domain.errors import WhatsAppError
from core.domain.models import Delivery, DeliveryStatus

logger = logging.getLogger(__name__)


class ReceiptPort(AckPort, Protocol):
    """What a pass asks the sidecar (`core.adapters.whatsapp.WhatsAppClient`)."""

    async def message_acks(self, message_ids: Sequence[str]) -> dict[str, int | None]: ...


class SessionView(Protocol):
    """Whether the sidecar's session works now (`core.delivery.sender.Sender`)."""

    @property
    def working(self) -> bool: ...


# Messages asked about per page of a reconcile pass (one POST /messages/acks, or as many
# GET /messages/{id} from a sidecar without it), and the pause between two pages: never a
# burst of thousands of requests.
RECONCILE_PAGE = 50
RECONCILE_PAUSE_S = 5.0
# Without any event from the sidecar for this long, a pass asks what acks were missed; the
# silence needed doubles after each such pass (up to QUIET_MAX_S) until an event comes.
QUIET_S = 300.0
QUIET_MAX_S = 3600.0
# A pass cut short (the sidecar stopped answering) is tried again this long after, doubling
# while it fails (up to QUIET_MAX_S), unless a gap (the sidecar or the session back) asks for
# one sooner.
RETRY_S = 60.0
AWAITING = (DeliveryStatus.sent, DeliveryStatus.delivered)
# What a pass after a silence asks about: events flowed before it, so a `delivered` one was
# most likely told its last ack already (read receipts off), while a `sent` one waits.
AWAITING_AFTER_SILENCE = (DeliveryStatus.sent,)


class Receipts(Loop):
    """Asks the sidecar for acks core may have missed (see the module's docstring)."""

    name = "receipts"
    off_text = "receipts: reconciling is off (ACK_RECONCILE_WINDOW_S=0)"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        whatsapp: ReceiptPort,
        acks: AckSink,
        session: SessionView,
        *,
        window_s: float,
        page: int = RECONCILE_PAGE,
        pause_s: float = RECONCILE_PAUSE_S,
        quiet_s: float = QUIET_S,
        quiet_max_s: float = QUIET_MAX_S,
        retry_s: float = RETRY_S,
    ) -> None:
        super().__init__(clock, logger)
        self.store = store
        self.whatsapp = whatsapp
        self.acks = acks
        self.session = session
        self.window_s = max(0.0, window_s)
        self.page = max(1, min(page, 100))  # POST /messages/acks takes 100 ids at most
        self.pause_s = pause_s
        self.quiet_s = quiet_s
        self.quiet_max_s = max(quiet_s, quiet_max_s)
        self.retry_s = retry_s
        # Passes gone through to the end, and messages asked about (both for tests, metrics).
        self.passes = 0
        self.asked = 0
        # When the next pass is due (start-up: at once, once the session works); None: not.
        self._pass_at: datetime | None = clock.now()
        # Whether that pass asks about `delivered` ones too (after start-up and gaps).
        self._full_pass = True
        self._quiet = quiet_s
        self._quiet_at = clock.now() + timedelta(seconds=quiet_s)
        self._retry = retry_s
        # False once the sidecar said it has no POST /messages/acks: one by one from then on.
        self._bulk = True

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    # --- what tells it ---------------------------------------------------------------
    def gap(self) -> None:
        """Acks may have been missed (the sidecar or its session is back): a pass, soon."""
        self._pass_at = self.clock.now()
        self._full_pass = True
        self.wake()

    def heard(self) -> None:
        """An event came from the sidecar: events flow, the silence starts again."""
        self._quiet = self.quiet_s
        self._quiet_at = self.clock.now() + timedelta(seconds=self.quiet_s)

    # --- the loop --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            now = self.clock.now()
            if now >= self._quiet_at:
                self._quiet = min(self.quiet_max_s, self._quiet * 2)
                self._quiet_at = now + timedelta(seconds=self._quiet)
                if self._pass_at is None or self._pass_at > now:
                    self._pass_at = now
            if self._pass_at is not None and self._pass_at <= now and self.session.working:
                self._pass_at = None
                statuses = AWAITING if self._full_pass else AWAITING_AFTER_SILENCE
                if await self._guarded_pass(statuses):
                    self._full_pass = False
                    self._retry = self.retry_s
                else:
                    self._pass_at = self.clock.now() + timedelta(seconds=self._retry)
                    self._retry = min(self.quiet_max_s, self._retry * 2)
                continue
            until = self._quiet_at
            if self._pass_at is not None and self.session.working:
                until = min(until, self._pass_at)
            await self.nap(max(0.0, (until - self.clock.now()).total_seconds()))

    async def _guarded_pass(self, statuses: Sequence[DeliveryStatus]) -> bool:
        try:
            return await self.reconcile(statuses)
        except Exception:
            self.failed("receipts: a pass failed; trying again later", traceback=True)
            return False

    async def _ask(self, page: list[Delivery]) -> None:
        """Ask the acks of one page, in one request where the sidecar can answer it, and
        apply each through the ack path."""
        if self._bulk:
            ids = [d.whatsapp_id for d in page if d.whatsapp_id]
            try:
                acks = await self.whatsapp.message_acks(ids) if ids else {}
            except WhatsAppError as exc:
                if exc.code != "not_found":
                    raise
                logger.info(
                    "receipts: the WhatsApp service has no POST /messages/acks; "
                    "asking one message at a time"
                )
                self._bulk = False
            else:
                asked = set(ids)
                for message_id, ack in acks.items():
                    if ack is not None and message_id in asked:
                        await self.acks.apply_ack(message_id, ack)
                return
        for delivery in page:
            await ask_ack(self.whatsapp, self.acks, delivery)

    # --- one pass --------------------------------------------------------------------
    async def reconcile(self, statuses: Sequence[DeliveryStatus] = AWAITING) -> bool:
        """Ask for the ack of every delivery in `statuses` within the window, a page at a
        time; True when the pass went through all of them, False when the sidecar stopped
        answering (the rest waits for the next pass)."""
        since = self.clock.now() - timedelta(seconds=self.window_s)
        after_id: int | None = None
        asked = 0
        while True:
            page = await self.store.sent_deliveries(
                statuses=statuses, since=since, after_id=after_id, limit=self.page
            )
            try:
                await self._ask(page)
            except WhatsAppError as exc:
                self.failed(
                    "receipts: the WhatsApp service did not answer (%s); %d messages "
                    "asked, the rest next pass",
                    exc.code or type(exc).__name__,
                    asked,
                )
                return False
            asked += len(page)
            self.asked += len(page)
            if len(page) < self.page or page[-1].sent_at is None:
                break
            since, after_id = page[-1].sent_at, page[-1].id
            await self.sleep(self.pause_s)
        self.passes += 1
        self.worked("receipts: passes work again")
        if asked:
            # What moved is logged by `Acks`, one line per delivery.
            logger.debug("receipts: asked WhatsApp for the acks of %d messages", asked)
        return True
