"""The service API: the one surface the bot calls to schedule, inspect and manage messages.

Every refusal is a typed error from `core.domain.errors` whose message says what to type
instead, and nothing is stored when a call is refused. The engine learns about changes through
`EngineHooks`; WhatsApp is reached through the sidecar's client (`WhatsAppClient`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from core import __version__
from core.adapters.store import UNSET, Store
from core.adapters.whatsapp import WhatsAppClient
from core.delivery.ack_watch import RESENT_KEY, Recheck
from core.delivery.runs import idempotency_key, load_contacts, message_text, start_run
from core.domain import when as when_lang
from core.domain.clock import Clock
from core.domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidRecipient,
    InvalidState,
    InvalidTemplate,
    InvalidWhen,
    NotFound,
    WhatsAppError,
    WhatsAppUnavailable,
)
from core.domain.models import (
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Media,
    NewDelivery,
    Recipient,
    RecipientKind,
    Record,
    Rule,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
    Template,
)
from core.domain.recipients import (
    PHONE_EXAMPLE,
    Choice,
    GroupSource,
    dedupe,
    label,
    looks_like_phone,
    parse_phone,
    parse_recipients,
    resolve_recipients,
)
from core.domain.render import (
    BUILTIN_VARIABLES,
    NAME_VARIABLES,
    available_variables,
    check_braces,
    check_message,
    check_template,
    is_variable_name,
    render,
    template_variables,
)
from core.domain.session import NOT_CONFIGURED, UNREACHABLE, SessionFailure, SessionWords, explain
from core.services.csv_export import deliveries_csv
from core.services.ports import (
    EngineHooks,
    NoEngine,
    SchedulerInfo,
    UnackedWatch,
)

logger = logging.getLogger(__name__)

PREVIEW_COUNT = 3
MAX_NAME_LENGTH = 64
MAX_LOG_LIMIT = 1000
# Set once the person was asked for their time zone (on their first /start).
TIMEZONE_ASKED_KEY = "timezone_asked:{}"
# Both stores keep ids as signed 64-bit integers (SQLite INTEGER, BSON int64): a larger id
# names nothing, and must not reach a query, where it would raise OverflowError.
MAX_ID = 2**63 - 1
RETRYABLE = (DeliveryStatus.failed, DeliveryStatus.missed)
_NAME_FORBIDDEN = re.compile(r"[,;|\n\r]")


# --- what the service answers --------------------------------------------------------------


class FireTime(Record):
    """One upcoming occurrence: the instant (UTC) and how the owner reads it locally."""

    at: datetime
    local: str


class PreviewMessage(Record):
    recipient: Recipient
    label: str
    text: str


class Preview(Record):
    """What a schedule (or a draft) will do: when, and what each recipient gets next."""

    schedule_id: int | None
    state: ScheduleState | None
    rule: Rule
    description: str
    timezone: str
    next_runs: tuple[FireTime, ...]
    messages: tuple[PreviewMessage, ...]
    template_name: str | None = None
    media_filename: str | None = None


class Draft(Record):
    """A schedule checked and previewed but not stored; `save_draft` stores it as it is."""

    owner_id: int
    recipients: tuple[Recipient, ...]
    rule: Rule
    text: str | None
    template_id: int | None
    template_name: str | None
    media: Media | None
    next_run_at: datetime
    preview: Preview


class ImportResult(Record):
    imported: int
    existing: int
    skipped: int
    contacts: tuple[Contact, ...]


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


class Scheduling:
    """Schedules, runs, logs, contacts and templates, as the bot offers them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        default_timezone: str,
        hooks: EngineHooks | None = None,
        whatsapp: WhatsAppClient | None = None,
        scheduler: SchedulerInfo | None = None,
        unacked: UnackedWatch | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.default_timezone = default_timezone
        self.hooks: EngineHooks = hooks or NoEngine()
        self.whatsapp = whatsapp
        self.scheduler = scheduler
        self.unacked = unacked

    # users ------------------------------------------------------------------------------

    async def timezone_of(self, user_id: int) -> str:
        """The user's time zone, or the default one when they never set theirs."""
        user = await self.store.get_user(user_id)
        if user is not None and user.timezone:
            return user.timezone
        return self.default_timezone

    async def set_timezone(self, user_id: int, name: str) -> str:
        """Store the user's zone for parsing and display; existing schedules keep theirs."""
        zone = when_lang.validate_timezone(name.strip())
        await self.store.upsert_user(user_id, timezone=zone)
        return zone

    # schedules ----------------------------------------------------------------------------

    async def check_draft_message(
        self,
        *,
        recipients: str | Sequence[Recipient],
        text: str | None = None,
        template: str | None = None,
        media: Media | None = None,
    ) -> None:
        """Refuse a message that cannot go to these recipients (empty, too long, a variable
        some recipient has no value for), before anything else is asked (the wizard's step)."""
        parsed = await self._recipients(recipients)
        body, _ = await self._message(text, template, media)
        await self._check_variables(body, parsed)

    async def draft_schedule(
        self,
        owner_id: int,
        *,
        recipients: str | Sequence[Recipient],
        when: str,
        text: str | None = None,
        template: str | None = None,
        media: Media | None = None,
    ) -> Draft:
        """Check and preview a schedule without storing it (the wizard's preview step)."""
        parsed = await self._recipients(recipients)
        body, template_row = await self._message(text, template, media)
        zone = await self.timezone_of(owner_id)
        now = self.clock.now()
        rule = self._parse_when(when, zone, now)
        next_run_at = self._first_fire(rule, now)
        # After the time: the one-line /schedule checks the rest before asking which contact
        # a name meant, and lets the variables wait for that answer.
        await self._check_variables(body, parsed)
        preview = await self._preview(
            schedule_id=None,
            state=None,
            recipients=parsed,
            rule=rule,
            body=body,
            template_name=template_row.name if template_row else None,
            media=media,
            count=PREVIEW_COUNT,
        )
        return Draft(
            owner_id=owner_id,
            recipients=tuple(parsed),
            rule=rule,
            text=None if template_row or not body else body,
            template_id=template_row.id if template_row else None,
            template_name=template_row.name if template_row else None,
            media=media,
            next_run_at=next_run_at,
            preview=preview,
        )

    async def save_draft(self, draft: Draft) -> Schedule:
        """Store a draft; its time is checked again, since the owner may have waited."""
        if (
            draft.template_id is not None
            and await self.store.get_template(draft.template_id) is None
        ):
            raise NotFound(
                f"Template {draft.template_name!r} was deleted meanwhile: "
                "pick another one (see /templates) or write the text."
            )
        now = self.clock.now()
        next_run_at = when_lang.next_fire_time(draft.rule, after=now)
        if next_run_at is None:
            raise InvalidWhen(
                f"{when_lang.format_local(draft.next_run_at, draft.rule.timezone)} has passed "
                "meanwhile: give a new time, for example 'in 10 minutes' or 'tomorrow 9:00'."
            )
        schedule = await self.store.add_schedule(
            owner_id=draft.owner_id,
            recipients=draft.recipients,
            rule=draft.rule,
            next_run_at=next_run_at,
            text=draft.text,
            template_id=draft.template_id,
            media=draft.media,
        )
        logger.info("schedule %s created by %s", schedule.id, schedule.owner_id)
        self.hooks.schedules_changed()
        return schedule

    async def create_schedule(
        self,
        owner_id: int,
        *,
        recipients: str | Sequence[Recipient],
        when: str,
        text: str | None = None,
        template: str | None = None,
        media: Media | None = None,
    ) -> Schedule:
        """Parse, check and store a schedule in one step (the one-shot form)."""
        draft = await self.draft_schedule(
            owner_id, recipients=recipients, when=when, text=text, template=template, media=media
        )
        return await self.save_draft(draft)

    async def list_schedules(
        self, owner_id: int | None = None, *, states: Sequence[ScheduleState] | None = None
    ) -> list[Schedule]:
        return await self.store.list_schedules(owner_id=owner_id, states=states)

    async def get_schedule(self, schedule_id: int) -> Schedule:
        schedule = await self.store.get_schedule(schedule_id) if is_id(schedule_id) else None
        if schedule is None:
            raise NotFound(f"There is no schedule #{schedule_id}: see /list for your schedules.")
        return schedule

    async def edit_schedule(
        self,
        schedule_id: int,
        *,
        text: str | None = None,
        template: str | None = None,
        when: str | None = None,
        recipients: str | None = None,
    ) -> Schedule:
        """Change the text (or template), the time or the recipients of a schedule.

        A new time recomputes the next run; a done schedule given a new time is active again.
        """
        schedule = await self.get_schedule(schedule_id)
        if text is None and template is None and when is None and recipients is None:
            raise InvalidInput(
                f"Nothing to change in #{schedule_id}: give a new text, time or recipients."
            )
        new_recipients = (
            await self._recipients(recipients)
            if recipients is not None
            else list(schedule.recipients)
        )
        template_row: Template | None = None
        if text is not None or template is not None:
            body, template_row = await self._message(text, template, schedule.media)
        else:
            body = await message_text(self.store, schedule)
        await self._check_variables(body, new_recipients)

        rule = schedule.rule
        next_run_at = schedule.next_run_at
        state = schedule.state
        if when is not None:
            zone = await self.timezone_of(schedule.owner_id)
            now = self.clock.now()
            rule = self._parse_when(when, zone, now)
            next_run_at = self._first_fire(rule, now)
            if state is ScheduleState.done:
                state = ScheduleState.active
        await self._preview(
            schedule_id=schedule.id,
            state=state,
            recipients=new_recipients,
            rule=rule,
            body=body,
            template_name=None,
            media=schedule.media,
            count=1,
        )

        message_changed = text is not None or template is not None
        when_changed = when is not None
        updated = await self.store.update_schedule(
            schedule.id,
            recipients=new_recipients if recipients is not None else UNSET,
            text=(None if template_row else text) if message_changed else UNSET,
            template_id=(template_row.id if template_row else None) if message_changed else UNSET,
            rule=rule if when_changed else UNSET,
            next_run_at=next_run_at if when_changed else UNSET,
            state=state if when_changed else UNSET,
        )
        self.hooks.schedules_changed()
        return updated

    async def pause(self, schedule_id: int) -> Schedule:
        """Stop firing until resumed; pausing a paused schedule changes nothing."""
        schedule = await self.get_schedule(schedule_id)
        if schedule.state is ScheduleState.paused:
            return schedule
        if schedule.state is ScheduleState.done:
            raise InvalidState(
                f"Schedule #{schedule_id} is done, so there is nothing to pause: "
                f"/runnow {schedule_id} sends it again."
            )
        updated = await self.store.update_schedule(schedule_id, state=ScheduleState.paused)
        self.hooks.schedules_changed()
        return updated

    async def resume(self, schedule_id: int) -> Schedule:
        """Fire again from now on: the next run is computed from the current time."""
        schedule = await self.get_schedule(schedule_id)
        if schedule.state is ScheduleState.active:
            return schedule
        if schedule.state is ScheduleState.done and schedule.rule.kind is RuleKind.once:
            raise InvalidState(
                f"Schedule #{schedule_id} was a one-time message and has been sent: "
                f"/runnow {schedule_id} sends it again, or /edit {schedule_id} gives it "
                "a new time."
            )
        next_run_at = when_lang.next_fire_time(schedule.rule, after=self.clock.now())
        if next_run_at is None:
            raise InvalidState(
                f"The time of schedule #{schedule_id} has passed: /edit {schedule_id} gives it "
                f"a new time, or /runnow {schedule_id} sends it now."
            )
        updated = await self.store.update_schedule(
            schedule_id, state=ScheduleState.active, next_run_at=next_run_at
        )
        self.hooks.schedules_changed()
        return updated

    async def delete(self, schedule_id: int) -> Schedule:
        """Delete a schedule; its runs and deliveries stay in the logs."""
        schedule = await self.get_schedule(schedule_id)
        await self.store.delete_schedule(schedule_id)
        self.hooks.schedules_changed()
        return schedule

    async def preview(self, id_or_draft: int | Draft, count: int = PREVIEW_COUNT) -> Preview:
        """Next fire times, the rule in words, and each recipient's text at the next one."""
        if count < 1:
            raise InvalidInput("Ask for at least one upcoming time, for example 3.")
        if isinstance(id_or_draft, Draft):
            draft = id_or_draft
            if draft.template_id is not None:
                template = await self.store.get_template(draft.template_id)
                body = template.text if template else ""
            else:
                body = draft.text or ""
            return await self._preview(
                schedule_id=None,
                state=None,
                recipients=draft.recipients,
                rule=draft.rule,
                body=body,
                template_name=draft.template_name,
                media=draft.media,
                count=count,
            )
        schedule = await self.get_schedule(id_or_draft)
        template_name = None
        if schedule.template_id is not None:
            template = await self.store.get_template(schedule.template_id)
            template_name = template.name if template else None
        return await self._preview(
            schedule_id=schedule.id,
            state=schedule.state,
            recipients=schedule.recipients,
            rule=schedule.rule,
            body=await message_text(self.store, schedule),
            template_name=template_name,
            media=schedule.media,
            count=count,
        )

    # runs and deliveries ---------------------------------------------------------------------

    async def run_now(self, schedule_id: int) -> tuple[Run, list[Delivery]]:
        """Send a schedule at once as a manual run (paused and done schedules too)."""
        schedule = await self.get_schedule(schedule_id)
        run, deliveries = await start_run(
            self.store,
            self.clock,
            schedule,
            scheduled_for=self.clock.now(),
            trigger=RunTrigger.manual,
        )
        logger.info("manual run %s of schedule %s", run.id, schedule.id)
        self.hooks.deliveries_queued()
        return run, deliveries

    async def get_run(self, run_id: int) -> tuple[Run, list[Delivery]]:
        """A run and its deliveries as they are now (for refreshing a run's report)."""
        run = await self.store.get_run(run_id) if is_id(run_id) else None
        if run is None:
            raise NotFound(f"There is no run #{run_id}: see /logs for recent deliveries.")
        deliveries = await self.store.list_deliveries(
            DeliveryFilter(run_id=run_id, order="oldest")
        )
        return run, deliveries

    async def retry_delivery(self, delivery_id: int) -> Delivery:
        """Queue a failed or missed delivery again (same idempotency key, attempts reset)."""
        delivery = await self._retry(delivery_id)
        self.hooks.deliveries_queued()
        return delivery

    async def retry_run(self, run_id: int) -> list[Delivery]:
        """Queue every failed or missed delivery of a run again."""
        _, deliveries = await self.get_run(run_id)
        retryable = [d for d in deliveries if d.status in RETRYABLE]
        if not retryable:
            raise InvalidState(
                f"Nothing to retry in run #{run_id}: none of its deliveries failed or was missed."
            )
        retried = [await self._retry(d.id) for d in retryable]
        self.hooks.deliveries_queued()
        return retried

    async def _retry(self, delivery_id: int) -> Delivery:
        delivery = await self.store.get_delivery(delivery_id) if is_id(delivery_id) else None
        if delivery is None:
            raise NotFound(f"There is no delivery #{delivery_id}: see /logs.")
        if delivery.status not in RETRYABLE:
            raise InvalidState(
                f"Delivery #{delivery_id} is {delivery.status.value}: only failed or missed "
                "deliveries can be retried."
            )
        now = self.clock.now()
        updated = await self.store.update_delivery(
            delivery_id,
            expected_status=RETRYABLE,
            status=DeliveryStatus.queued,
            attempts=0,
            last_error=None,
            error_code=None,
            next_attempt_at=now,
            queued_at=now,
            failed_at=None,
            missed_at=None,
            lease_owner=None,
            lease_until=None,
        )
        if updated is None:
            raise InvalidState(
                f"Delivery #{delivery_id} changed meanwhile: see /logs for its status."
            )
        return updated

    async def check_unacked(self, run_id: int) -> Recheck:
        """Check again: ask WhatsApp now where each message of the run that is only `sent`
        stands, and record what it says (delivered, read, failed)."""
        run, _ = await self.get_run(run_id)
        return await self._unacked().check_again(run.id)

    async def send_unacked_again(self, run_id: int) -> tuple[Run, list[Delivery]]:
        """Send again: a second copy (same text, new idempotency keys) as a new manual run, to
        each recipient of the run whose message is not on their phone yet; once per run."""
        watch = self._unacked()
        run, deliveries = await self.get_run(run_id)
        key = RESENT_KEY.format(run.id)
        earlier = await self.store.get_value(key)
        if earlier is not None:
            raise InvalidState(
                f"Run {run.id} was sent again already, as run {earlier}: "
                "it is not sent a third time."
            )
        again = watch.unacked(deliveries)
        if not again:
            raise InvalidState(
                f"Every message of run {run.id} is on the recipient's phone now, or failed: "
                "nothing to send again."
            )
        if await self.store.get_schedule(run.schedule_id) is None:
            raise NotFound(
                f"Schedule #{run.schedule_id} was deleted, so run {run.id} cannot be sent again."
            )
        copy = await self.store.insert_run(
            schedule_id=run.schedule_id,
            owner_id=run.owner_id,
            # Its occurrence's time, so the card and the logs tie it to the first copy.
            scheduled_for=run.scheduled_for,
            trigger=RunTrigger.manual,
            outcome=f"second copy of run {run.id}",
        )
        # Marked before its deliveries are stored: a crash in between must leave a run that
        # sends nothing, not one the engine completes to every recipient of the schedule.
        await self.store.mark_run_fanned_out(copy.id)
        await self.store.set_value(key, str(copy.id))
        new = [
            NewDelivery(
                recipient=d.recipient,
                recipient_name=d.recipient_name,
                text=d.text,
                idempotency_key=idempotency_key(copy, _recipient_of(d)),
            )
            for d in again
        ]
        stored = await self.store.add_deliveries(copy, new, now=self.clock.now())
        logger.info(
            "run %s: second copy to %d recipient(s) as run %s", run.id, len(stored), copy.id
        )
        self.hooks.deliveries_queued()
        return copy.model_copy(update={"fanned_out": True}), stored

    def _unacked(self) -> UnackedWatch:
        if self.unacked is None:
            raise InvalidState("Checking messages with WhatsApp is not available here.")
        return self.unacked

    async def logs(
        self, *, schedule_id: int | None = None, owner_id: int | None = None, limit: int = 20
    ) -> list[Delivery]:
        """The latest deliveries, newest first (of one schedule or owner when given)."""
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise InvalidInput(f"Ask for 1 to {MAX_LOG_LIMIT} deliveries, for example 20.")
        if schedule_id is not None and not is_id(schedule_id):
            return []
        return await self.store.list_deliveries(
            DeliveryFilter(schedule_id=schedule_id, owner_id=owner_id, limit=limit)
        )

    async def export_csv(
        self, *, schedule_id: int | None = None, owner_id: int | None = None
    ) -> bytes:
        """Every matching delivery as UTF-8 CSV, oldest first."""
        if schedule_id is not None and not is_id(schedule_id):
            return deliveries_csv([])
        deliveries = await self.store.list_deliveries(
            DeliveryFilter(schedule_id=schedule_id, owner_id=owner_id, order="oldest")
        )
        whens: dict[int, str] = {}
        if deliveries:
            # One read for all: a deleted schedule is missing and its rows say so.
            if schedule_id is not None:
                one = await self.store.get_schedule(schedule_id)
                schedules = [] if one is None else [one]
            else:
                schedules = await self.store.list_schedules(owner_id=owner_id)
            wanted = {d.schedule_id for d in deliveries}
            whens = {s.id: when_lang.describe(s.rule) for s in schedules if s.id in wanted}
        return deliveries_csv(deliveries, whens)

    # contacts -----------------------------------------------------------------------------

    async def add_contact(
        self, name: str, phone: str, fields: Mapping[str, str] | None = None
    ) -> Contact:
        name = _clean_name(name, what="contact")
        if looks_like_phone(name) or name.lower().endswith(("@g.us", "@c.us")):
            raise InvalidInput(
                f"{name!r} looks like a number, not a name: /addcontact Anna {PHONE_EXAMPLE}."
            )
        number = parse_phone(phone)
        clean_fields: dict[str, str] = {}
        for key, value in (fields or {}).items():
            if not is_variable_name(key) or key in BUILTIN_VARIABLES:
                raise InvalidInput(
                    f"{key!r} cannot be a contact field: use letters, digits and _ "
                    f"(for example company), and none of {_braced(BUILTIN_VARIABLES)}."
                )
            clean_fields[key] = value
        try:
            return await self.store.add_contact(name, number, fields=clean_fields)
        except AlreadyExists:
            raise AlreadyExists(
                f"A contact named {name!r} exists already: pick another name, "
                f"or remove it first with /delcontact {name}."
            ) from None

    async def list_contacts(self) -> list[Contact]:
        return await self.store.list_contacts()

    async def delete_contact(self, name: str) -> Contact:
        """Delete a contact; schedules keep its number and still send to it."""
        contact = await self.store.find_contact(name.strip())
        if contact is None:
            raise NotFound(f"There is no contact named {name.strip()!r}: see /contacts.")
        await self.store.delete_contact(contact.id)
        return contact

    async def import_contacts(self) -> ImportResult:
        """Add the linked WhatsApp account's contacts; existing names and numbers are kept."""
        found = await self._whatsapp().contacts()
        existing = await self.store.list_contacts()
        names = {c.name.lower() for c in existing}
        numbers = {c.phone for c in existing}
        imported: list[Contact] = []
        already = skipped = 0
        for item in found:
            name = " ".join(_NAME_FORBIDDEN.sub(" ", item.name).split())[:MAX_NAME_LENGTH]
            number = _whatsapp_number(item.number or item.id)
            if not name or number is None or looks_like_phone(name):
                skipped += 1
                continue
            if name.lower() in names or number in numbers:
                already += 1
                continue
            try:
                contact = await self.store.add_contact(name, number, whatsapp_id=item.id or None)
            except AlreadyExists:
                already += 1
                continue
            names.add(name.lower())
            numbers.add(number)
            imported.append(contact)
        return ImportResult(
            imported=len(imported), existing=already, skipped=skipped, contacts=tuple(imported)
        )

    # templates ----------------------------------------------------------------------------

    async def add_template(self, name: str, text: str) -> Template:
        name = _clean_name(name, what="template")
        check_message(text, has_media=False)
        check_braces(text)
        try:
            return await self.store.add_template(name, text)
        except AlreadyExists:
            raise AlreadyExists(
                f"A template named {name!r} exists already: pick another name, "
                f"or remove it first with /deltemplate {name}."
            ) from None

    async def list_templates(self) -> list[Template]:
        return await self.store.list_templates()

    async def delete_template(self, name: str) -> Template:
        """Delete a template no schedule uses."""
        template = await self.store.find_template(name.strip())
        if template is None:
            raise NotFound(f"There is no template named {name.strip()!r}: see /templates.")
        users = [s.id for s in await self.store.list_schedules() if s.template_id == template.id]
        if users:
            ids = ", ".join(f"#{i}" for i in users)
            raise InvalidState(
                f"Template {template.name!r} is used by schedule {ids}: "
                "/edit or /delete those first."
            )
        await self.store.delete_template(template.id)
        return template

    # WhatsApp -----------------------------------------------------------------------------

    async def groups(self) -> list[Group]:
        """The WhatsApp groups of the linked account, by name."""
        found = await self._whatsapp().groups()
        groups = [Group(id=g.id, name=g.name, participants=len(g.participants)) for g in found]
        return sorted(groups, key=lambda g: g.name.lower())

    async def link_qr(self) -> LinkQr:
        """The QR code to scan in WhatsApp (Linked devices) while the session waits for it."""
        code = await self._whatsapp().qr()
        try:
            png = base64.b64decode(code.png_base64, validate=True)
        except (binascii.Error, ValueError):
            png = b""
        return LinkQr(qr=code.qr, png=png)

    async def pairing_code(self, phone: str) -> str:
        """A code to type in WhatsApp instead of scanning the QR code."""
        return await self._whatsapp().pairing_code(parse_phone(phone))

    async def logout(self) -> None:
        await self._whatsapp().logout()

    async def status(self) -> Status:
        """WhatsApp state, scheduler state, counts and the next run, for `/status`."""
        state, number, wa_name, error = NOT_CONFIGURED, None, None, None
        failure: SessionFailure | None = None
        if self.whatsapp is not None:
            try:
                health = await self.whatsapp.health()
            except WhatsAppError as exc:
                state, error = UNREACHABLE, str(exc)
            else:
                state, failure = health.state, health.failure
                if health.me:
                    number = _whatsapp_number(health.me.get("id", ""))
                    wa_name = health.me.get("name") or None
        return Status(
            whatsapp_state=state,
            whatsapp_number=number,
            whatsapp_name=wa_name,
            whatsapp_error=error,
            whatsapp_failure=failure,
            scheduler=self.scheduler.scheduler_state() if self.scheduler else "not running",
            schedules=await self.store.count_schedules(),
            deliveries=await self.store.count_deliveries(),
            next_run_at=await self.store.next_due_at(),
            version=__version__,
        )

    # inside -------------------------------------------------------------------------------

    def _whatsapp(self) -> WhatsAppClient:
        if self.whatsapp is None:
            raise WhatsAppUnavailable(
                "WhatsApp is not connected to this wasched: set WHATSAPP_URL and restart."
            )
        return self.whatsapp

    def _parse_when(self, text: str, zone: str, now: datetime) -> Rule:
        return when_lang.parse_when(text, tz=zone, now=now)

    def _first_fire(self, rule: Rule, now: datetime) -> datetime:
        first = when_lang.next_fire_time(rule, after=now)
        if first is None:
            raise InvalidWhen(
                f"{when_lang.describe(rule)} never comes again: give a time in the future, "
                "for example 'tomorrow 9:00' or 'every day at 9:00'."
            )
        return first

    async def _message(
        self, text: str | None, template: str | None, media: Media | None
    ) -> tuple[str, Template | None]:
        """The message body (text or the template's text) after the checks every message gets."""
        if text is not None and template is not None:
            raise InvalidInput(
                "Give either a text or a template, not both: the template is the text."
            )
        if template is not None:
            row = await self.store.find_template(template.strip())
            if row is None:
                raise NotFound(
                    f"There is no template named {template.strip()!r}: see /templates, or add "
                    "one with /addtemplate <name> | <text>."
                )
            check_message(row.text, has_media=media is not None)
            return row.text, row
        check_message(text, has_media=media is not None)
        return (text if text and text.strip() else ""), None

    async def _check_variables(self, body: str, recipients: Sequence[Recipient]) -> None:
        """Refuse variables that some recipient has no value for."""
        used = template_variables(body)
        if not used:
            return
        contacts = await load_contacts(self.store, recipients)
        per_recipient = [
            contacts.get(r.contact_id) if r.contact_id is not None else None for r in recipients
        ]
        names = used & NAME_VARIABLES
        unnamed = [
            r
            for r, contact in zip(recipients, per_recipient, strict=True)
            if contact is None and not r.name
        ]
        if names and unnamed:
            # Rendered, it would greet them by their number ("Hi +4915112345678").
            raise _unnamed(names, unnamed)
        allowed = available_variables(per_recipient)
        try:
            check_template(body, allowed)
        except InvalidTemplate as error:
            field_names = {k for c in per_recipient if c is not None for k in c.fields}
            missing_fields = sorted((used - allowed) & field_names)
            if not missing_fields:
                raise
            raise InvalidTemplate(
                f"{error} {_braced(missing_fields)}: a contact field works only when every "
                "recipient is a saved contact that has it."
            ) from None

    async def _preview(
        self,
        *,
        schedule_id: int | None,
        state: ScheduleState | None,
        recipients: Sequence[Recipient],
        rule: Rule,
        body: str,
        template_name: str | None,
        media: Media | None,
        count: int,
    ) -> Preview:
        now = self.clock.now()
        times = when_lang.next_fire_times(rule, after=now, count=count)
        occurrence = times[0] if times else now
        contacts = await load_contacts(self.store, recipients)
        messages = []
        for recipient in recipients:
            contact = contacts.get(recipient.contact_id) if recipient.contact_id else None
            text = render(
                body, recipient=recipient, contact=contact, when=occurrence, tz=rule.timezone
            )
            messages.append(PreviewMessage(recipient=recipient, label=label(recipient), text=text))
        return Preview(
            schedule_id=schedule_id,
            state=state,
            rule=rule,
            description=when_lang.describe(rule),
            timezone=rule.timezone,
            next_runs=tuple(
                FireTime(at=t, local=when_lang.format_local(t, rule.timezone)) for t in times
            ),
            messages=tuple(messages),
            template_name=template_name,
            media_filename=media.filename if media else None,
        )

    # recipients (kept last: added for typed names and WhatsApp groups) ----------------------

    async def resolve_recipients(self, text: str) -> list[Recipient | Choice]:
        """Typed recipients, with a `Choice` for each name that matches several contacts or
        groups (the bot asks which); refuses what matches nothing, saying what to type."""
        return await resolve_recipients(text, self.store, self._group_source())

    async def _recipients(self, recipients: str | Sequence[Recipient]) -> list[Recipient]:
        """Typed recipients parsed (a name that matches several is refused, naming them),
        or recipients resolved earlier, kept once each."""
        if isinstance(recipients, str):
            return await parse_recipients(recipients, self.store, self._group_source())
        if not recipients:
            raise InvalidRecipient(
                f"Name at least one recipient: a number such as {PHONE_EXAMPLE}, a saved "
                "contact's name (see /contacts), or a group's name (see /groups)."
            )
        return dedupe(recipients)

    def _group_source(self) -> GroupSource | None:
        return self.whatsapp.groups if self.whatsapp is not None else None

    # time zones: asking once, moving schedules -----------------------------------------------

    async def timezone_asked(self, user_id: int) -> bool:
        """Whether the person was asked for their zone (or set one) already."""
        user = await self.store.get_user(user_id)
        if user is not None and user.timezone:
            return True
        return await self.store.get_value(TIMEZONE_ASKED_KEY.format(user_id)) is not None

    async def mark_timezone_asked(self, user_id: int) -> None:
        await self.store.set_value(TIMEZONE_ASKED_KEY.format(user_id), "1")

    async def schedules_in_other_zones(self, owner_id: int, zone: str) -> list[Schedule]:
        """The owner's active and paused schedules that read their times in another zone."""
        schedules = await self.store.list_schedules(
            owner_id=owner_id, states=(ScheduleState.active, ScheduleState.paused)
        )
        return [s for s in schedules if s.rule.timezone != zone]

    async def move_schedules(
        self, owner_id: int, zone: str
    ) -> tuple[list[Schedule], list[Schedule]]:
        """Move the owner's schedules to `zone` keeping their clock times (09:00 stays 09:00
        there). A one-time schedule whose moved time has passed is not moved. Returns the
        moved and the kept ones."""
        zone = when_lang.validate_timezone(zone)
        now = self.clock.now()
        moved: list[Schedule] = []
        kept: list[Schedule] = []
        for schedule in await self.schedules_in_other_zones(owner_id, zone):
            rule = _rule_in_zone(schedule.rule, zone)
            next_run_at = when_lang.next_fire_time(rule, after=now)
            if next_run_at is None:
                kept.append(schedule)
                continue
            active = schedule.state is ScheduleState.active
            moved.append(
                await self.store.update_schedule(
                    schedule.id, rule=rule, next_run_at=next_run_at if active else UNSET
                )
            )
        if moved:
            self.hooks.schedules_changed()
        return moved, kept


def _rule_in_zone(rule: Rule, zone: str) -> Rule:
    """`rule` read in `zone` with the same clock times: 09:00 in the old zone is 09:00 there."""
    old, new = ZoneInfo(rule.timezone), ZoneInfo(zone)

    def same_clock(instant: datetime | None) -> datetime | None:
        if instant is None:
            return None
        # A clock time the new zone skips (DST gap) is read as the time language reads it.
        return when_lang.resolve_local(instant.astimezone(old).replace(tzinfo=None), new)

    return rule.model_copy(
        update={"timezone": zone, "at": same_clock(rule.at), "start": same_clock(rule.start)}
    )


def _braced(names: Sequence[str] | set[str] | frozenset[str]) -> str:
    return ", ".join("{" + name + "}" for name in sorted(names))


def _unnamed(names: set[str], unnamed: Sequence[Recipient]) -> InvalidTemplate:
    """The refusal of `{name}`/`{first_name}` for recipients that have no name to put there."""
    more = len(unnamed) - 1
    who = unnamed[0].address + (f" and {more} more have" if more else " has")
    phones = [r.address for r in unnamed if r.kind is RecipientKind.phone]
    save = ""
    if phones:
        what = "the number as a contact" if len(phones) == 1 else "the numbers as contacts"
        save = f"save {what} (/addcontact Anna {phones[0]}) and send to the name, or "
    return InvalidTemplate(
        f"{_braced(names)} needs a name, and {who} none: {save}write the message without "
        f"{_braced(names)}."
    )


def is_id(value: int) -> bool:
    """True when `value` can be the id of a stored record (ids start at 1)."""
    return 1 <= value <= MAX_ID


# How to write a name, for each kind of record that has one.
_NAME_EXAMPLES = {
    "contact": f"/addcontact Anna {PHONE_EXAMPLE}",
    "template": "/addtemplate greeting | Hello {first_name}!",
}


def _clean_name(name: str, *, what: str) -> str:
    """The name with its spaces tidied, or `InvalidInput` saying what to type instead."""
    cleaned = " ".join(name.split())
    example = _NAME_EXAMPLES.get(what, "Anna")
    if not cleaned:
        raise InvalidInput(f"Give the {what} a name, for example {example}.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"A {what} name has at most {MAX_NAME_LENGTH} characters; {cleaned[:20]!r}... has "
            f"{len(cleaned)}."
        )
    if _NAME_FORBIDDEN.search(cleaned):
        words = _NAME_FORBIDDEN.sub(" ", cleaned).split()
        # Nothing but separators gives nothing to suggest from the name itself.
        instead = f"try {words[0]!r}" if words else f"write it as {example}"
        raise InvalidInput(f"A {what} name cannot contain commas, semicolons or |: {instead}.")
    return cleaned


def _recipient_of(delivery: Delivery) -> Recipient:
    """The recipient a delivery went to, as far as its idempotency key needs it."""
    group = delivery.recipient.endswith("@g.us")
    return Recipient(
        kind=RecipientKind.group if group else RecipientKind.phone,
        address=delivery.recipient,
        name=delivery.recipient_name,
    )


def _whatsapp_number(raw: str) -> str | None:
    """`+digits` from a WhatsApp number or chat id (`4915...@c.us`), or None if it is none."""
    raw = raw.strip()
    if raw.endswith(("@g.us", "@lid", "@broadcast", "@newsletter")):
        return None
    digits = raw.split("@", 1)[0].split(":", 1)[0].lstrip("+")
    try:
        return parse_phone("+" + digits)
    except InvalidRecipient:
        return None
