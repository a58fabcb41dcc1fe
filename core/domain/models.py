"""The records wasched keeps: contacts, templates, schedules, runs, deliveries, users.

All datetimes are timezone-aware UTC. Ids are short integers a person can type (`#12`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# WhatsApp refuses text messages longer than this many characters.
WHATSAPP_TEXT_LIMIT = 65536


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduleState(StrEnum):
    active = "active"
    paused = "paused"
    done = "done"


class RunTrigger(StrEnum):
    schedule = "schedule"
    manual = "manual"
    catch_up = "catch_up"


class DeliveryStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"
    missed = "missed"
    held = "held"
    # The owner skipped the occurrence (Skip next, Skip this one): never sent, not missed.
    skipped = "skipped"


# Order of the ack-driven states; an ack never moves a delivery backwards.
ACK_ORDER = {DeliveryStatus.sent: 1, DeliveryStatus.delivered: 2, DeliveryStatus.read: 3}
FINAL_STATUSES = frozenset(
    {
        DeliveryStatus.sent,
        DeliveryStatus.delivered,
        DeliveryStatus.read,
        DeliveryStatus.failed,
        DeliveryStatus.missed,
        DeliveryStatus.skipped,
    }
)


class RuleKind(StrEnum):
    once = "once"
    cron = "cron"
    interval = "interval"


class Rule(Record):
    """When a schedule fires, in the owner's time zone.

    - once: `at` (UTC instant).
    - cron: `cron`, a standard 5-field expression (Sunday is 0 or 7), read in `timezone`.
    - interval: every `every_seconds`, counted from `start` (UTC instant).

    A recurring rule may end: `ends_at` is the last instant an occurrence may fire
    (inclusive, UTC); `times` is the count typed (`5 times`), kept to say how many are left.
    """

    kind: RuleKind
    timezone: str
    at: datetime | None = None
    cron: str | None = None
    every_seconds: int | None = None
    start: datetime | None = None
    ends_at: datetime | None = None
    times: int | None = None


class RecipientKind(StrEnum):
    phone = "phone"
    contact = "contact"
    group = "group"


class Recipient(Record):
    """One addressee: `address` is `+E164` for phones and contacts, `...@g.us` for groups."""

    kind: RecipientKind
    address: str
    name: str | None = None
    contact_id: int | None = None


class Media(Record):
    mimetype: str
    filename: str
    data_base64: str


class User(Record):
    """A Telegram user of the bot."""

    telegram_id: int
    timezone: str | None = None
    is_owner: bool = False
    created_at: datetime


class Contact(Record):
    id: int
    name: str
    phone: str
    whatsapp_id: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    created_at: datetime


class Template(Record):
    id: int
    name: str
    text: str
    created_at: datetime


class NoAnswer(StrEnum):
    """What an ask-first schedule does when nobody answered by the due time."""

    send = "send"
    skip = "skip"


class Schedule(Record):
    id: int
    owner_id: int
    recipients: tuple[Recipient, ...]
    text: str | None = None
    template_id: int | None = None
    media: Media | None = None
    rule: Rule
    state: ScheduleState = ScheduleState.active
    next_run_at: datetime | None = None
    misfire_grace_s: int | None = None
    created_at: datetime
    updated_at: datetime
    # Ask the owner before each run (`core.delivery.asker`): this long before the due time
    # (None: the ASK_LEAD_S setting), and without an answer by then, `on_no_answer`.
    ask_first: bool = False
    ask_lead_s: int | None = None
    on_no_answer: NoAnswer = NoAnswer.send


class Run(Record):
    id: int
    schedule_id: int
    owner_id: int
    scheduled_for: datetime
    trigger: RunTrigger
    created_at: datetime
    # True once every delivery of the run is stored; a run left False by a crash is completed
    # (idempotently, by idempotency key) when its occurrence is claimed again.
    fanned_out: bool = False
    late_by_s: float = 0.0
    outcome: str | None = None


class Delivery(Record):
    id: int
    run_id: int
    schedule_id: int
    owner_id: int
    recipient: str
    recipient_name: str | None = None
    text: str
    idempotency_key: str
    status: DeliveryStatus = DeliveryStatus.queued
    attempts: int = 0
    last_error: str | None = None
    error_code: str | None = None
    whatsapp_id: str | None = None
    next_attempt_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None
    created_at: datetime
    queued_at: datetime | None = None
    sending_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    missed_at: datetime | None = None
    held_at: datetime | None = None
    skipped_at: datetime | None = None


class NewDelivery(Record):
    """What the engine hands the store when it fans a run out."""

    recipient: str
    recipient_name: str | None = None
    text: str
    idempotency_key: str
    status: DeliveryStatus = DeliveryStatus.queued
    # Why it cannot be sent, for one stored `failed` at once (`core.delivery.states`).
    last_error: str | None = None
    error_code: str | None = None


class DeliveryFilter(Record):
    """Which deliveries `Store.list_deliveries` returns: every given condition holds.

    `since <= created_at < until`; `newest` is highest id first (ids grow with creation).
    """

    run_id: int | None = None
    schedule_id: int | None = None
    owner_id: int | None = None
    statuses: tuple[DeliveryStatus, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    order: Literal["newest", "oldest"] = "newest"


class CheckedNumber(Record):
    """What WhatsApp said about a number when it was last asked (`POST /contacts/check`),
    remembered so that a number is asked at most once in a while."""

    number: str
    on_whatsapp: bool
    whatsapp_id: str | None = None
    checked_at: datetime


class AskChoice(StrEnum):
    """What the owner (or, with no answer, the schedule's policy) decided for an occurrence."""

    send_now = "send_now"
    at_time = "at_time"
    snooze = "snooze"
    skip = "skip"
    no_answer_sent = "no_answer_sent"
    no_answer_skipped = "no_answer_skipped"


class Ask(Record):
    """The question asked before one occurrence of an ask-first schedule: one per
    (schedule_id, occurrence), so two processes or a restart ask once.

    `told` is set once the notifier took the question (one asked but not told is told after
    a restart); `choice`, `chosen_by` (a Telegram id; None for the policy) and `chosen_at` are
    set once, by the first answer; `snoozed_until` is when a snoozed occurrence goes out."""

    id: int
    schedule_id: int
    owner_id: int
    occurrence: datetime
    asked_at: datetime
    told: bool = False
    choice: AskChoice | None = None
    chosen_by: int | None = None
    chosen_at: datetime | None = None
    snoozed_until: datetime | None = None
    # The run that sent (or skipped) the occurrence, once there is one.
    run_id: int | None = None
