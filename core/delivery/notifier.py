"""How core tells the outside world what happened; `bot/` implements `Notifier`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from core.delivery.ack_watch import is_unacked
from core.delivery.spikes import Spike
from core.domain.models import Ask, Delivery, Run, Schedule
from core.domain.session import SessionFailure, explain

if TYPE_CHECKING:
    from core.delivery.asker import Question

logger = logging.getLogger(__name__)

# Awaited once the owner has a question asked before a run (`Notifier.ask_before_run`).
Told = Callable[[], Awaitable[None]]


class Notifier(Protocol):
    async def run_updated(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery]
    ) -> None:
        """A run's deliveries changed (fanned out, sent, acked, failed); called with all of
        the run's deliveries as they are now. `schedule` is None once deleted."""

    async def run_missed(self, schedule: Schedule, run: Run, late_by_s: float) -> None:
        """An occurrence fell outside the misfire grace and was recorded as missed."""

    async def session_changed(
        self, state: str, me: dict[str, str] | None, failure: SessionFailure | None
    ) -> None:
        """The WhatsApp session moved to `state` (a `SessionState`); `failure` says why it does
        not work, when the sidecar knows."""

    async def qr_available(self, qr: str) -> None:
        """WhatsApp issued a (new) QR code to link the account."""

    async def deliveries_unacked(
        self,
        schedule: Schedule | None,
        run: Run,
        deliveries: list[Delivery],
        *,
        now: datetime,
        after_s: float,
        tell: bool = True,
    ) -> None:
        """Some of the run's messages were taken by WhatsApp (`sent`) at least `after_s`
        before `now` but are not on the recipient's phone yet: mark them on the run's report,
        and with `tell` (once per run) tell the owner. `deliveries` are all of the run's, as
        they are now (`core.delivery.ack_watch.unacked` picks the ones meant)."""

    async def schedule_done(self, schedule: Schedule, occurrences: int) -> None:
        """A recurring schedule's last occurrence has fired and it is `done` now; called once,
        by the process that ended it. `occurrences` is how many went out."""

    async def schedule_auto_paused(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery], *, spike: Spike
    ) -> None:
        """A run's failures spiked (`core.delivery.spikes`): the rest of the run is held and
        the schedule paused; tell the owner once, why, with Resume and Show failures."""

    async def ask_before_run(self, question: Question, told: Told) -> None:
        """Ask the owner about an occurrence of an ask-first schedule before it is due (the
        answers go to `core.services.asks.Asks.answer`); await `told()` once the owner has
        the question (Telegram accepted it), not when it is only queued."""

    async def ask_unanswered(self, schedule: Schedule, ask: Ask) -> None:
        """Nobody answered by the due time: the schedule's policy (`ask.choice`) was
        followed."""


class LoggingNotifier:
    """Writes every event to the log; used until (or without) the bot."""

    async def run_updated(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery]
    ) -> None:
        counts: dict[str, int] = {}
        for delivery in deliveries:
            counts[delivery.status] = counts.get(delivery.status, 0) + 1
        logger.info("run %s of schedule %s: %s", run.id, run.schedule_id, counts)

    async def run_missed(self, schedule: Schedule, run: Run, late_by_s: float) -> None:
        logger.warning(
            "run %s of schedule %s missed (%.0f s late)", run.id, schedule.id, late_by_s
        )

    async def session_changed(
        self, state: str, me: dict[str, str] | None, failure: SessionFailure | None = None
    ) -> None:
        words = explain(state, failure)
        if words.working or failure is None:
            logger.info("whatsapp session %s", state)
        else:
            logger.warning(
                "whatsapp session %s (%s: %s): %s",
                state,
                failure.code,
                failure.message,
                words.fix,
            )

    async def qr_available(self, qr: str) -> None:
        logger.info("whatsapp QR code available; link with /link in the bot")

    async def deliveries_unacked(
        self,
        schedule: Schedule | None,
        run: Run,
        deliveries: list[Delivery],
        *,
        now: datetime,
        after_s: float,
        tell: bool = True,
    ) -> None:
        if not tell:
            return
        count = sum(1 for d in deliveries if is_unacked(d, now=now, after_s=after_s))
        logger.warning(
            "run %s of schedule %s: %d message(s) sent %.0f s ago or more, not on the "
            "recipient's phone yet",
            run.id,
            run.schedule_id,
            count,
            after_s,
        )

    async def schedule_done(self, schedule: Schedule, occurrences: int) -> None:
        logger.info("schedule %s is done after %d occurrence(s)", schedule.id, occurrences)

    async def schedule_auto_paused(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery], *, spike: Spike
    ) -> None:
        logger.warning(
            "run %s of schedule %s cut short: %d of %d sends failed (mostly %s), %d held",
            run.id,
            run.schedule_id,
            spike.failed,
            spike.tried,
            spike.reason_code,
            spike.held,
        )

    async def ask_before_run(self, question: Question, told: Told) -> None:
        logger.info(
            "schedule %s asks before its run due %s (answer in the bot)",
            question.schedule.id,
            question.ask.occurrence.isoformat(),
        )
        await told()

    async def ask_unanswered(self, schedule: Schedule, ask: Ask) -> None:
        logger.info("schedule %s: nobody answered; %s", schedule.id, ask.choice)
