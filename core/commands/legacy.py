"""`wasched import-legacy`: bring in the replaced system's MongoDB database.

The legacy collections and where each field goes:

- `contacts` {id, name, phone, notes, whatsapp_id}: a Contact; `notes` becomes the contact
  field `notes` (usable as `{notes}` in templates); a phone without `+` is read as already
  carrying its country code (whatsapp-web.js needed that), so `4915...` becomes `+4915...`.
- `templates` {id, title, content}: a Template named `title` with text `content`.
- `schedules` {id, contact_id, contact_name, contact_phone, message, schedule_type,
  scheduled_time, cron_expression, is_active, last_run, next_run}: a Schedule for the owner,
  to the imported contact (`contact_id`), else to `contact_phone` named `contact_name`;
  `once` at `scheduled_time` (done when past), `recurring` with `cron_expression` read as
  standard cron; `is_active` false -> paused. `next_run` is recomputed from the rule (the
  legacy value carries the day-of-week shift below) and `last_run` is kept as the run history
  that `logs` records.
- `logs` {contact_name, contact_phone, message, status, error_message, scheduled_message_id,
  sent_at}: one Run of the imported schedule at `sent_at` with one Delivery (`sent` or
  `failed`, `error_message` as its last error).

The legacy system handed 5-field cron to APScheduler's `from_crontab`, which counts Monday as
0: its day-of-week fields fired one day later than written. They are imported as written (the
user's intent, standard cron) and each such schedule is listed in the report.

The core is `import_legacy(db, store, ...)` over PyMongo's `AsyncDatabase` (the tests' too,
on a real server).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from core.adapters.store import Store
from core.delivery import states
from core.domain.errors import AlreadyExists, DuplicateRun, InvalidInput, WaschedError
from core.domain.models import (
    Contact,
    DeliveryStatus,
    NewDelivery,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)
from core.domain.recipients import parse_phone
from core.domain.render import NAME_VARIABLES, template_variables

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "whatsapp_scheduler"

# Marks a store that received an import, so a second run does not duplicate everything.
IMPORTED_KEY = "legacy_import"

_SENT = {"sent", "success", "ok", "done"}
_FAILED = {"failed", "error", "failure"}
_ACKED = {"delivered": DeliveryStatus.delivered, "read": DeliveryStatus.read}

NextFireTime = Callable[..., datetime | None]


class LegacyDatabase(Protocol):
    """An async Mongo database: `db["name"].find({})` yields documents with `async for`."""

    def __getitem__(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Skipped:
    collection: str
    legacy_id: str
    reason: str


@dataclass(frozen=True)
class CronShift:
    """A recurring schedule whose day of week the legacy system ran one day late."""

    legacy_id: str
    schedule_id: int
    cron: str
    written: str
    legacy_ran: str


@dataclass
class ImportReport:
    contacts: int = 0
    templates: int = 0
    schedules: int = 0
    runs: int = 0
    deliveries: int = 0
    paused: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    cron_shifts: list[CronShift] = field(default_factory=list)
    # (schedule id, address): `{name}`/`{first_name}` for a number that has no name, which
    # the message would say instead (wasched refuses such a schedule when it is made).
    unnamed: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    schedule_ids: dict[str, int] = field(default_factory=dict)
    contact_ids: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary printed after an import."""
        out = [
            "Imported:",
            f"  contacts:   {self.contacts}",
            f"  templates:  {self.templates}",
            f"  schedules:  {self.schedules}"
            + (
                f" ({len(self.paused)} paused, {len(self.done)} one-time already past -> done)"
                if self.paused or self.done
                else ""
            ),
            f"  history:    {self.runs} runs, {self.deliveries} deliveries",
        ]
        if self.cron_shifts:
            out.append(
                "Day of week: the old system ran these one day later than their cron says; "
                "they now run on the days written (check they are what you want):"
            )
            for shift in self.cron_shifts:
                out.append(
                    f"  #{shift.schedule_id} (legacy {shift.legacy_id}) '{shift.cron}': "
                    f"now {shift.written}; the old system ran it {shift.legacy_ran}"
                )
        if self.unnamed:
            out.append(
                "{name} without a name: these say the number instead; save it as a contact "
                "and /edit the schedule to send to the name, or change the text:"
            )
            for schedule_id, address in self.unnamed:
                out.append(f"  #{schedule_id}: {address}")
        if self.skipped:
            out.append(f"Skipped {len(self.skipped)}:")
            for skip in self.skipped:
                out.append(f"  {skip.collection} {skip.legacy_id}: {skip.reason}")
        else:
            out.append("Skipped: nothing.")
        return out


_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DAY_ALIASES = {name[:3].lower(): i for i, name in enumerate(_DAY_NAMES)}


def _dow_numbers(field_text: str) -> set[int] | None:
    """Days (0 = Sunday) a standard-cron day-of-week field names; None for every day."""
    if field_text in {"*", "?"}:
        return None
    days: set[int] = set()
    for part in field_text.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            lo, hi = _day(a), _day(b)
        else:
            lo = hi = _day(base)
            if step_text:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return days


def _day(text: str) -> int:
    return _DAY_ALIASES[text] if text in _DAY_ALIASES else int(text)


def _day_list(days: set[int]) -> str:
    return ", ".join(_DAY_NAMES[d] for d in sorted(days))


def cron_shift(cron: str) -> tuple[str, str] | None:
    """(days as written, days the legacy system ran) when the day-of-week field restricts
    days; None when it is `*` or the expression cannot be read (the rule check reports it)."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    try:
        days = _dow_numbers(fields[4])
    except (ValueError, KeyError):
        return None
    if days is None:
        return None
    # from_crontab read each number n as APScheduler's n (0 = Monday), i.e. standard n + 1.
    legacy = {(d + 1) % 7 for d in days}
    return "on " + _day_list(days), "on " + _day_list(legacy)


def _legacy_id(doc: dict[str, Any]) -> str:
    value = doc.get("id", doc.get("_id"))
    return "?" if value is None else str(value)


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return value.strip() if isinstance(value, str) else ""


def _phone(value: Any) -> str:
    """A legacy phone as `+E164`; digits without `+` carried their country code already."""
    text = str(value or "").strip()
    if text.endswith("@c.us"):
        text = text[: -len("@c.us")]
    compact = "".join(c for c in text if c not in " -./()")
    if compact.isdigit() and not compact.startswith("00"):
        text = "+" + compact
    return parse_phone(text)


def _instant(value: Any, tz: ZoneInfo) -> datetime:
    """A legacy time (ISO text or a BSON date) as aware UTC; naive ones are in `tz`."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    else:
        raise ValueError("no time")
    if moment.tzinfo is None:
        # BSON dates come back naive but are UTC; ISO text without offset is local time.
        moment = moment.replace(tzinfo=UTC if isinstance(value, datetime) else tz)
    return moment.astimezone(UTC)


async def _documents(db: LegacyDatabase, name: str) -> list[dict[str, Any]]:
    return [dict(doc) async for doc in db[name].find({})]


async def import_legacy(
    db: LegacyDatabase,
    store: Store,
    *,
    owner_id: int,
    timezone: str,
    now: datetime,
    next_fire_time: NextFireTime | None = None,
) -> ImportReport:
    """Import every legacy record into `store` for `owner_id`; naive times are in `timezone`.

    Raises `WaschedError` when this store already received an import.
    """
    if next_fire_time is None:
        from core.domain.when import next_fire_time as default_next_fire_time

        next_fire_time = default_next_fire_time
    previous = await store.get_value(IMPORTED_KEY)
    if previous:
        raise WaschedError(
            f"This database already received a legacy import ({previous}); importing again "
            "would duplicate it. Import into a new, empty database instead."
        )
    tz = ZoneInfo(timezone)
    report = ImportReport()
    contacts = await _import_contacts(db, store, report)
    await _import_templates(db, store, report)
    await _import_schedules(db, store, report, contacts, owner_id, tz, now, next_fire_time)
    await _import_logs(db, store, report, owner_id, tz)
    await store.set_value(IMPORTED_KEY, f"imported on {now.isoformat(timespec='seconds')}")
    logger.info(
        "legacy import: %s contacts, %s templates, %s schedules, %s runs, %s skipped",
        report.contacts,
        report.templates,
        report.schedules,
        report.runs,
        len(report.skipped),
    )
    return report


async def _import_contacts(
    db: LegacyDatabase, store: Store, report: ImportReport
) -> dict[str, Contact]:
    imported: dict[str, Contact] = {}
    for doc in await _documents(db, "contacts"):
        legacy_id = _legacy_id(doc)
        name = _text(doc, "name")
        if not name:
            report.skipped.append(Skipped("contact", legacy_id, "it has no name"))
            continue
        try:
            phone = _phone(doc.get("phone"))
        except InvalidInput as exc:
            report.skipped.append(Skipped("contact", legacy_id, f"{name}: {exc}"))
            continue
        notes = _text(doc, "notes")
        whatsapp_id = _text(doc, "whatsapp_id") or None
        try:
            contact = await store.add_contact(
                name, phone, whatsapp_id=whatsapp_id, fields={"notes": notes} if notes else {}
            )
        except AlreadyExists:
            existing = await store.find_contact(name)
            reason = f"a contact named {name!r} exists already"
            if existing is not None and existing.phone == phone:
                imported[legacy_id] = existing
                reason += f" with the same number (#{existing.id}); its schedules use it"
            report.skipped.append(Skipped("contact", legacy_id, reason))
            continue
        imported[legacy_id] = contact
        report.contact_ids[legacy_id] = contact.id
        report.contacts += 1
    return imported


async def _import_templates(db: LegacyDatabase, store: Store, report: ImportReport) -> None:
    for doc in await _documents(db, "templates"):
        legacy_id = _legacy_id(doc)
        title = _text(doc, "title")
        content = doc.get("content")
        if not title:
            report.skipped.append(Skipped("template", legacy_id, "it has no title"))
            continue
        if not isinstance(content, str) or not content.strip():
            report.skipped.append(Skipped("template", legacy_id, f"{title!r} has no content"))
            continue
        try:
            await store.add_template(title, content)
        except AlreadyExists:
            report.skipped.append(
                Skipped("template", legacy_id, f"a template named {title!r} exists already")
            )
            continue
        report.templates += 1


def _recipient(doc: dict[str, Any], contacts: dict[str, Contact]) -> tuple[Recipient | None, str]:
    contact_ref = doc.get("contact_id")
    contact = contacts.get(str(contact_ref)) if contact_ref is not None else None
    if contact is not None:
        return (
            Recipient(
                kind=RecipientKind.contact,
                address=contact.phone,
                name=contact.name,
                contact_id=contact.id,
            ),
            "",
        )
    raw_phone = doc.get("contact_phone")
    if not raw_phone:
        missing = f"its contact {contact_ref} was not imported and " if contact_ref else ""
        return None, f"{missing}it has no contact_phone"
    try:
        phone = _phone(raw_phone)
    except InvalidInput as exc:
        return None, str(exc)
    name = _text(doc, "contact_name") or None
    return Recipient(kind=RecipientKind.phone, address=phone, name=name), ""


async def _import_schedules(
    db: LegacyDatabase,
    store: Store,
    report: ImportReport,
    contacts: dict[str, Contact],
    owner_id: int,
    tz: ZoneInfo,
    now: datetime,
    next_fire_time: NextFireTime,
) -> None:
    for doc in await _documents(db, "schedules"):
        legacy_id = _legacy_id(doc)
        recipient, why = _recipient(doc, contacts)
        if recipient is None:
            report.skipped.append(Skipped("schedule", legacy_id, why))
            continue
        message = doc.get("message")
        if not isinstance(message, str) or not message.strip():
            report.skipped.append(Skipped("schedule", legacy_id, "it has no message"))
            continue
        active = doc.get("is_active", True) is not False
        kind = str(doc.get("schedule_type") or "").strip().lower()
        shift: tuple[str, str] | None = None
        if kind == "once":
            try:
                at = _instant(doc.get("scheduled_time"), tz)
            except ValueError:
                report.skipped.append(
                    Skipped(
                        "schedule",
                        legacy_id,
                        f"its scheduled_time {doc.get('scheduled_time')!r} is no ISO time",
                    )
                )
                continue
            rule = Rule(kind=RuleKind.once, timezone=tz.key, at=at)
            if at <= now:
                state, next_run_at = ScheduleState.done, None
            else:
                state = ScheduleState.active if active else ScheduleState.paused
                next_run_at = at
        elif kind == "recurring":
            cron = " ".join(str(doc.get("cron_expression") or "").split())
            rule = Rule(kind=RuleKind.cron, timezone=tz.key, cron=cron)
            try:
                next_run_at = next_fire_time(rule, after=now)
            except (InvalidInput, ValueError) as exc:
                report.skipped.append(
                    Skipped("schedule", legacy_id, f"its cron {cron!r} cannot be read: {exc}")
                )
                continue
            state = ScheduleState.active if active else ScheduleState.paused
            if next_run_at is None:
                state = ScheduleState.done
            shift = cron_shift(cron)
        else:
            report.skipped.append(
                Skipped(
                    "schedule",
                    legacy_id,
                    f"its schedule_type {doc.get('schedule_type')!r} is neither "
                    "'once' nor 'recurring'",
                )
            )
            continue
        schedule = await store.add_schedule(
            owner_id=owner_id,
            recipients=[recipient],
            rule=rule,
            next_run_at=next_run_at,
            text=message,
            state=state,
        )
        report.schedules += 1
        report.schedule_ids[legacy_id] = schedule.id
        if state is ScheduleState.paused:
            report.paused.append(schedule.id)
        elif state is ScheduleState.done:
            report.done.append(schedule.id)
        if not recipient.name and template_variables(message) & NAME_VARIABLES:
            report.unnamed.append((schedule.id, recipient.address))
        if shift is not None and rule.cron is not None:
            report.cron_shifts.append(
                CronShift(legacy_id, schedule.id, rule.cron, written=shift[0], legacy_ran=shift[1])
            )


async def _import_logs(
    db: LegacyDatabase, store: Store, report: ImportReport, owner_id: int, tz: ZoneInfo
) -> None:
    schedules: dict[int, Schedule | None] = {}
    for doc in await _documents(db, "logs"):
        legacy_id = _legacy_id(doc)
        ref = doc.get("scheduled_message_id")
        schedule_id = report.schedule_ids.get(str(ref)) if ref is not None else None
        if schedule_id is None:
            reason = (
                f"its schedule {ref} was not imported"
                if ref is not None
                else "it names no schedule"
            )
            report.skipped.append(Skipped("log", legacy_id, reason))
            continue
        raw_status = str(doc.get("status") or "").strip().lower()
        if raw_status in _SENT:
            status = DeliveryStatus.sent
        elif raw_status in _FAILED:
            status = DeliveryStatus.failed
        elif raw_status in _ACKED:
            status = _ACKED[raw_status]
        else:
            report.skipped.append(
                Skipped("log", legacy_id, f"its status {doc.get('status')!r} is unknown")
            )
            continue
        try:
            when = _instant(doc.get("sent_at"), tz)
        except ValueError:
            report.skipped.append(Skipped("log", legacy_id, "it has no sent_at time"))
            continue
        if schedule_id not in schedules:
            schedules[schedule_id] = await store.get_schedule(schedule_id)
        schedule = schedules[schedule_id]
        recipient = _log_recipient(doc, schedule)
        run = await _history_run(store, report, schedule_id, owner_id, when, status)
        error = _text(doc, "error_message") or None
        new = NewDelivery(
            recipient=recipient.address,
            recipient_name=_text(doc, "contact_name") or recipient.name,
            text=doc.get("message") if isinstance(doc.get("message"), str) else "",
            idempotency_key=f"legacy-log:{legacy_id}",
            status=status,
        )
        (delivery,) = await store.add_deliveries(run, [new], now=when)
        await store.apply(states.imported(delivery, status, at=when, error=error))
        await store.mark_run_fanned_out(run.id)
        report.deliveries += 1


def _log_recipient(doc: dict[str, Any], schedule: Schedule | None) -> Recipient:
    try:
        return Recipient(
            kind=RecipientKind.phone,
            address=_phone(doc.get("contact_phone")),
            name=_text(doc, "contact_name") or None,
        )
    except InvalidInput:
        if schedule is not None and schedule.recipients:
            return schedule.recipients[0]
        return Recipient(kind=RecipientKind.phone, address=str(doc.get("contact_phone") or ""))


async def _history_run(
    store: Store,
    report: ImportReport,
    schedule_id: int,
    owner_id: int,
    when: datetime,
    status: DeliveryStatus,
) -> Run:
    outcome = "imported from the old system: " + (
        "failed" if status is DeliveryStatus.failed else "sent"
    )
    try:
        run = await store.insert_run(
            schedule_id=schedule_id,
            owner_id=owner_id,
            scheduled_for=when,
            trigger=RunTrigger.schedule,
            outcome=outcome,
        )
    except DuplicateRun:
        existing = await store.find_run(schedule_id, when)
        if existing is not None:
            return existing
        raise
    report.runs += 1
    return run


async def choose_owner(store: Store, admin_ids: frozenset[int], owner: int | None) -> int:
    """The Telegram user the imported schedules belong to: `--owner`, else the bot's owner,
    else the first admin."""
    if owner is not None:
        return owner
    owners = sorted(u.telegram_id for u in await store.list_users() if u.is_owner)
    if owners:
        return owners[0]
    if admin_ids:
        return min(admin_ids)
    raise WaschedError(
        "Nobody owns the bot yet: send /start to the bot first, or pass "
        "--owner YOUR_TELEGRAM_USER_ID."
    )


def refuse_same_database(database_url: str, legacy_database: str) -> None:
    """The legacy collections (contacts, templates, schedules) share names with wasched's:
    never import into the legacy database itself."""
    if not database_url.startswith(("mongodb://", "mongodb+srv://")):
        return
    name = urlsplit(database_url).path.lstrip("/") or "wasched"
    if name == legacy_database:
        raise WaschedError(
            f"DATABASE_URL names the old system's database {legacy_database!r}: give wasched "
            "its own database, e.g. mongodb://localhost:27017/wasched, then import."
        )


async def import_legacy_command(
    url: str,
    *,
    database: str = DEFAULT_DATABASE,
    owner: int | None = None,
    timezone: str | None = None,
) -> int:
    """`wasched import-legacy URL`: import into the store of DATABASE_URL, print the report."""
    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    from core.adapters.store import open_store
    from core.commands.migrate import redact_url
    from core.config import load_settings
    from core.domain.clock import SystemClock
    from core.domain.when import validate_timezone

    settings = load_settings()
    try:
        zone = validate_timezone(timezone or settings.DEFAULT_TIMEZONE)
        refuse_same_database(settings.DATABASE_URL, database)
    except WaschedError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 1
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=10_000, tz_aware=False
    )
    try:
        store = await open_store(settings.DATABASE_URL)
        try:
            db = client[database]
            names = set(await db.list_collection_names())
            if not names & {"contacts", "templates", "schedules", "logs"}:
                raise WaschedError(
                    f"{redact_url(url)} has no database {database!r} with contacts, "
                    "templates, schedules or logs: name the right one with --db."
                )
            report = await import_legacy(
                db,
                store,
                owner_id=await choose_owner(store, settings.admin_ids, owner),
                timezone=zone,
                now=SystemClock().now(),
            )
        finally:
            await store.close()
    except PyMongoError as exc:
        print(f"wasched: cannot read {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    except WaschedError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    print("\n".join(report.lines()))
    return 0
