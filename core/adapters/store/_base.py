"""What both stores do alike, written once (as httpx writes `BaseClient` under its two clients):
argument checks and normalizing, the fields of new records, what is given in a partial update,
the wording of errors, and how driver errors become store errors.

`SQLiteStore` and `MongoStore` inherit `BaseStore`, answer the few queries it leaves abstract
(records by id, named records, the user upsert, delivery inserts and conditional updates), and
write the methods only a query can answer themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from core.adapters.store import UNSET
from core.adapters.store._records import (
    Changes,
    Statuses,
    delivery_changes,
    expected_statuses,
    iso,
    name_key,
    normalized_rule,
    now,
    state_counts,
    status_counts,
    utc,
    utc_or_none,
)
from core.delivery.states import DeliveryChange
from core.domain.errors import (
    AlreadyExists,
    DuplicateRun,
    NotFound,
    ScheduleMoved,
    StoreError,
    TargetNotEmpty,
)
from core.domain.models import (
    Ask,
    AskChoice,
    Contact,
    Delivery,
    DeliveryStatus,
    Media,
    NewDelivery,
    NoAnswer,
    Recipient,
    Rule,
    Run,
    Schedule,
    ScheduleState,
    Template,
    User,
)

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Exception)


class Conflict(StoreError):
    """A unique index refused a write; the method that wrote says what it means to the caller
    (`AlreadyExists`, `DuplicateRun`)."""


@contextmanager
def translated(driver_error: type[E], store_error: Callable[[E], StoreError]) -> Iterator[None]:
    """Raise what `store_error` (each store has one) makes of a driver's error."""
    try:
        yield
    except driver_error as exc:
        raise store_error(exc) from exc


# What the stores say ------------------------------------------------------------------------


def name_taken(kind: str, name: str) -> AlreadyExists:
    return AlreadyExists(f"A {kind} named {name!r} exists already.")


def not_found(kind: str, record_id: int) -> NotFound:
    return NotFound(f"There is no {kind} #{record_id}.")


def run_exists(schedule_id: int, scheduled_for: datetime) -> DuplicateRun:
    return DuplicateRun(f"Schedule #{schedule_id} already has a run for {iso(scheduled_for)}.")


def no_longer_due(schedule_id: int, scheduled_for: datetime) -> ScheduleMoved:
    return ScheduleMoved(f"Schedule #{schedule_id} is no longer due at {iso(scheduled_for)}.")


def target_not_empty() -> TargetNotEmpty:
    return TargetNotEmpty("The target database already holds data: import into an empty one.")


@contextmanager
def unique_name(kind: str, name: str) -> Iterator[None]:
    """A write that a record of the same name refused raises `AlreadyExists`."""
    try:
        yield
    except Conflict as exc:
        raise name_taken(kind, name) from exc


def given(**values: Any) -> dict[str, Any]:
    """The arguments of a partial update that were given (not `UNSET`)."""
    return {name: value for name, value in values.items() if value is not UNSET}


class BaseStore(ABC):
    """The `Store` methods whose work is the same on every database, over abstract queries."""

    # queries each store answers ----------------------------------------------------------

    @abstractmethod
    async def _get(self, model: type[M], record_id: int) -> M | None:
        """The record of that id (contacts, templates, schedules, runs, deliveries)."""

    @abstractmethod
    async def _find_named(self, model: type[M], key: str) -> M | None:
        """The contact or template whose `name_key` is `key`."""

    @abstractmethod
    async def _list_named(self, model: type[M]) -> list[M]:
        """Every contact or template, by `name_key`, then id."""

    @abstractmethod
    async def _insert(
        self, model: type[M], values: dict[str, Any], *, name_key: str | None = None
    ) -> M:
        """Store a new record of `values` (all its fields but the id) under the next id; with
        `name_key` also that, raising `Conflict` when another record has it."""

    @abstractmethod
    async def _update(self, model: type[M], record_id: int, changes: dict[str, Any]) -> M | None:
        """Set `changes` (no change: read it); None when there is no such record. Raise
        `Conflict` when a changed `name_key` is another record's."""

    @abstractmethod
    async def _delete(self, model: type[BaseModel], record_id: int) -> bool: ...

    @abstractmethod
    async def _upsert_user(
        self, telegram_id: int, *, insert: dict[str, Any], changes: dict[str, Any]
    ) -> User:
        """Create the user with `insert` (every field but its id), or set `changes` on it."""

    @abstractmethod
    async def _insert_deliveries(
        self, run: Run, deliveries: Sequence[NewDelivery], *, at: datetime
    ) -> dict[str, Delivery]:
        """Insert those whose idempotency key (one each) is new; return every key's delivery."""

    @abstractmethod
    async def _update_delivery(
        self, delivery_id: int, changes: Changes, statuses: Statuses | None, worker: str | None
    ) -> Delivery | None:
        """`update_delivery` with its arguments checked (`delivery_changes`)."""

    @abstractmethod
    async def _count_by(
        self, model: type[BaseModel], field: str, values: Iterable[StrEnum]
    ) -> dict[str, int]:
        """How many records have each of `values` in `field` (values no record has may lack)."""

    # users --------------------------------------------------------------------------------

    async def upsert_user(
        self, telegram_id: int, *, timezone: str | None = UNSET, is_owner: bool = UNSET
    ) -> User:
        changes = given(timezone=timezone, is_owner=is_owner)
        if "is_owner" in changes:
            changes["is_owner"] = bool(is_owner)
        insert = {"timezone": None, "is_owner": False, **changes, "created_at": now()}
        return await self._upsert_user(telegram_id, insert=insert, changes=changes)

    # contacts ------------------------------------------------------------------------------

    async def add_contact(
        self,
        name: str,
        phone: str,
        *,
        whatsapp_id: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> Contact:
        values = {
            "name": name,
            "phone": phone,
            "whatsapp_id": whatsapp_id,
            "fields": dict(fields or {}),
            "created_at": now(),
        }
        with unique_name("contact", name):
            return await self._insert(Contact, values, name_key=name_key(name))

    async def get_contact(self, contact_id: int) -> Contact | None:
        return await self._get(Contact, contact_id)

    async def find_contact(self, name: str) -> Contact | None:
        return await self._find_named(Contact, name_key(name))

    async def list_contacts(self) -> list[Contact]:
        return await self._list_named(Contact)

    async def update_contact(
        self,
        contact_id: int,
        *,
        name: str = UNSET,
        phone: str = UNSET,
        whatsapp_id: str | None = UNSET,
        fields: dict[str, str] = UNSET,
    ) -> Contact:
        changes = given(name=name, phone=phone, whatsapp_id=whatsapp_id, fields=fields)
        if "name" in changes:
            changes["name_key"] = name_key(name)
        if "fields" in changes:
            changes["fields"] = dict(fields)
        with unique_name("contact", name):
            contact = await self._update(Contact, contact_id, changes)
        if contact is None:
            raise not_found("contact", contact_id)
        return contact

    async def delete_contact(self, contact_id: int) -> bool:
        return await self._delete(Contact, contact_id)

    # templates -----------------------------------------------------------------------------

    async def add_template(self, name: str, text: str) -> Template:
        values = {"name": name, "text": text, "created_at": now()}
        with unique_name("template", name):
            return await self._insert(Template, values, name_key=name_key(name))

    async def get_template(self, template_id: int) -> Template | None:
        return await self._get(Template, template_id)

    async def find_template(self, name: str) -> Template | None:
        return await self._find_named(Template, name_key(name))

    async def list_templates(self) -> list[Template]:
        return await self._list_named(Template)

    async def delete_template(self, template_id: int) -> bool:
        return await self._delete(Template, template_id)

    # schedules -----------------------------------------------------------------------------

    async def add_schedule(
        self,
        *,
        owner_id: int,
        recipients: Sequence[Recipient],
        rule: Rule,
        next_run_at: datetime | None,
        text: str | None = None,
        template_id: int | None = None,
        media: Media | None = None,
        state: ScheduleState = ScheduleState.active,
        misfire_grace_s: int | None = None,
    ) -> Schedule:
        at = now()
        values = {
            "owner_id": owner_id,
            "recipients": tuple(recipients),
            "text": text,
            "template_id": template_id,
            "media": media,
            "rule": normalized_rule(rule),
            "state": ScheduleState(state),
            "next_run_at": utc_or_none(next_run_at),
            "misfire_grace_s": misfire_grace_s,
            "created_at": at,
            "updated_at": at,
        }
        return await self._insert(Schedule, values)

    async def get_schedule(self, schedule_id: int) -> Schedule | None:
        return await self._get(Schedule, schedule_id)

    async def update_schedule(
        self,
        schedule_id: int,
        *,
        recipients: Sequence[Recipient] = UNSET,
        rule: Rule = UNSET,
        text: str | None = UNSET,
        template_id: int | None = UNSET,
        media: Media | None = UNSET,
        state: ScheduleState = UNSET,
        next_run_at: datetime | None = UNSET,
    ) -> Schedule:
        changes = given(
            recipients=recipients,
            rule=rule,
            text=text,
            template_id=template_id,
            media=media,
            state=state,
            next_run_at=next_run_at,
        )
        if "recipients" in changes:
            changes["recipients"] = tuple(recipients)
        if "rule" in changes:
            changes["rule"] = normalized_rule(rule)
        if "state" in changes:
            changes["state"] = ScheduleState(state)
        if "next_run_at" in changes:
            changes["next_run_at"] = utc_or_none(next_run_at)
        changes["updated_at"] = now()
        schedule = await self._update(Schedule, schedule_id, changes)
        if schedule is None:
            raise not_found("schedule", schedule_id)
        return schedule

    async def delete_schedule(self, schedule_id: int) -> bool:
        return await self._delete(Schedule, schedule_id)

    async def count_schedules(self) -> dict[ScheduleState, int]:
        return state_counts(await self._count_by(Schedule, "state", ScheduleState))

    # runs -----------------------------------------------------------------------------------

    async def get_run(self, run_id: int) -> Run | None:
        return await self._get(Run, run_id)

    async def mark_run_fanned_out(self, run_id: int) -> None:
        await self._update_run(run_id, {"fanned_out": True})

    async def set_run_outcome(self, run_id: int, outcome: str) -> None:
        await self._update_run(run_id, {"outcome": outcome})

    async def _update_run(self, run_id: int, changes: dict[str, Any]) -> None:
        if await self._update(Run, run_id, changes) is None:
            raise not_found("run", run_id)

    # deliveries -----------------------------------------------------------------------------

    async def add_deliveries(
        self, run: Run, deliveries: Sequence[NewDelivery], *, now: datetime
    ) -> list[Delivery]:
        if not deliveries:
            return []
        # One of each key, the first given: a key's later ones are the same delivery again.
        first: dict[str, NewDelivery] = {}
        for new in deliveries:
            first.setdefault(new.idempotency_key, new)
        found = await self._insert_deliveries(run, list(first.values()), at=utc(now))
        return [found[new.idempotency_key] for new in deliveries]

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        return await self._get(Delivery, delivery_id)

    async def update_delivery(
        self,
        delivery_id: int,
        *,
        expected_status: DeliveryStatus | Sequence[DeliveryStatus] | None = None,
        worker: str | None = None,
        **fields: Any,
    ) -> Delivery | None:
        return await self._update_delivery(
            delivery_id, delivery_changes(fields), expected_statuses(expected_status), worker
        )

    async def apply(self, change: DeliveryChange) -> Delivery | None:
        return await self.update_delivery(
            change.delivery_id,
            expected_status=change.expected,
            worker=change.worker,
            **change.fields(),
        )

    async def count_deliveries(self) -> dict[DeliveryStatus, int]:
        return status_counts(await self._count_by(Delivery, "status", DeliveryStatus))

    # ask first ------------------------------------------------------------------------------

    @abstractmethod
    async def find_ask(self, schedule_id: int, occurrence: datetime) -> Ask | None: ...

    @abstractmethod
    async def open_asks(self) -> list[Ask]: ...

    @abstractmethod
    async def asks_of_runs(self, run_ids: Sequence[int]) -> dict[int, Ask]: ...

    @abstractmethod
    async def _choose(self, ask_id: int, changes: dict[str, Any]) -> Ask | None:
        """Set `changes` on the ask while it has no choice; None when it has one."""

    async def set_ask_first(
        self,
        schedule_id: int,
        *,
        ask_first: bool,
        ask_lead_s: int | None = None,
        on_no_answer: NoAnswer = NoAnswer.send,
    ) -> Schedule:
        changes = {
            "ask_first": ask_first,
            "ask_lead_s": ask_lead_s,
            "on_no_answer": NoAnswer(on_no_answer),
            "updated_at": now(),
        }
        schedule = await self._update(Schedule, schedule_id, changes)
        if schedule is None:
            raise not_found("schedule", schedule_id)
        return schedule

    async def insert_ask(
        self, schedule: Schedule, occurrence: datetime, *, now: datetime
    ) -> Ask | None:
        values = {
            "schedule_id": schedule.id,
            "owner_id": schedule.owner_id,
            "occurrence": utc(occurrence),
            "asked_at": utc(now),
        }
        try:
            return await self._insert(Ask, values)
        except Conflict:
            return None

    async def get_ask(self, ask_id: int) -> Ask | None:
        return await self._get(Ask, ask_id)

    async def mark_ask_told(self, ask_id: int) -> None:
        await self._update(Ask, ask_id, {"told": True})

    async def set_ask_run(self, ask_id: int, run_id: int) -> None:
        await self._update(Ask, ask_id, {"run_id": run_id})

    async def choose(
        self,
        ask_id: int,
        choice: AskChoice,
        *,
        by: int | None,
        at: datetime,
        snoozed_until: datetime | None = None,
    ) -> Ask | None:
        changes = {
            "choice": AskChoice(choice),
            "chosen_by": by,
            "chosen_at": utc(at),
            "snoozed_until": utc_or_none(snoozed_until),
        }
        return await self._choose(ask_id, changes)
