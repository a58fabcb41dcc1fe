"""The `Store` protocol: the only truth about schedules, runs and deliveries.

Two implementations pass one contract test suite: `SQLiteStore` (embedded default) and
`MongoStore` (PyMongo async). Both are safe with several processes on one database: runs are
unique on (schedule, scheduled_for), `next_run_at` moves by compare-and-set, and deliveries are
claimed atomically with a lease. Both inherit `_base.BaseStore`, which does what is not a query
(argument checks, partial updates, new records, error texts), and keep only their queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from core.delivery.states import DeliveryChange
from core.domain.models import (
    Ask,
    AskChoice,
    CheckedNumber,
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Media,
    NewDelivery,
    NoAnswer,
    Recipient,
    Rule,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
    Template,
    User,
)

# Sentinel for "leave this field as it is" in partial updates.
UNSET: Any = object()


class SentRecord(NamedTuple):
    """One delivery the sidecar accepted: its WhatsApp message id and its attempts so far."""

    delivery_id: int
    whatsapp_id: str
    attempts: int


class DeliveryTimes(NamedTuple):
    """What /stats needs of one delivery: where it got and when (a projection, no text)."""

    schedule_id: int
    status: DeliveryStatus
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None


class Store(Protocol):
    """Persistence for every record; all methods translate driver errors to `StoreError`.

    Datetimes go in timezone-aware (naive ones raise `ValueError`) and come out aware UTC,
    truncated to the millisecond in both stores (all MongoDB keeps).
    """

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreError` when the database cannot be reached."""

    # users ---------------------------------------------------------------------------
    async def get_user(self, telegram_id: int) -> User | None: ...
    async def upsert_user(
        self, telegram_id: int, *, timezone: str | None = UNSET, is_owner: bool = UNSET
    ) -> User: ...
    async def list_users(self) -> list[User]: ...

    # key/value for small global facts (the one-time owner code, versions) -----------------
    async def get_value(self, key: str) -> str | None: ...
    async def set_value(self, key: str, value: str | None) -> None: ...

    # contacts ------------------------------------------------------------------------
    async def add_contact(
        self,
        name: str,
        phone: str,
        *,
        whatsapp_id: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> Contact:
        """Raise `AlreadyExists` when a contact of that name (case-insensitive) exists."""

    async def get_contact(self, contact_id: int) -> Contact | None: ...
    async def find_contact(self, name: str) -> Contact | None:
        """Case-insensitive exact name match."""

    async def list_contacts(self) -> list[Contact]: ...
    async def update_contact(
        self,
        contact_id: int,
        *,
        name: str = UNSET,
        phone: str = UNSET,
        whatsapp_id: str | None = UNSET,
        fields: dict[str, str] = UNSET,
    ) -> Contact: ...
    async def delete_contact(self, contact_id: int) -> bool: ...

    # templates -----------------------------------------------------------------------
    async def add_template(self, name: str, text: str) -> Template:
        """Raise `AlreadyExists` when a template of that name (case-insensitive) exists."""

    async def get_template(self, template_id: int) -> Template | None: ...
    async def find_template(self, name: str) -> Template | None: ...
    async def list_templates(self) -> list[Template]: ...
    async def delete_template(self, template_id: int) -> bool: ...

    # schedules -----------------------------------------------------------------------
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
    ) -> Schedule: ...

    async def get_schedule(self, schedule_id: int) -> Schedule | None: ...
    async def list_schedules(
        self,
        *,
        owner_id: int | None = None,
        states: Sequence[ScheduleState] | None = None,
    ) -> list[Schedule]:
        """Ordered by id."""

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
        """Raise `NotFound` when it does not exist."""

    async def delete_schedule(self, schedule_id: int) -> bool:
        """Delete the schedule; its runs and deliveries stay for the logs."""

    async def advance_schedule(
        self,
        schedule_id: int,
        *,
        expected_next_run_at: datetime | None,
        next_run_at: datetime | None,
        state: ScheduleState | None = None,
    ) -> bool:
        """Compare-and-set: move `next_run_at` (and optionally state) only if it still equals
        `expected_next_run_at`. Return False when another process moved it first."""

    async def due_schedules(self, now: datetime, *, limit: int | None = None) -> list[Schedule]:
        """Active schedules whose `next_run_at <= now`, earliest first."""

    async def next_due_at(self) -> datetime | None:
        """The earliest `next_run_at` of any active schedule."""

    async def count_schedules(self) -> dict[ScheduleState, int]: ...

    # runs ----------------------------------------------------------------------------
    async def insert_run(
        self,
        *,
        schedule_id: int,
        owner_id: int,
        scheduled_for: datetime,
        trigger: RunTrigger,
        late_by_s: float = 0.0,
        outcome: str | None = None,
        only_if_due: bool = False,
    ) -> Run:
        """Raise `DuplicateRun` when a scheduled (non-manual) run for this
        (schedule_id, scheduled_for) exists already. Manual runs are never duplicates.

        With `only_if_due`, raise `ScheduleMoved` and store nothing unless the schedule is
        still active with `next_run_at == scheduled_for`. SQLite checks it in the insert's
        own statement. MongoDB checks it one round trip before the insert: schedule and run
        are two documents, and one write covering both needs a transaction (a replica set).
        So a pause, edit or delete that commits in that round trip returns before the run is
        stored: the occurrence fires once, as on SQLite when the insert commits just before
        the change, but its run appears after the change. No write to the schedule before
        the insert closes that: `update_schedule` and `delete_schedule` match on the id
        alone, so a claim field or a compare-and-set of `next_run_at` set first does not stop
        them, and they land after it as they land after the check. Moving `next_run_at` on
        in that write would also lose the occurrence to an insert that fails after it (only
        the engine knows the next one, and it moves it after the insert: `advance_schedule`).
        Inserting first and checking after would have to delete the run, which another
        process, answered `DuplicateRun` meanwhile, may be fanning out. Closing it needs a
        transaction, or schedule writes that refuse while a claim is open."""

    async def get_run(self, run_id: int) -> Run | None: ...
    async def find_run(self, schedule_id: int, scheduled_for: datetime) -> Run | None:
        """The scheduled (non-manual) run of that occurrence, if any."""

    async def mark_run_fanned_out(self, run_id: int) -> None: ...
    async def unfinished_runs(self) -> list[Run]:
        """Runs not yet fanned out (left so by a crash)."""

    async def list_runs(self, *, schedule_id: int | None = None, limit: int = 50) -> list[Run]:
        """Newest first."""

    async def set_run_outcome(self, run_id: int, outcome: str) -> None: ...

    # deliveries ----------------------------------------------------------------------
    async def add_deliveries(
        self, run: Run, deliveries: Sequence[NewDelivery], *, now: datetime
    ) -> list[Delivery]:
        """Insert all at once; a delivery whose idempotency key exists is not inserted twice
        (the existing one is returned in its place). New ones get `created_at`,
        `next_attempt_at` and the time of their status (`queued_at`, `held_at`...) = `now`."""

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...
    async def find_delivery_by_whatsapp_id(self, whatsapp_id: str) -> Delivery | None: ...

    async def claim_delivery(
        self, *, now: datetime, lease_s: float, worker: str
    ) -> Delivery | None:
        """Atomically take the oldest due delivery and move it to `sending` with a lease.

        Due: `queued` with `next_attempt_at <= now`, or `sending` whose lease ended
        (`lease_until <= now`, a crashed worker). Increments nothing; the caller records
        attempts. Two workers never get the same delivery while its lease runs.
        Order: ended leases first (earliest `lease_until`), then queued by
        (`next_attempt_at`, id). Sets `lease_owner`, `lease_until` and `sending_at`."""

    async def claim_deliveries(
        self, *, now: datetime, lease_s: float, worker: str, limit: int
    ) -> list[Delivery]:
        """Take up to `limit` due deliveries at once, as `claim_delivery` would one after
        another (same choice, same lease), ordered by (`next_attempt_at`, id).

        One round trip where the database allows it, so a sender that sends several at once
        pays for one claim; two workers never get the same delivery while its lease runs.
        MongoDB cannot update the first n and return them: it looks for candidates, takes
        them with one conditional update and reads back what it took (4 round trips a batch).
        """

    async def record_sent(
        self, sent: Sequence[SentRecord], *, worker: str, now: datetime
    ) -> list[int]:
        """Move each delivery that is still `sending` under `worker`'s lease to `sent`: its
        `whatsapp_id` and `attempts`, `sent_at = now`, error and lease cleared. Return the ids
        that moved; the others were taken over by another worker and are left as they are."""

    async def update_delivery(
        self,
        delivery_id: int,
        *,
        expected_status: DeliveryStatus | Sequence[DeliveryStatus] | None = None,
        worker: str | None = None,
        **fields: Any,
    ) -> Delivery | None:
        """Set `fields` (names of `Delivery` attributes) if the delivery is in
        `expected_status` (when given) and, when `worker` is given, still leased by it.
        Return the updated delivery, or None when the condition did not hold. Core changes
        a delivery's state only through `apply`; this is for `apply` and for tests' set-up."""

    async def release_held(self, *, now: datetime) -> int:
        """Move every `held` delivery back to `queued`, due now. Return how many."""

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]: ...
    async def count_deliveries(self) -> dict[DeliveryStatus, int]: ...
    async def count_unacked(self, *, sent_before: datetime) -> int:
        """How many deliveries are still `sent` with `sent_at <= sent_before`."""

    async def next_delivery_due_at(self) -> datetime | None:
        """Earliest `next_attempt_at` of a queued delivery, or earliest `lease_until` of a
        sending one, whichever is sooner."""

    # migration -----------------------------------------------------------------------
    async def is_empty(self) -> bool: ...
    async def export_all(self) -> dict[str, list[dict[str, Any]]]:
        """Every record as plain dicts (JSON-ready), keyed by collection name; also `values`
        ({key, value}) and `counters` ({name, last_id}, so ids of deleted records stay unused)."""

    async def import_all(self, data: dict[str, list[dict[str, Any]]]) -> None:
        """Insert records from `export_all`, ids intact, and move id counters past them."""

    # receipts ------------------------------------------------------------------------
    async def sent_deliveries(
        self,
        *,
        statuses: Sequence[DeliveryStatus],
        since: datetime,
        after_id: int | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries in `statuses` with `since <= sent_at <= until` (no upper bound without
        `until`), by (`sent_at`, id), at most `limit`; with `after_id`, only those after
        (`since`, `after_id`): the next page, which never stalls on many deliveries sent in
        the same instant."""

    # health --------------------------------------------------------------------------
    async def check_writes(self) -> None:
        """Write one small record; raise `StoreError` (what failed, what to do) when the
        database does not take writes (read-only, disk full, locked)."""

    # delivery states -----------------------------------------------------------------
    async def apply(self, change: DeliveryChange) -> Delivery | None:
        """Write `change` (`core.delivery.states`) if the delivery is still in one of
        `change.expected` and, when `change.worker` is given, still leased by it. Return the
        changed delivery, or None when the delivery moved on (or does not exist)."""

    # schedules that end ---------------------------------------------------------------
    async def count_occurrences_sent(self, schedule_id: int) -> int:
        """The schedule's occurrences that went out: its scheduled runs (not manual ones)
        that were neither missed nor skipped (they have no `outcome`)."""

    # key/value, once -----------------------------------------------------------------
    async def claim_value(self, key: str, value: str) -> bool:
        """Set `key` to `value` unless it has a value; True when this call set it (of several
        processes claiming one key at once, exactly one gets True)."""

    # stats ---------------------------------------------------------------------------
    async def delivery_times(
        self, *, since: datetime, until: datetime, owner_id: int | None = None
    ) -> list[DeliveryTimes]:
        """The times of each delivery of `owner_id` (every owner's for None) sent, or failed,
        in `since <= t < until`, by id: only those fields, never the text."""

    # number checks -------------------------------------------------------------------
    async def number_checks(self, numbers: Sequence[str]) -> dict[str, CheckedNumber]:
        """What was last heard about each of `numbers` (those never checked left out)."""

    async def save_number_checks(self, checks: Sequence[CheckedNumber]) -> None:
        """Remember `checks`, each replacing what was known of its number."""

    # ask first (`core.delivery.asker`) -------------------------------------------------
    async def set_ask_first(
        self,
        schedule_id: int,
        *,
        ask_first: bool,
        ask_lead_s: int | None = None,
        on_no_answer: NoAnswer = NoAnswer.send,
    ) -> Schedule:
        """Turn asking before each run on or off, with its lead and no-answer policy."""

    async def insert_ask(
        self, schedule: Schedule, occurrence: datetime, *, now: datetime
    ) -> Ask | None:
        """Store the question for (schedule, occurrence); None when it was asked already."""

    async def get_ask(self, ask_id: int) -> Ask | None: ...
    async def find_ask(self, schedule_id: int, occurrence: datetime) -> Ask | None: ...
    async def open_asks(self) -> list[Ask]:
        """Asks not told yet, and snoozed ones whose run is not stored yet, by id."""

    async def mark_ask_told(self, ask_id: int) -> None: ...
    async def set_ask_run(self, ask_id: int, run_id: int) -> None: ...
    async def choose(
        self,
        ask_id: int,
        choice: AskChoice,
        *,
        by: int | None,
        at: datetime,
        snoozed_until: datetime | None = None,
    ) -> Ask | None:
        """Record the first answer to the ask; None when it has one already (or is gone)."""

    async def asks_of_runs(self, run_ids: Sequence[int]) -> dict[int, Ask]:
        """The ask behind each of these runs that had one, by run id (for the logs)."""


async def open_store(database_url: str) -> Store:
    """Open the store that `database_url` names: `sqlite:///path` or `mongodb://...`."""
    from core.domain.errors import ConfigError

    if database_url.startswith("sqlite:"):
        from core.adapters.store.sqlite import SQLiteStore

        return await SQLiteStore.open(database_url)
    if database_url.startswith(("mongodb://", "mongodb+srv://")):
        from core.adapters.store.mongo import MongoStore

        return await MongoStore.open(database_url)
    raise ConfigError(
        "DATABASE_URL must start with sqlite:/// or mongodb://, "
        "for example DATABASE_URL=sqlite:///data/wasched.db"
    )
