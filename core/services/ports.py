"""What the services need from outside: the engine's hooks, the ack watch and the scheduler's
state. The WhatsApp sidecar is reached through its client (`core.adapters.whatsapp`), whose
answers are the contract's models; tests run it against a fake sidecar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.delivery.ack_watch import Recheck
from core.domain.models import Delivery, Schedule


class EngineHooks(Protocol):
    """How the service tells the running engine that it has something to do."""

    def schedules_changed(self) -> None:
        """A schedule was created, edited, paused, resumed or deleted: re-arm timers."""

    def deliveries_queued(self) -> None:
        """Deliveries were queued (run now, retry): wake the sender."""

    async def schedule_ended(self, schedule: Schedule) -> None:
        """The service's compare-and-set ended recurring `schedule` done: tell its owner."""


class NoEngine:
    """Hooks that do nothing: for a service used without an engine (tests, CLI)."""

    def schedules_changed(self) -> None:
        return None

    def deliveries_queued(self) -> None:
        return None

    async def schedule_ended(self, schedule: Schedule) -> None:
        return None


class UnackedWatch(Protocol):
    """The part of `AckWatch` behind the alert's Check again / Send again."""

    def unacked(self, deliveries: Sequence[Delivery]) -> list[Delivery]: ...
    async def check_again(self, run_id: int) -> Recheck: ...


class SchedulerInfo(Protocol):
    """Optional: the engine's own words about the scheduler, shown by `status()`."""

    def scheduler_state(self) -> str: ...
