"""The WhatsApp link: QR code and pairing code to link, logout, the account's groups, its
address book imported as contacts, and the state of it all for /status."""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from datetime import datetime

from core import __version__
from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppClient
from core.delivery.numbers import NumberGuard
from core.domain.errors import AlreadyExists, WhatsAppError
from core.domain.models import Contact, DeliveryStatus, Record, ScheduleState
from core.domain.recipients import looks_like_phone, parse_phone
from core.domain.session import NOT_CONFIGURED, UNREACHABLE, SessionFailure, SessionWords, explain
from core.services._shared import (
    MAX_NAME_LENGTH,
    NAME_FORBIDDEN,
    require_whatsapp,
    whatsapp_number,
)
from core.services.ports import SchedulerInfo


class ImportResult(Record):
    imported: int
    existing: int
    skipped: int
    contacts: tuple[Contact, ...]
    # Left out: WhatsApp says their number has no account.
    not_on_whatsapp: int = 0


class Group(Record):
    id: str
    name: str
    participants: int


class LinkQr(Record):
    """The QR code to link WhatsApp: the raw string and a PNG to show."""

    qr: str
    png: bytes


class Status(Record):
    whatsapp_state: str
    whatsapp_number: str | None
    whatsapp_name: str | None
    whatsapp_error: str | None
    # Why the session does not work, as the sidecar says (None while it works or is silent).
    whatsapp_failure: SessionFailure | None = None
    scheduler: str
    schedules: dict[ScheduleState, int]
    deliveries: dict[DeliveryStatus, int]
    next_run_at: datetime | None
    version: str

    @property
    def whatsapp_words(self) -> SessionWords:
        """Why WhatsApp is as it is and what to do about it (`core.domain.session.explain`)."""
        words = explain(self.whatsapp_state, self.whatsapp_failure)
        if self.whatsapp_error and not words.detail:
            return replace(words, detail=self.whatsapp_error)
        return words


# --- the service ---------------------------------------------------------------------------


class WhatsApp:
    """The linked WhatsApp account, as the bot offers it."""

    def __init__(
        self,
        store: Store,
        sidecar: WhatsAppClient | None,
        scheduler: SchedulerInfo | None,
        numbers: NumberGuard | None = None,
    ) -> None:
        self._store, self._whatsapp, self._scheduler = store, sidecar, scheduler
        # Checks the imported numbers with WhatsApp (an address book may hold numbers without).
        self._numbers = numbers

    async def groups(self) -> list[Group]:
        """The WhatsApp groups of the linked account, by name."""
        found = await require_whatsapp(self._whatsapp).groups()
        groups = [Group(id=g.id, name=g.name, participants=len(g.participants)) for g in found]
        return sorted(groups, key=lambda g: g.name.lower())

    async def link_qr(self) -> LinkQr:
        """The QR code to scan in WhatsApp (Linked devices) while the session waits for it."""
        code = await require_whatsapp(self._whatsapp).qr()
        try:
            png = base64.b64decode(code.png_base64, validate=True)
        except (binascii.Error, ValueError):
            png = b""
        return LinkQr(qr=code.qr, png=png)

    async def pairing_code(self, phone: str) -> str:
        """A code to type in WhatsApp instead of scanning the QR code."""
        return await require_whatsapp(self._whatsapp).pairing_code(parse_phone(phone))

    async def logout(self) -> None:
        await require_whatsapp(self._whatsapp).logout()

    async def status(self) -> Status:
        """WhatsApp state, scheduler state, counts and the next run, for `/status`."""
        state, number, wa_name, error = NOT_CONFIGURED, None, None, None
        failure: SessionFailure | None = None
        if self._whatsapp is not None:
            try:
                health = await self._whatsapp.health()
            except WhatsAppError as exc:
                state, error = UNREACHABLE, str(exc)
            else:
                state, failure = health.state, health.failure
                if health.me:
                    number = whatsapp_number(health.me.get("id", ""))
                    wa_name = health.me.get("name") or None
        return Status(
            whatsapp_state=state,
            whatsapp_number=number,
            whatsapp_name=wa_name,
            whatsapp_error=error,
            whatsapp_failure=failure,
            scheduler=self._scheduler.scheduler_state() if self._scheduler else "not running",
            schedules=await self._store.count_schedules(),
            deliveries=await self._store.count_deliveries(),
            next_run_at=await self._store.next_due_at(),
            version=__version__,
        )

    async def import_contacts(self) -> ImportResult:
        """Add the linked WhatsApp account's contacts; existing names and numbers are kept."""
        found = await require_whatsapp(self._whatsapp).contacts()
        existing = await self._store.list_contacts()
        names = {c.name.lower() for c in existing}
        numbers = {c.phone for c in existing}
        imported: list[Contact] = []
        already = skipped = 0
        usable = [whatsapp_number(item.number or item.id) for item in found]
        refused: set[str] = set()
        if self._numbers is not None:
            verdict = await self._numbers.check([n for n in usable if n is not None])
            refused = set(verdict.not_on_whatsapp)
        for item in found:
            name = " ".join(NAME_FORBIDDEN.sub(" ", item.name).split())[:MAX_NAME_LENGTH]
            number = whatsapp_number(item.number or item.id)
            if not name or number is None or looks_like_phone(name):
                skipped += 1
                continue
            if number in refused:
                continue
            if name.lower() in names or number in numbers:
                already += 1
                continue
            try:
                contact = await self._store.add_contact(name, number, whatsapp_id=item.id or None)
            except AlreadyExists:
                already += 1
                continue
            names.add(name.lower())
            numbers.add(number)
            imported.append(contact)
        return ImportResult(
            imported=len(imported),
            existing=already,
            skipped=skipped,
            contacts=tuple(imported),
            not_on_whatsapp=len({n for n in usable if n in refused}),
        )
