"""How core tells the outside world what happened; `bot/` implements `Notifier`."""

from __future__ import annotations

import logging
from typing import Protocol

from core.models import Delivery, Run, Schedule

logger = logging.getLogger(__name__)


class Notifier(Protocol):
    async def run_updated(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery]
    ) -> None:
        """A run's deliveries changed (fanned out, sent, acked, failed); called with all of
        the run's deliveries as they are now. `schedule` is None once deleted."""

    async def run_missed(self, schedule: Schedule, run: Run, late_by_s: float) -> None:
        """An occurrence fell outside the misfire grace and was recorded as missed."""

    async def session_changed(self, state: str, me: dict[str, str] | None) -> None:
        """The WhatsApp session moved to `state` (WORKING, SCAN_QR_CODE, FAILED, ...)."""

    async def qr_available(self, qr: str) -> None:
        """WhatsApp issued a (new) QR code to link the account."""


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

    async def session_changed(self, state: str, me: dict[str, str] | None) -> None:
        logger.info("whatsapp session %s", state)

    async def qr_available(self, qr: str) -> None:
        logger.info("whatsapp QR code available; link with /link in the bot")
