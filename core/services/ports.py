"""What the services need from outside: the engine's hooks, the ack watch, the scheduler's
state and the WhatsApp sidecar's client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from core.delivery.ack_watch import Recheck
from core.domain.models import Delivery
from core.domain.session import SessionFailure


class EngineHooks(Protocol):
    """How the service tells the running engine that it has something to do."""

    def schedules_changed(self) -> None:
        """A schedule was created, edited, paused, resumed or deleted: re-arm timers."""

    def deliveries_queued(self) -> None:
        """Deliveries were queued (run now, retry): wake the sender."""


class NoEngine:
    """Hooks that do nothing: for a service used without an engine (tests, CLI)."""

    def schedules_changed(self) -> None:
        return None

    def deliveries_queued(self) -> None:
        return None


class UnackedWatch(Protocol):
    """The part of `AckWatch` behind the alert's Check again / Send again."""

    def unacked(self, deliveries: Sequence[Delivery]) -> list[Delivery]: ...
    async def check_again(self, run_id: int) -> Recheck: ...


class SchedulerInfo(Protocol):
    """Optional: the engine's own words about the scheduler, shown by `status()`."""

    def scheduler_state(self) -> str: ...


class HealthInfo(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def me(self) -> Mapping[str, str] | None: ...
    @property
    def failure(self) -> SessionFailure | None: ...


class QrInfo(Protocol):
    @property
    def qr(self) -> str: ...
    @property
    def png_base64(self) -> str: ...


class ContactInfo(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def number(self) -> str | None: ...


class GroupInfo(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def participants(self) -> tuple[str, ...]: ...


class WhatsAppPort(Protocol):
    """The part of `core.adapters.whatsapp.WhatsAppClient` the service uses."""

    async def health(self) -> HealthInfo: ...
    async def qr(self) -> QrInfo: ...
    async def pairing_code(self, phone: str) -> str: ...
    async def logout(self) -> None: ...
    async def contacts(self) -> Sequence[ContactInfo]: ...
    async def groups(self) -> Sequence[GroupInfo]: ...
