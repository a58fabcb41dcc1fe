"""Schedules: drafting, creating, editing, pausing, resuming, deleting and previewing them,
the recipients they go to and the time zones their times are read in.

Every refusal is a typed error from `core.domain.errors` whose message says what to type
instead, and nothing is stored when a call is refused. A method that acts on one schedule takes
the acting owner's id: someone else's schedule is as good as missing (`NotFound`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from core.adapters.store import UNSET, Store
from core.delivery.numbers import NumberGuard, numbers_of
from core.delivery.runs import SKIPPED, load_contacts, message_text, skip_occurrence
from core.delivery.spikes import release_schedule
from core.domain import when as when_lang
from core.domain.clock import Clock
from core.domain.errors import (
    InvalidInput,
    InvalidRecipient,
    InvalidState,
    InvalidTemplate,
    InvalidWhen,
    NotFound,
    ScheduleMoved,
)
from core.domain.models import (
    Media,
    Recipient,
    RecipientKind,
    Record,
    Rule,
    RuleKind,
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
    parse_recipients,
    resolve_recipients,
)
from core.domain.render import (
    NAME_VARIABLES,
    available_variables,
    check_message,
    check_template,
    render,
    template_variables,
)
from core.services._shared import braced, no_schedule, refuse_without_whatsapp, stored
from core.services.ports import EngineHooks
from core.services.users import Users

logger = logging.getLogger(__name__)

PREVIEW_COUNT = 3


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


class Skipped(Record):
    """An occurrence `Schedules.skip_next` recorded as skipped, and the schedule after it
    (`schedule.next_run_at` is the one after; None when nothing follows)."""

    schedule: Schedule
    occurrence: datetime
    run_id: int


class Draft(Record):
    """A schedule checked but not stored; `save_draft` stores it as it is. Only what is
    stored, and the first fire time as it was read (Save keeps the time the preview showed):
    small enough to keep between the wizard's steps (the rendered preview is not in it)."""

    owner_id: int
    recipients: tuple[Recipient, ...]
    rule: Rule
    text: str | None
    template_id: int | None
    template_name: str | None
    media: Media | None
    next_run_at: datetime


class Drafted(Record):
    """A checked draft and its preview, as `draft_schedule` answers: the bot shows the
    preview and keeps the draft."""

    draft: Draft
    preview: Preview


class Schedules:
    """Schedules as the bot offers them, each checked against the acting owner."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        users: Users,
        hooks: EngineHooks,
        groups: GroupSource | None,
        numbers: NumberGuard | None = None,
    ) -> None:
        self._store, self.clock, self._users = store, clock, users
        self._hooks, self._groups = hooks, groups
        # Checks people's numbers with WhatsApp before a schedule to them is stored.
        self._numbers = numbers

    async def check_draft_message(
        self,
        *,
        recipients: str | Sequence[Recipient],
        text: str | None = None,
        template: str | int | None = None,
        media: Media | None = None,
    ) -> None:
        """Refuse a message that cannot go to these recipients (empty, too long, a variable
        some recipient has no value for), before anything else is asked (the wizard's step).
        A template is named as typed, or given by its id (picked from a list)."""
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
        template: str | int | None = None,
        media: Media | None = None,
    ) -> Drafted:
        """Check and preview a schedule without storing it (the wizard's preview step)."""
        parsed = await self._recipients(recipients)
        body, template_row = await self._message(text, template, media)
        zone = await self._users.timezone_of(owner_id)
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
        draft = Draft(
            owner_id=owner_id,
            recipients=tuple(parsed),
            rule=rule,
            text=None if template_row or not body else body,
            template_id=template_row.id if template_row else None,
            template_name=template_row.name if template_row else None,
            media=media,
            next_run_at=next_run_at,
        )
        return Drafted(draft=draft, preview=preview)

    async def save_draft(self, draft: Draft) -> Schedule:
        """Store a draft; its time is checked again, since the owner may have waited."""
        if (
            draft.template_id is not None
            and await self._store.get_template(draft.template_id) is None
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
        await refuse_without_whatsapp(
            self._numbers,
            draft.recipients,
            fix="Fix the number, or leave it out of the recipients, and save again.",
        )
        schedule = await self._store.add_schedule(
            owner_id=draft.owner_id,
            recipients=draft.recipients,
            rule=draft.rule,
            next_run_at=next_run_at,
            text=draft.text,
            template_id=draft.template_id,
            media=draft.media,
        )
        logger.info("schedule %s created by %s", schedule.id, schedule.owner_id)
        self._hooks.schedules_changed()
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
        drafted = await self.draft_schedule(
            owner_id, recipients=recipients, when=when, text=text, template=template, media=media
        )
        return await self.save_draft(drafted.draft)

    async def list_schedules(
        self, owner_id: int | None = None, *, states: Sequence[ScheduleState] | None = None
    ) -> list[Schedule]:
        return await self._store.list_schedules(owner_id=owner_id, states=states)

    async def get_schedule(self, owner_id: int, schedule_id: int) -> Schedule:
        """The owner's schedule; a missing one and someone else's are both `NotFound`."""
        schedule = await stored(self._store.get_schedule, schedule_id)
        if schedule is None or schedule.owner_id != owner_id:
            raise no_schedule(schedule_id)
        return schedule

    async def edit_schedule(
        self,
        owner_id: int,
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
        schedule = await self.get_schedule(owner_id, schedule_id)
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
            body = await message_text(self._store, schedule)
        await self._check_variables(body, new_recipients)

        rule = schedule.rule
        next_run_at = schedule.next_run_at
        state = schedule.state
        if when is not None:
            zone = await self._users.timezone_of(schedule.owner_id)
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

        if recipients is not None:
            await refuse_without_whatsapp(
                self._numbers,
                new_recipients,
                fix=f"Fix the number, or leave it out: /edit {schedule.id} recipients ...",
            )
        message_changed = text is not None or template is not None
        when_changed = when is not None
        updated = await self._store.update_schedule(
            schedule.id,
            recipients=new_recipients if recipients is not None else UNSET,
            text=(None if template_row else text) if message_changed else UNSET,
            template_id=(template_row.id if template_row else None) if message_changed else UNSET,
            rule=rule if when_changed else UNSET,
            next_run_at=next_run_at if when_changed else UNSET,
            state=state if when_changed else UNSET,
        )
        self._hooks.schedules_changed()
        return updated

    async def pause(self, owner_id: int, schedule_id: int) -> Schedule:
        """Stop firing until resumed; pausing a paused schedule changes nothing."""
        schedule = await self.get_schedule(owner_id, schedule_id)
        if schedule.state is ScheduleState.paused:
            return schedule
        if schedule.state is ScheduleState.done:
            raise InvalidState(
                f"Schedule #{schedule_id} is done, so there is nothing to pause: "
                f"/runnow {schedule_id} sends it again."
            )
        updated = await self._store.update_schedule(schedule_id, state=ScheduleState.paused)
        self._hooks.schedules_changed()
        return updated

    async def resume(self, owner_id: int, schedule_id: int) -> Schedule:
        """Fire again from now on: the next run is computed from the current time."""
        schedule = await self.get_schedule(owner_id, schedule_id)
        if schedule.state is ScheduleState.active:
            return schedule
        if schedule.state is ScheduleState.done and schedule.rule.kind is RuleKind.once:
            raise InvalidState(
                f"Schedule #{schedule_id} was a one-time message and has been sent: "
                f"/runnow {schedule_id} sends it again, or /edit {schedule_id} gives it "
                "a new time."
            )
        next_run_at = when_lang.next_fire_time(schedule.rule, after=self.clock.now())
        if next_run_at is None and schedule.rule.ends_at is not None:
            raise InvalidState(
                f"Schedule #{schedule_id} has ended ({when_lang.describe(schedule.rule)}): "
                f"/edit {schedule_id} when every day at 9:00 5 times gives it a new time and "
                "end."
            )
        if next_run_at is None:
            raise InvalidState(
                f"The time of schedule #{schedule_id} has passed: /edit {schedule_id} gives it "
                f"a new time, or /runnow {schedule_id} sends it now."
            )
        updated = await self._store.update_schedule(
            schedule_id, state=ScheduleState.active, next_run_at=next_run_at
        )
        self._hooks.schedules_changed()
        # A schedule paused by a failure spike: the held rest of its run goes out too.
        if await release_schedule(self._store, self.clock, schedule_id):
            self._hooks.deliveries_queued()
        return updated

    async def delete(self, owner_id: int, schedule_id: int) -> Schedule:
        """Delete a schedule; its runs and deliveries stay in the logs."""
        schedule = await self.get_schedule(owner_id, schedule_id)
        await self._store.delete_schedule(schedule_id)
        self._hooks.schedules_changed()
        return schedule

    async def skip_next(
        self, owner_id: int, schedule_id: int, occurrence: datetime | None = None
    ) -> Skipped:
        """Record the schedule's next occurrence as skipped (never sent, not missed) and move
        it to the one after. `occurrence` is the one the owner saw: when it is no longer the
        next (skipped or sent meanwhile, a second press), nothing more is skipped and the
        refusal says what happened to it."""
        schedule = await self.get_schedule(owner_id, schedule_id)
        due = schedule.next_run_at
        # The card carries whole seconds; a one-time "in 2 hours" is due at a fraction.
        if occurrence is not None and (
            due is None or int(due.timestamp()) != int(occurrence.timestamp())
        ):
            raise await self._gone(schedule, occurrence)
        if schedule.state is not ScheduleState.active or due is None:
            raise InvalidState(
                f"Schedule #{schedule_id} is {schedule.state.value}: nothing is due to skip."
                + (
                    f" /resume {schedule_id} first."
                    if schedule.state is ScheduleState.paused
                    else ""
                )
            )
        try:
            done = await skip_occurrence(self._store, self.clock, schedule, due)
        except ScheduleMoved:
            done = None
        if done is None:
            raise await self._gone(schedule, due)
        self._hooks.schedules_changed()
        updated = await self.get_schedule(owner_id, schedule_id)
        return Skipped(schedule=updated, occurrence=due, run_id=done[0].id)

    async def _gone(self, schedule: Schedule, occurrence: datetime) -> InvalidState:
        """Why the occurrence at `occurrence` can no longer be skipped."""
        local = when_lang.format_local(occurrence, schedule.rule.timezone)
        run = await self._store.find_run(schedule.id, occurrence)
        if run is not None and run.outcome == SKIPPED:
            what = f"{local} was skipped already"
        elif run is not None:
            what = f"{local} has gone out already"
        else:
            what = f"{local} is no longer the next time of #{schedule.id} (it was changed)"
        return InvalidState(f"Nothing skipped: {what}. /list shows what comes next.")

    async def preview(
        self, owner_id: int, id_or_draft: int | Draft, count: int = PREVIEW_COUNT
    ) -> Preview:
        """Next fire times, the rule in words, and each recipient's text at the next one
        (a draft is not stored yet, so it belongs to whoever holds it)."""
        if count < 1:
            raise InvalidInput("Ask for at least one upcoming time, for example 3.")
        if isinstance(id_or_draft, Draft):
            draft = id_or_draft
            if draft.template_id is not None:
                template = await self._store.get_template(draft.template_id)
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
        schedule = await self.get_schedule(owner_id, id_or_draft)
        template_name = None
        if schedule.template_id is not None:
            template = await self._store.get_template(schedule.template_id)
            template_name = template.name if template else None
        return await self._preview(
            schedule_id=schedule.id,
            state=schedule.state,
            recipients=schedule.recipients,
            rule=schedule.rule,
            body=await message_text(self._store, schedule),
            template_name=template_name,
            media=schedule.media,
            count=count,
        )

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
        self, text: str | None, template: str | int | None, media: Media | None
    ) -> tuple[str, Template | None]:
        """The message body (text or the template's text) after the checks every message gets."""
        if text is not None and template is not None:
            raise InvalidInput(
                "Give either a text or a template, not both: the template is the text."
            )
        if isinstance(template, int):
            row = await self._store.get_template(template)
            if row is None:
                raise NotFound(
                    "The template you picked was deleted meanwhile: pick another one "
                    "(see /templates) or write the text."
                )
            check_message(row.text, has_media=media is not None)
            return row.text, row
        if template is not None:
            row = await self._store.find_template(template.strip())
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
        contacts = await load_contacts(self._store, recipients)
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
                f"{error} {braced(missing_fields)}: a contact field works only when every "
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
        contacts = await load_contacts(self._store, recipients)
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
        return await resolve_recipients(text, self._store, self._groups)

    async def _recipients(self, recipients: str | Sequence[Recipient]) -> list[Recipient]:
        """Typed recipients parsed (a name that matches several is refused, naming them),
        or recipients resolved earlier, kept once each."""
        if isinstance(recipients, str):
            return await parse_recipients(recipients, self._store, self._groups)
        if not recipients:
            raise InvalidRecipient(
                f"Name at least one recipient: a number such as {PHONE_EXAMPLE}, a saved "
                "contact's name (see /contacts), or a group's name (see /groups)."
            )
        return dedupe(recipients)

    async def schedules_in_other_zones(self, owner_id: int, zone: str) -> list[Schedule]:
        """The owner's active and paused schedules that read their times in another zone."""
        schedules = await self._store.list_schedules(
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
            left = when_lang.occurrences_left(schedule.rule, schedule.next_run_at)
            if schedule.rule.times is not None and left:
                # `5 times` stays as many as were left: the new zone's first may come sooner.
                rule = when_lang.ending_after(rule, left, after=now)
            next_run_at = when_lang.next_fire_time(rule, after=now)
            if next_run_at is None:
                kept.append(schedule)
                continue
            active = schedule.state is ScheduleState.active
            moved.append(
                await self._store.update_schedule(
                    schedule.id, rule=rule, next_run_at=next_run_at if active else UNSET
                )
            )
        if moved:
            self._hooks.schedules_changed()
        return moved, kept

    # numbers checked with WhatsApp (kept last: added for guarding the account) ---------------

    async def unchecked_numbers(self, schedule: Schedule) -> list[str]:
        """The schedule's numbers WhatsApp could not be asked about yet (it was not linked or
        not answering): they are checked before the first send to them."""
        if self._numbers is None:
            return []
        return await self._numbers.unchecked(numbers_of(schedule.recipients))


def _rule_in_zone(rule: Rule, zone: str) -> Rule:
    """`rule` read in `zone` with the same clock times: 09:00 in the old zone is 09:00 there."""
    old, new = ZoneInfo(rule.timezone), ZoneInfo(zone)

    def same_clock(instant: datetime | None) -> datetime | None:
        if instant is None:
            return None
        # A clock time the new zone skips (DST gap) is read as the time language reads it.
        return when_lang.resolve_local(instant.astimezone(old).replace(tzinfo=None), new)

    return rule.model_copy(
        update={
            "timezone": zone,
            "at": same_clock(rule.at),
            "start": same_clock(rule.start),
            "ends_at": same_clock(rule.ends_at),
        }
    )


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
        f"{braced(names)} needs a name, and {who} none: {save}write the message without "
        f"{braced(names)}."
    )
