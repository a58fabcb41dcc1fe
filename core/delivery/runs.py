"""Fan a run out into deliveries: the one path for scheduled, catch-up and manual runs.

A run is inserted first (unique per occurrence for non-manual triggers), then one delivery per
recipient is stored (`skipped` ones for an occurrence the owner skipped) with the stable
idempotency key `run<id>:<address>`, then the run is marked fanned out. A crash between the
steps leaves a run that `complete_run` finishes with the same keys, so no recipient gets the
occurrence twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from core.adapters.counters import observe_send_delay
from core.adapters.store import Store
from core.delivery import states
from core.delivery.numbers import NumberGuard
from core.domain.clock import Clock
from core.domain.errors import DuplicateRun, NotFound, WaschedError
from core.domain.models import (
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
    Recipient,
    RecipientKind,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)
from core.domain.render import render
from core.domain.when import next_fire_time

logger = logging.getLogger(__name__)

# The outcome of a run whose occurrence the owner skipped: its deliveries are `skipped`.
SKIPPED = "skipped"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Taken(NamedTuple):
    """An occurrence taken ahead of the engine: its run and deliveries, and the schedule as
    it ended when moving past the occurrence ended a recurring schedule (`advance_past`)."""

    run: Run
    deliveries: list[Delivery]
    ended: Schedule | None = None


def idempotency_key(run: Run, recipient: Recipient) -> str:
    """`run<id>.<created, ms since epoch>:<address>`: stable for the run, and unique beyond one
    database, because the sidecar remembers keys for weeks and a new database (a deleted
    `data/wasched.db`, another DATABASE_URL) numbers its runs from 1 again."""
    created_ms = (run.created_at - _EPOCH) // timedelta(milliseconds=1)
    return f"run{run.id}.{created_ms}:{recipient.address}"


async def load_contacts(store: Store, recipients: Sequence[Recipient]) -> dict[int, Contact]:
    """The saved contacts behind contact recipients, by id (deleted ones are left out)."""
    contacts: dict[int, Contact] = {}
    for recipient in recipients:
        if recipient.kind is not RecipientKind.contact or recipient.contact_id is None:
            continue
        if recipient.contact_id in contacts:
            continue
        contact = await store.get_contact(recipient.contact_id)
        if contact is not None:
            contacts[contact.id] = contact
    return contacts


async def message_text(store: Store, schedule: Schedule) -> str:
    """The schedule's text before rendering: its template's text (read now), or its own."""
    if schedule.template_id is not None:
        template = await store.get_template(schedule.template_id)
        if template is not None:
            return template.text
        if schedule.text is None:
            raise NotFound(
                f"The template of schedule #{schedule.id} was deleted: "
                f"give it a text with /edit {schedule.id}."
            )
    return schedule.text or ""


async def render_deliveries(store: Store, schedule: Schedule, run: Run) -> list[NewDelivery]:
    """One `NewDelivery` per recipient; one that cannot be rendered is failed, with why."""
    contacts = await load_contacts(store, schedule.recipients)
    text: str | None = None
    template_error = ""
    try:
        text = await message_text(store, schedule)
    except WaschedError as exc:
        template_error = str(exc)
    new: list[NewDelivery] = []
    for recipient in schedule.recipients:
        key = idempotency_key(run, recipient)
        contact = contacts.get(recipient.contact_id) if recipient.contact_id else None
        name = contact.name if contact is not None else recipient.name
        if text is None:
            rendered, error = "", template_error
        else:
            try:
                rendered = render(
                    text,
                    recipient=recipient,
                    contact=contact,
                    when=run.scheduled_for,
                    tz=schedule.rule.timezone,
                )
                error = None
            except WaschedError as exc:
                rendered, error = "", str(exc)
        one = NewDelivery(
            recipient=recipient.address,
            recipient_name=name,
            text=rendered,
            idempotency_key=key,
        )
        new.append(one if error is None else states.render_failed(one, error))
    return new


async def fail_numbers_without_whatsapp(
    guard: NumberGuard, schedule: Schedule, new: list[NewDelivery]
) -> list[NewDelivery]:
    """`new` with each one to a number that has no WhatsApp account failed at once.

    Checked here, as the run fans out, and not when the sender claims a delivery: a check may
    wait on the sidecar (one WhatsApp lookup per number not remembered), and meanwhile the
    sender keeps sending what other runs queued; only this run waits for its own numbers.
    Numbers the sidecar cannot check now (not linked, down) are sent as they are: its lookup
    before each send still refuses one without WhatsApp.
    """
    numbers = [
        one.recipient
        for one in new
        if one.status is DeliveryStatus.queued and one.recipient.startswith("+")
    ]
    if not numbers:
        return new
    verdict = await guard.check(numbers)
    refused = set(verdict.not_on_whatsapp)
    return [
        states.without_whatsapp(
            one,
            f"{one.recipient} has no WhatsApp account (checked with WhatsApp before this "
            f"run), so it was not sent: fix the number or remove it with /edit {schedule.id}.",
        )
        if one.recipient in refused and one.status is DeliveryStatus.queued
        else one
        for one in new
    ]


async def _fan_out(
    store: Store, clock: Clock, schedule: Schedule, run: Run, guard: NumberGuard | None
) -> list[Delivery]:
    new = await render_deliveries(store, schedule, run)
    if run.outcome == SKIPPED:
        new = [states.skipped(one) for one in new]
    elif guard is not None:
        new = await fail_numbers_without_whatsapp(guard, schedule, new)
    # A run finished after a crash may hold some of these already: their failure was said.
    earlier: set[str] = set()
    if any(one.error_code in ("render_failed", "not_on_whatsapp") for one in new):
        stored = await store.list_deliveries(DeliveryFilter(run_id=run.id))
        earlier = {delivery.idempotency_key for delivery in stored}
    deliveries = await store.add_deliveries(run, new, now=clock.now())
    for one, delivery in zip(new, deliveries, strict=True):
        if one.idempotency_key in earlier:
            continue
        if one.error_code == "not_on_whatsapp":
            logger.warning(  # without the number
                "run %s (schedule %s): delivery %s not sent: the number has no WhatsApp account",
                run.id,
                run.schedule_id,
                delivery.id,
            )
        elif one.error_code == "render_failed":
            logger.warning(
                "run %s (schedule %s): cannot render delivery %s: %s",
                run.id,
                run.schedule_id,
                delivery.id,
                one.last_error,
            )
    await store.mark_run_fanned_out(run.id)
    return deliveries


async def start_run(
    store: Store,
    clock: Clock,
    schedule: Schedule,
    *,
    scheduled_for: datetime,
    trigger: RunTrigger,
    late_by_s: float = 0.0,
    only_if_due: bool = False,
    guard: NumberGuard | None = None,
) -> tuple[Run, list[Delivery]]:
    """Insert the run of one occurrence and store its deliveries.

    For non-manual triggers `DuplicateRun` propagates: another process (or an earlier fire)
    claimed this occurrence already; with `only_if_due`, `ScheduleMoved` when the schedule
    no longer has this occurrence due. With `guard`, numbers without WhatsApp fail at once.
    """
    run = await store.insert_run(
        schedule_id=schedule.id,
        owner_id=schedule.owner_id,
        scheduled_for=scheduled_for,
        trigger=trigger,
        late_by_s=late_by_s,
        only_if_due=only_if_due,
    )
    deliveries = await _fan_out(store, clock, schedule, run, guard)
    return run.model_copy(update={"fanned_out": True}), deliveries


async def skip_occurrence(
    store: Store, clock: Clock, schedule: Schedule, occurrence: datetime
) -> Taken | None:
    """Record the occurrence `occurrence` of `schedule` (its `next_run_at`) as skipped, and
    move the schedule on to the one after it (a one-time schedule ends done).

    The run is inserted like the engine's (unique per occurrence, only while it is the due
    one), so a skip racing the engine or a second press does one thing: None when the
    occurrence was already fired or skipped. Raises `ScheduleMoved` when the schedule is no
    longer due at `occurrence` (paused, edited or moved on since it was read).
    """
    return await take_occurrence(store, clock, schedule, occurrence, outcome=SKIPPED)


async def take_occurrence(
    store: Store,
    clock: Clock,
    schedule: Schedule,
    occurrence: datetime,
    *,
    outcome: str | None = None,
    guard: NumberGuard | None = None,
) -> Taken | None:
    """Run the due occurrence `occurrence` now, ahead of the engine (Send now), or with
    `outcome=SKIPPED` record it as skipped; then move the schedule on by compare-and-set.
    None when the occurrence has its run already; `ScheduleMoved` when it is no longer due.
    With `guard`, numbers without WhatsApp fail at once, as in the engine's runs."""
    try:
        run = await store.insert_run(
            schedule_id=schedule.id,
            owner_id=schedule.owner_id,
            scheduled_for=occurrence,
            trigger=RunTrigger.schedule,
            outcome=outcome,
            only_if_due=True,
        )
    except DuplicateRun:
        return None
    deliveries = await _fan_out(store, clock, schedule, run, guard)
    ended = await advance_past(store, clock, schedule, occurrence)
    logger.info(
        "schedule %s: occurrence %s %s",
        schedule.id,
        occurrence.isoformat(),
        outcome or "taken ahead of its time",
    )
    return Taken(run.model_copy(update={"fanned_out": True}), deliveries, ended)


async def advance_past(
    store: Store, clock: Clock, schedule: Schedule, occurrence: datetime
) -> Schedule | None:
    """Move `next_run_at` from `occurrence` to the occurrence after it (after now, if later),
    by compare-and-set; a schedule with none after ends done. Returns the schedule, ended,
    when this compare-and-set ended a recurring one: its owner is to be told, once
    (`Notifier.schedule_done`); None otherwise (moved on, moved already, or one-time)."""
    following = next_fire_time(schedule.rule, after=max(occurrence, clock.now()))
    moved = await store.advance_schedule(
        schedule.id,
        expected_next_run_at=occurrence,
        next_run_at=following,
        state=ScheduleState.done if following is None else None,
    )
    if not moved or following is not None or schedule.rule.kind is RuleKind.once:
        return None
    return schedule.model_copy(update={"state": ScheduleState.done, "next_run_at": None})


async def complete_run(
    store: Store, clock: Clock, run: Run, guard: NumberGuard | None = None
) -> list[Delivery]:
    """Finish a run a crash left before its fan-out ended (same keys, so idempotent)."""
    schedule = await store.get_schedule(run.schedule_id)
    if schedule is None:
        logger.warning("run %s: schedule %s was deleted before fan-out", run.id, run.schedule_id)
        await store.set_run_outcome(run.id, "schedule deleted before fan-out")
        await store.mark_run_fanned_out(run.id)
        return []
    return await _fan_out(store, clock, schedule, run, guard)


class RunDueTimes:
    """The scheduled time of recent runs, read once per run, for the send delay in
    `/metrics` (`wasched_delivery_send_delay_seconds`)."""

    def __init__(self, store: Store, *, kept: int = 1000) -> None:
        self._store = store
        self._kept = kept
        self._due: dict[int, datetime] = {}

    async def observe_sent(self, run_id: int, sent_at: datetime) -> None:
        """Count one message of run `run_id` sent at `sent_at`."""
        due = self._due.get(run_id)
        if due is None:
            try:
                run = await self._store.get_run(run_id)
            except WaschedError:
                return  # a figure is not worth failing a send's record for
            if run is None:
                return
            due = self._due[run_id] = run.scheduled_for
            while len(self._due) > self._kept:
                del self._due[next(iter(self._due))]
        observe_send_delay((sent_at - due).total_seconds())
