"""Texts and keyboards the bot shows, in one place; every dynamic part is HTML-escaped."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from html import escape, unescape
from zoneinfo import ZoneInfo

import segno
from aiogram.types import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import (
    AskAnswer,
    AskCb,
    EditCb,
    EditField,
    ListPageCb,
    PickCb,
    RunCb,
    ScheduleAction,
    ScheduleCb,
    SkipCb,
    SpikeAction,
    SpikeCb,
    UnackedAction,
    UnackedCb,
    WizardAction,
    WizardCb,
    ZoneAction,
    ZoneCb,
)
from core.domain.models import (
    Ask,
    AskChoice,
    Contact,
    Delivery,
    DeliveryStatus,
    NoAnswer,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
    Template,
)
from core.domain.recipients import Choice, address_label, distinct_labels, label, typed_key
from core.domain.session import Remedy, SessionWords
from core.domain.when import (
    MOST_LEFT_COUNTED,
    describe,
    end_words,
    format_local,
    occurrences_left,
)
from core.services import (
    Answer,
    Caps,
    Figures,
    Group,
    ImportResult,
    Pacing,
    Preview,
    Question,
    Recheck,
    Resumed,
    Spike,
    Status,
    StoreState,
    WarmUpDay,
    is_spike_held,
    unacked,
)

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024
PAGE_SIZE = 5

# (command, menu description, /help line); the order is the order of /help and the menu.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "schedule",
        "Schedule a message",
        "/schedule: step by step, or "
        "<code>/schedule +4915123456789, Anna | tomorrow 9:00 | Hello!</code>; a repeat may "
        "end (<code>every day 9:00 5 times</code>, <code>... until 31.12</code>); "
        "<code>| ask</code> at the end asks you before each run",
    ),
    (
        "list",
        "Your schedules with buttons",
        "/list: your schedules, with Run now, Pause, Edit, Delete and Skip next buttons",
    ),
    ("runnow", "Send a schedule now", "/runnow &lt;id&gt;: send a schedule at once"),
    (
        "pause",
        "Pause a schedule",
        "/pause &lt;id&gt;, /resume &lt;id&gt;: stop and restart a schedule",
    ),
    ("resume", "Resume a schedule", ""),
    (
        "edit",
        "Change a schedule",
        "/edit &lt;id&gt;: change its text, time, recipients or Ask me first",
    ),
    ("delete", "Delete a schedule", "/delete &lt;id&gt;: delete a schedule (asks first)"),
    (
        "preview",
        "Preview a schedule",
        "/preview &lt;id&gt;: next fire times and the text each recipient gets",
    ),
    ("logs", "Latest deliveries", "/logs [id]: latest deliveries with their status"),
    ("export", "Deliveries as CSV", "/export: every delivery as a CSV file"),
    (
        "stats",
        "How messages did",
        "/stats [days]: a chart of sent, delivered, read and failed per day (30 days, or "
        "<code>/stats 7</code>)",
    ),
    ("contacts", "Saved contacts", "/contacts: saved contacts"),
    ("addcontact", "Save a contact", "/addcontact &lt;name&gt; &lt;number&gt;: save a contact"),
    ("delcontact", "Delete a contact", "/delcontact &lt;name&gt;: delete a contact"),
    (
        "importcontacts",
        "Import WhatsApp contacts",
        "/importcontacts: import the contacts of the linked WhatsApp account",
    ),
    ("groups", "WhatsApp groups", "/groups: WhatsApp groups you can schedule to"),
    ("templates", "Message templates", "/templates: saved templates"),
    (
        "addtemplate",
        "Save a template",
        "/addtemplate &lt;name&gt; | &lt;text&gt;: save a "
        "template; use {date}, {time}, {weekday}, and {name}, {first_name} for contacts",
    ),
    ("deltemplate", "Delete a template", "/deltemplate &lt;name&gt;: delete a template"),
    ("status", "WhatsApp and scheduler state", "/status: WhatsApp, scheduler and counts"),
    (
        "link",
        "Link WhatsApp",
        "/link: link WhatsApp with a QR code, or "
        "<code>/link +4915123456789</code> for a pairing code",
    ),
    (
        "tz",
        "Your time zone",
        "/tz: your time zone, with buttons; or <code>/tz Berlin</code>, or share your location",
    ),
    ("cancel", "Leave the current step", "/cancel: leave any wizard"),
    ("help", "What I can do", "/help: this list"),
)


def bot_commands() -> list[BotCommand]:
    return [BotCommand(command=name, description=text) for name, text, _ in COMMANDS]


def help_text() -> str:
    lines = [line for _, _, line in COMMANDS if line]
    return "<b>wasched</b> sends WhatsApp messages when you say.\n\n" + "\n".join(lines)


DELIVERY_ICONS: dict[DeliveryStatus, str] = {
    DeliveryStatus.queued: "⏳",
    DeliveryStatus.sending: "📤",
    DeliveryStatus.sent: "☑️",
    DeliveryStatus.delivered: "✅",
    DeliveryStatus.read: "👀",
    DeliveryStatus.failed: "❌",
    DeliveryStatus.missed: "⏰",
    DeliveryStatus.held: "⏸",
    DeliveryStatus.skipped: "⏭",
}

DELIVERY_WORDS: dict[DeliveryStatus, str] = {
    DeliveryStatus.queued: "waiting to be sent",
    DeliveryStatus.sending: "sending",
    DeliveryStatus.sent: "sent",
    DeliveryStatus.delivered: "delivered",
    DeliveryStatus.read: "read",
    DeliveryStatus.failed: "failed",
    DeliveryStatus.missed: "missed",
    DeliveryStatus.held: "held until WhatsApp works",
    DeliveryStatus.skipped: "skipped",
}

# Failure codes in plain words; the stored error text is used for anything else.
FAILURE_WORDS: dict[str, str] = {
    "not_on_whatsapp": "this number has no WhatsApp account",
    "reachout_limited": "WhatsApp does not let this account start new chats for now (error 463)",
    "invalid_request": "WhatsApp refused the message as invalid",
    "unauthorized": "the WhatsApp service refused wasched's API key",
    "not_ready": "WhatsApp was not linked",
    "unavailable": "the WhatsApp service could not be reached",
    "send_failed": "WhatsApp could not send it",
}

STATE_WORDS: dict[ScheduleState, str] = {
    ScheduleState.active: "▶️ active",
    ScheduleState.paused: "⏸ paused",
    ScheduleState.done: "✔️ done",
}


def local_time(instant: datetime | None, timezone: str, *, with_zone: bool = False) -> str:
    if instant is None:
        return "never"
    text = format_local(instant, timezone)
    return f"{text} ({timezone})" if with_zone else text


def short_time(instant: datetime | None, timezone: str) -> str:
    if instant is None:
        return "-"
    return instant.astimezone(ZoneInfo(timezone)).strftime("%d %b %H:%M")


CUT_MARKER = "\n… (cut: too long for one Telegram message)"
# A tag, an entity, or a run of text (a stray `<` or `&` counts as text).
_HTML_PIECE = re.compile(
    r"<(?P<close>/?)(?P<tag>[A-Za-z][\w-]*)[^>]*>|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);|[^<&]+|[<&]"
)


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units, so an emoji can count two."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(html: str) -> int:
    """What Telegram counts against its limits: the text after tags and entities are parsed."""
    return telegram_length(unescape(re.sub(r"<[^>]*>", "", html)))


def shorten(text: str, limit: int) -> str:
    """Plain `text` (before escaping) kept to `limit` characters, ending in … when cut."""
    if telegram_length(text) <= limit:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for char in text:
        used += telegram_length(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept) + "…"


def cut_html(html: str, budget: int) -> str:
    """The start of `html` that shows at most `budget` units, with every open tag closed.

    Cuts at a line break when one is in the second half, never inside a tag or an entity.
    """
    used = 0
    open_tags: list[str] = []
    end = 0
    line_end: tuple[int, list[str]] | None = None  # where the last whole line ends
    for piece in _HTML_PIECE.finditer(html):
        token = piece.group()
        if piece["tag"]:
            if piece["close"]:
                if open_tags and open_tags[-1] == piece["tag"].lower():
                    open_tags.pop()
            else:
                open_tags.append(piece["tag"].lower())
            end = piece.end()
            continue
        if token.startswith("&") and len(token) > 1:
            width = telegram_length(unescape(token))
            if used + width > budget:
                break
            used += width
            end = piece.end()
            continue
        full = True
        for offset, char in enumerate(token):
            if char == "\n" and used * 2 >= budget:
                line_end = (piece.start() + offset, list(open_tags))
            width = telegram_length(char)
            if used + width > budget:
                full = False
                break
            used += width
            end = piece.start() + offset + 1
        if not full:
            break
    if line_end is not None and end < len(html):
        end, open_tags = line_end
    return html[:end] + "".join(f"</{tag}>" for tag in reversed(open_tags))


def cap(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """Keep an HTML message within Telegram's limit (4096, or 1024 for a caption), saying
    that something was cut; the cut never leaves a broken tag or entity."""
    if visible_length(text) <= limit:
        return text
    return cut_html(text, limit - telegram_length(CUT_MARKER)) + CUT_MARKER


def recipients_text(recipients: Sequence[Recipient], limit: int = 3) -> str:
    names = distinct_labels(recipients)[:limit]
    more = len(recipients) - limit
    if more > 0:
        names.append(f"and {more} more")
    return escape(", ".join(names))


def excerpt(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def schedule_block(schedule: Schedule, template_name: str | None = None) -> str:
    """A schedule in a few lines; `template_name` names the template it sends, if any."""
    tz = schedule.rule.timezone
    message = excerpt(schedule.text)
    if message:
        message = f"“{message}”"
    elif schedule.template_id:
        message = f"template {escape(template_name)}" if template_name else "a template"
    if schedule.media is not None:
        message = f"📎 {escape(schedule.media.filename)} {message}".strip()
    lines = [
        f"<b>#{schedule.id}</b> {STATE_WORDS[schedule.state]} · "
        + escape(describe(schedule.rule, end=False)),
        f"to {recipients_text(schedule.recipients)}",
        f"next: {escape(local_time(schedule.next_run_at, tz))}"
        if schedule.state is ScheduleState.active
        else "",
        end_line(schedule),
        asks_line(schedule),
        message,
    ]
    return "\n".join(line for line in lines if line)


def schedule_buttons(schedule: Schedule, builder: InlineKeyboardBuilder) -> list[int]:
    """The schedule's buttons, added to `builder`; returns its rows' sizes."""
    builder.button(
        text=f"▶ Run #{schedule.id}",
        callback_data=ScheduleCb(action=ScheduleAction.run, id=schedule.id),
    )
    if schedule.state is ScheduleState.paused:
        builder.button(
            text="Resume", callback_data=ScheduleCb(action=ScheduleAction.resume, id=schedule.id)
        )
    elif schedule.state is ScheduleState.active:
        builder.button(
            text="Pause", callback_data=ScheduleCb(action=ScheduleAction.pause, id=schedule.id)
        )
    builder.button(
        text="Edit", callback_data=ScheduleCb(action=ScheduleAction.edit, id=schedule.id)
    )
    builder.button(
        text="Delete", callback_data=ScheduleCb(action=ScheduleAction.delete, id=schedule.id)
    )
    rows = [4 if schedule.state is not ScheduleState.done else 3]
    if schedule.state is ScheduleState.active and schedule.next_run_at is not None:
        at = int(schedule.next_run_at.timestamp())
        builder.button(text="⏭ Skip next", callback_data=SkipCb(id=schedule.id, at=at))
        rows.append(1)
    return rows


def list_page(
    schedules: Sequence[Schedule],
    page: int,
    template_names: Mapping[int, str] | None = None,
    waiting: Mapping[int, tuple[int, Pacing]] | None = None,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of `/list`: text plus a row of buttons per schedule and a row to page;
    `template_names` (by id) names the templates schedules send; `waiting` (by id) how many
    of a schedule's messages wait for a cap (`Runs.waiting_for_cap`)."""
    if not schedules:
        return "You have no schedules yet. Create one with /schedule.", None
    pages = (len(schedules) + PAGE_SIZE - 1) // PAGE_SIZE
    page = max(0, min(page, pages - 1))
    shown = schedules[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    builder = InlineKeyboardBuilder()
    rows: list[int] = []
    for schedule in shown:
        rows.extend(schedule_buttons(schedule, builder))
    header = f"<b>Your schedules</b> ({len(schedules)})"
    if pages > 1:
        header += f", page {page + 1} of {pages}"
        nav = 0
        if page > 0:
            builder.button(text="‹ Previous", callback_data=ListPageCb(page=page - 1))
            nav += 1
        if page < pages - 1:
            builder.button(text="Next ›", callback_data=ListPageCb(page=page + 1))
            nav += 1
        rows.append(nav)
    builder.adjust(*rows)
    names = template_names or {}
    text = (
        header
        + "\n\n"
        + "\n\n".join(
            schedule_block(s, names.get(s.template_id or 0)) + waiting_note(s, waiting)
            for s in shown
        )
    )
    return cap(text), builder.as_markup()


def confirm_delete(
    schedule: Schedule, template_name: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    builder.button(
        text="Yes, delete",
        callback_data=ScheduleCb(action=ScheduleAction.confirm_delete, id=schedule.id),
    )
    builder.button(
        text="No, keep it", callback_data=ScheduleCb(action=ScheduleAction.keep, id=schedule.id)
    )
    text = f"Delete this schedule? Its logs stay.\n\n{schedule_block(schedule, template_name)}"
    return cap(text), builder.as_markup()


def edit_choices(schedule_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="Text", callback_data=EditCb(id=schedule_id, field=EditField.text))
    builder.button(text="When", callback_data=EditCb(id=schedule_id, field=EditField.when))
    builder.button(
        text="Recipients", callback_data=EditCb(id=schedule_id, field=EditField.recipients)
    )
    builder.button(
        text="❓ Ask me first", callback_data=EditCb(id=schedule_id, field=EditField.ask)
    )
    builder.adjust(3, 1)
    return builder.as_markup()


EDIT_PROMPTS: dict[EditField, str] = {
    EditField.text: "Send the new message text.",
    EditField.when: "Send the new time, for example <code>tomorrow 9:00</code> or "
    "<code>every weekday at 8:30</code>, with its end if it has one "
    "(<code>every weekday at 8:30 10 times</code>).",
    EditField.recipients: "Send the new recipients: numbers, contact names or WhatsApp group "
    "names, separated by commas.",
}


def failure_reason(delivery: Delivery) -> str:
    if delivery.error_code and delivery.error_code in FAILURE_WORDS:
        return FAILURE_WORDS[delivery.error_code]
    return delivery.last_error or "unknown reason"


def delivery_time(delivery: Delivery) -> datetime | None:
    stamps = {
        DeliveryStatus.queued: delivery.queued_at or delivery.created_at,
        DeliveryStatus.sending: delivery.sending_at,
        DeliveryStatus.sent: delivery.sent_at,
        DeliveryStatus.delivered: delivery.delivered_at,
        DeliveryStatus.read: delivery.read_at,
        DeliveryStatus.failed: delivery.failed_at,
        DeliveryStatus.missed: delivery.missed_at,
        DeliveryStatus.held: delivery.held_at,
        DeliveryStatus.skipped: delivery.skipped_at,
    }
    return stamps.get(delivery.status) or delivery.created_at


def delivery_line(delivery: Delivery, timezone: str, *, with_schedule: bool = False) -> str:
    who = address_label(delivery.recipient, delivery.recipient_name)
    when = escape(short_time(delivery_time(delivery), timezone))
    if delivery.status is DeliveryStatus.queued:
        # Not when it goes out: pacing decides that, one message after another.
        if delivery.attempts:
            when = f"(next try {escape(short_time(delivery.next_attempt_at, timezone))})"
        else:
            when = f"(in line since {when})"
    icon, words = DELIVERY_ICONS[delivery.status], DELIVERY_WORDS[delivery.status]
    if is_spike_held(delivery):
        words = SPIKE_HELD_WORDS
    line = f"{icon} {escape(who)}: {words} {when}"
    if with_schedule:
        line = f"#{delivery.schedule_id} " + line
    if delivery.status is DeliveryStatus.failed:
        line += f" — {escape(failure_reason(delivery))}"
    return line


def counts_text(deliveries: Sequence[Delivery]) -> str:
    counts: dict[DeliveryStatus, int] = {}
    for delivery in deliveries:
        counts[delivery.status] = counts.get(delivery.status, 0) + 1
    return ", ".join(f"{DELIVERY_ICONS[s]} {n} {DELIVERY_WORDS[s]}" for s, n in counts.items())


def run_name(schedule: Schedule | None, run: Run) -> str:
    """`Schedule #2 · run 7`: the schedule's id and the run's own id (not a count)."""
    name = f"Schedule #{run.schedule_id}" + ("" if schedule is not None else " (deleted)")
    return f"{name} · run {run.id}"


def run_heading(schedule: Schedule | None, run: Run, timezone: str) -> str:
    due = escape(f"{short_time(run.scheduled_for, timezone)} ({timezone})")
    if run.trigger is RunTrigger.manual:
        how = "sent now on request"
    elif run.trigger is RunTrigger.catch_up:
        how = (
            f"sent late: it was due {due} while wasched was not running "
            f"({lateness(run.late_by_s)} late, catch-up)"
        )
    else:
        how = f"due {due}"
    return f"📨 <b>{run_name(schedule, run)}</b> · {how}"


def run_card(
    schedule: Schedule | None,
    run: Run,
    deliveries: Sequence[Delivery],
    *,
    now: datetime | None = None,
    ack_after_s: float = 0,
    pacing: Pacing | None = None,
) -> str:
    """The run's report; with `now` and `ack_after_s`, messages sent that long ago and not on
    the recipient's phone yet say so; with `pacing`, when the next waiting one may go."""
    timezone = schedule.rule.timezone if schedule is not None else "UTC"
    lines = [run_heading(schedule, run, timezone)]
    if not deliveries:
        lines.append("preparing the messages…")
    shown = list(deliveries[:40])
    stuck = set() if now is None else {d.id for d in unacked(shown, now=now, after_s=ack_after_s)}
    lines += [
        unacked_line(d, now) if now is not None and d.id in stuck else delivery_line(d, timezone)
        for d in shown
    ]
    if len(deliveries) > len(shown):
        lines.append(f"… and {len(deliveries) - len(shown)} more recipients")
    held = [d for d in deliveries if d.status is DeliveryStatus.held]
    if held:
        # Why they wait, as the sender recorded it (not linked, no network, ...).
        why = held[-1].last_error or "WhatsApp is not working; these wait and go out once it is."
        more = "" if is_spike_held(held[-1]) else " /status says more."
        lines.append(f"{escape(why)}{more}")
    waiting = sum(1 for d in deliveries if d.status is DeliveryStatus.queued)
    if waiting and pacing is not None:
        lines.append(pacing_line(waiting, pacing, timezone))
    if shown:
        lines.append(f"Times in {escape(timezone)}.")
    return cap("\n".join(lines))


def pacing_line(waiting: int, pacing: Pacing, timezone: str) -> str:
    """When the next of `waiting` messages may go: pacing sends one at a time, and a cap
    reached holds them until it frees up."""
    at = escape(short_time(pacing.next_at, timezone))
    noun = "message waits" if waiting == 1 else "messages wait"
    if pacing.capped is not None:
        setting = "SEND_HOURLY_CAP" if pacing.capped == "hourly" else "SEND_DAILY_CAP"
        if pacing.capped == "daily" and pacing.warmup is not None:
            setting = warmup_words(pacing.warmup)
        return (
            f"⏳ {waiting} {noun}: the {pacing.capped} cap ({setting}) is reached; the next "
            f"goes at {at}."
        )
    gap = (
        f"{pacing.gap_min_s:g}–{pacing.gap_max_s:g} s"
        if pacing.gap_min_s != pacing.gap_max_s
        else f"{pacing.gap_max_s:g} s"
    )
    return f"⏳ {waiting} {noun}: one goes every {gap} (pacing); the next at about {at}."


def run_summary_line(
    schedule: Schedule | None,
    run: Run,
    deliveries: Sequence[Delivery],
    *,
    now: datetime | None = None,
    ack_after_s: float = 0,
) -> str:
    timezone = schedule.rule.timezone if schedule is not None else "UTC"
    line = run_heading(schedule, run, timezone).removeprefix("📨 ")
    line += ": " + (counts_text(deliveries) or "preparing…")
    failed = [d for d in deliveries if d.status is DeliveryStatus.failed]
    if failed:
        line += f" — {escape(failure_reason(failed[0]))}"
    stuck = [] if now is None else unacked(deliveries, now=now, after_s=ack_after_s)
    if stuck and now is not None:
        oldest = min(d.sent_at or now for d in stuck)
        line += f" — {len(stuck)} sent {ago(now, oldest)} ago, not on their phone yet"
    return line


def retry_buttons(run_ids: Sequence[int]) -> InlineKeyboardMarkup | None:
    if not run_ids:
        return None
    builder = InlineKeyboardBuilder()
    for run_id in run_ids[:8]:
        label = "Retry failed" if len(run_ids) == 1 else f"Retry run {run_id}"
        builder.button(text=f"🔁 {label}", callback_data=RunCb(id=run_id))
    builder.adjust(1)
    return builder.as_markup()


# --- messages sent but not on the recipient's phone ------------------------------------------


def ago(now: datetime, then: datetime) -> str:
    """`10 min`, `3 h`, `2 days`: how long before `now` `then` was, rounded down."""
    minutes = max(0, int((now - then).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def delivery_who(delivery: Delivery) -> str:
    return escape(address_label(delivery.recipient, delivery.recipient_name))


def unacked_line(delivery: Delivery, now: datetime) -> str:
    """A card's line for a message WhatsApp took long ago that is not on the phone yet."""
    sent = ago(now, delivery.sent_at or now)
    return (
        f"{DELIVERY_ICONS[DeliveryStatus.sent]} {delivery_who(delivery)}: "
        f"sent {sent} ago, not on their phone yet"
    )


UNACKED_MEANING = (
    "This usually means their phone is offline or the number is not active on WhatsApp; "
    "WhatsApp delivers it when the phone is back."
)


def unacked_alert(
    schedule: Schedule | None,
    run: Run,
    deliveries: Sequence[Delivery],
    *,
    now: datetime,
    after_s: float,
) -> str:
    """The one message to the owner about a run's messages not on the recipient's phone."""
    stuck = unacked(deliveries, now=now, after_s=after_s)
    count = len(stuck)
    what = "1 message WhatsApp took is" if count == 1 else f"{count} messages WhatsApp took are"
    lines = [f"⚠️ <b>{run_name(schedule, run)}</b>: {what} not on the recipient's phone yet:"]
    lines += [f"• {delivery_who(d)}: sent {ago(now, d.sent_at or now)} ago" for d in stuck[:20]]
    if count > 20:
        lines.append(f"… and {count - 20} more")
    lines.append(UNACKED_MEANING)
    lines.append(
        "<b>Check again</b> asks WhatsApp now. <b>Send again</b> sends a second copy, which "
        "may arrive twice."
    )
    return cap("\n".join(lines))


def unacked_buttons(run_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text="🔄 Check again", callback_data=UnackedCb(action=UnackedAction.check, id=run_id)
    )
    builder.button(
        text="📨 Send again (may arrive twice)",
        callback_data=UnackedCb(action=UnackedAction.resend, id=run_id),
    )
    builder.adjust(1)
    return builder.as_markup()


def confirm_send_again(
    run: Run, deliveries: Sequence[Delivery]
) -> tuple[str, InlineKeyboardMarkup]:
    count = len(deliveries)
    people = ", ".join(delivery_who(d) for d in deliveries[:10])
    if count > 10:
        people += f" and {count - 10} more"
    text = (
        f"Send a second copy of run {run.id} to {count} recipient{'s' if count != 1 else ''} "
        f"({people})?\nIf the first copy reaches their phone later, they get the message twice."
    )
    builder = InlineKeyboardBuilder()
    builder.button(
        text="Yes, send a second copy",
        callback_data=UnackedCb(action=UnackedAction.resend_ok, id=run.id),
    )
    builder.button(text="No, wait", callback_data=UnackedCb(action=UnackedAction.keep, id=run.id))
    return cap(text), builder.as_markup()


def sent_again_text(run: Run, copy: Run, deliveries: Sequence[Delivery]) -> str:
    count = len(deliveries)
    return (
        f"Sending a second copy of run {run.id} to {count} recipient{'s' if count != 1 else ''} "
        f"as run {copy.id}; I will report here how it goes."
    )


def recheck_text(result: Recheck) -> str:
    """What Check again found, short enough for a button's answer (200 characters)."""
    if result.checked == 0:
        return (
            f"Nothing to check in run {result.run_id}: every message is on the recipient's "
            "phone, or failed."
        )
    parts = [
        f"{n} {'still not on their phone' if s is DeliveryStatus.sent else DELIVERY_WORDS[s]}"
        for s, n in sorted(result.statuses.items(), key=lambda item: item[1], reverse=True)
    ]
    if result.unknown:
        parts.append(f"{result.unknown} unknown to WhatsApp")
    noun = "message" if result.checked == 1 else "messages"
    return f"Checked {result.checked} {noun} with WhatsApp: " + ", ".join(parts) + "."


def missed_text(schedule: Schedule, run: Run, late_by_s: float) -> str:
    tz = schedule.rule.timezone
    due = local_time(run.scheduled_for, tz, with_zone=True)
    return (
        f"⏰ <b>Schedule #{schedule.id} missed</b>: it was due {escape(due)} "
        f"while wasched was not running, {lateness(late_by_s)} ago, longer than the misfire "
        "grace. "
        f"Nothing was sent for it. Send /runnow {schedule.id} to send it now."
    )


def qr_png(qr: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(qr, error="m").save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()


def not_allowed(user_id: int) -> str:
    return (
        f"This bot is private. Your Telegram user id is {user_id}; ask the person who runs "
        "this wasched to add it to TELEGRAM_ADMIN_IDS."
    )


QR_CAPTION = (
    "Scan this with WhatsApp on your phone: Settings → Linked devices → Link a device. "
    "A new code replaces this one when WhatsApp rotates it."
)


# The sidecar's own detail (a browser error) shown after the reason, at most this long.
SESSION_DETAIL_LIMIT = 200


def session_lines(words: SessionWords) -> list[str]:
    """Why WhatsApp does not work and what to do, one line each (none while it works)."""
    if words.working:
        return []
    why = words.reason
    if words.detail:
        why += f" ({shorten(words.detail, SESSION_DETAIL_LIMIT)})"
    lines = [f"Why: {escape(why)}"]
    if words.fix:
        lines.append(f"Fix: {escape(words.fix)}")
    return lines


def session_alert(words: SessionWords, *, again: bool) -> str:
    """The alert when WhatsApp stops working, or (`again`) still fails for another reason."""
    if again:
        return (
            f"⚠️ WhatsApp still does not work, now for another reason: {escape(words.reason)}\n"
            f"Fix: {escape(words.fix)}"
        )
    return (
        f"⚠️ WhatsApp does not work: {escape(words.reason)}\n"
        f"Fix: {escape(words.fix)}\n"
        "Messages wait (held) until it works again."
    )


def link_answer(words: SessionWords) -> str:
    """/link while no QR code is there to show; promises one only when one will come."""
    if words.remedy is Remedy.wait:
        return (
            "WhatsApp Web is starting; I will send the QR code here as soon as it has one "
            "(or tell you it is linked)."
        )
    if words.remedy is Remedy.link:
        return (
            f"{escape(words.reason)}\nWhatsApp Web is getting a new QR code; I will send it "
            "here as soon as it has one."
        )
    if words.remedy is Remedy.restarts:
        return (
            f"{escape(words.reason)}\nIt restarts by itself and needs no new link; I will tell "
            "you here when it works."
        )
    return f"No QR code can come now. {escape(words.reason)}\nFix: {escape(words.fix)}"


def me_text(me: dict[str, str] | None) -> str:
    if not me:
        return ""
    number = me.get("id", "").split("@")[0]
    name = me.get("name", "")
    shown = " ".join(p for p in (name, f"+{number}" if number.isdigit() else number) if p)
    return f" as {escape(shown)}" if shown else ""


# --- the /schedule wizard -------------------------------------------------------------------

WIZARD_CONTACT_BUTTONS = 30


def recipients_prompt(
    contacts: Sequence[Contact], chosen: Sequence[int]
) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    for contact in contacts[:WIZARD_CONTACT_BUTTONS]:
        mark = "✓ " if contact.id in chosen else ""
        builder.button(
            text=f"{mark}{contact.name}",
            callback_data=WizardCb(action=WizardAction.contact, value=contact.id),
        )
    builder.adjust(2)
    builder.row(
        InlineKeyboardButton(
            text="Done ›",
            callback_data=WizardCb(action=WizardAction.recipients_done).pack(),
        ),
        InlineKeyboardButton(
            text="Cancel", callback_data=WizardCb(action=WizardAction.cancel).pack()
        ),
    )
    lines = ["<b>1/3 Who gets it?</b>"]
    if contacts:
        lines.append(
            "Tap contacts, then Done. Or type numbers, contact names or WhatsApp group names, "
            "separated by commas: <code>+4915123456789, Anna, Family</code>"
        )
    else:
        lines.append(
            "Type numbers or WhatsApp group names, separated by commas: "
            "<code>+4915123456789, Family</code>. /addcontact saves a contact to type by "
            "name; /groups lists your groups."
        )
    if chosen:
        names = [c.name for c in contacts if c.id in chosen]
        lines.append("Chosen: " + escape(", ".join(names)))
    return "\n".join(lines), builder.as_markup()


def message_prompt(templates: Sequence[Template]) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    for template in templates[:WIZARD_CONTACT_BUTTONS]:
        builder.button(
            text=f"📝 {template.name}",
            callback_data=WizardCb(action=WizardAction.template, value=template.id),
        )
    builder.button(text="Cancel", callback_data=WizardCb(action=WizardAction.cancel))
    builder.adjust(2)
    text = (
        "<b>2/3 What should it say?</b>\nSend the text, or a photo or document with a caption"
        + (", or pick a template." if templates else ".")
        + " Text may use {date}, {time}, {weekday}, and {name}, {first_name} when every"
        + " recipient is a saved contact."
    )
    return text, builder.as_markup()


def when_prompt(examples: Sequence[str]) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    for number, example in enumerate(examples[:8]):
        builder.button(
            text=example, callback_data=WizardCb(action=WizardAction.when, value=number)
        )
    builder.button(text="Cancel", callback_data=WizardCb(action=WizardAction.cancel))
    builder.adjust(2)
    text = (
        "<b>3/3 When?</b>\nTap an example or type your own, such as "
        "<code>24.12.2026 18:00</code>, <code>in 2h</code> or <code>cron 0 9 * * 1-5</code>. "
        "A repeat may end: <code>every day at 9:00 5 times</code>, "
        "<code>every friday at 17:00 for 4 weeks</code> or <code>… until 31.12</code>."
    )
    return text, builder.as_markup()


def preview_text(preview: Preview) -> str:
    lines = ["<b>Preview</b>" if preview.schedule_id is None else f"<b>#{preview.schedule_id}</b>"]
    when = preview.description
    if preview.timezone not in when:
        when += f" ({preview.timezone})"
    lines.append(f"When: {escape(when)}")
    if preview.next_runs:
        lines.append("Next: " + "; ".join(escape(t.local) for t in preview.next_runs))
    else:
        lines.append("Next: never (no time left)")
    if preview.template_name:
        lines.append(f"Template: {escape(preview.template_name)}")
    if preview.media_filename:
        lines.append(f"With 📎 {escape(preview.media_filename)}")
    for item in preview.messages[:3]:
        lines.append(f"\nTo {escape(item.label)}:\n{escape(item.text)}")
    if len(preview.messages) > 3:
        lines.append(f"\n… and {len(preview.messages) - 3} more recipients")
    return cap("\n".join(lines))


def confirm_buttons(ask: NoAnswer | None = None) -> InlineKeyboardMarkup:
    """The preview's buttons; `ask` is the draft's ask-me-first setting (None: off)."""
    builder = InlineKeyboardBuilder()
    builder.button(text="✅ Save", callback_data=WizardCb(action=WizardAction.save))
    builder.button(text="✏️ Edit", callback_data=WizardCb(action=WizardAction.edit))
    builder.button(text="Cancel", callback_data=WizardCb(action=WizardAction.cancel))
    builder.button(text=ask_toggle(ask), callback_data=WizardCb(action=WizardAction.ask))
    builder.adjust(3, 1)
    return builder.as_markup()


def wizard_edit_buttons() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="Recipients", callback_data=WizardCb(action=WizardAction.edit_recipients))
    builder.button(text="Message", callback_data=WizardCb(action=WizardAction.edit_message))
    builder.button(text="When", callback_data=WizardCb(action=WizardAction.edit_when))
    builder.button(text="✅ Save", callback_data=WizardCb(action=WizardAction.save))
    builder.button(text="Cancel", callback_data=WizardCb(action=WizardAction.cancel))
    builder.adjust(3, 2)
    return builder.as_markup()


# --- contacts, templates, groups, status ----------------------------------------------------


def contacts_text(contacts: Sequence[Contact]) -> str:
    if not contacts:
        return (
            "No contacts yet. Save one with <code>/addcontact Anna +4915123456789</code>, "
            "or /importcontacts from WhatsApp."
        )
    lines = [f"<b>Contacts</b> ({len(contacts)})"]
    lines += [f"• {escape(c.name)}: {escape(c.phone)}" for c in contacts]
    return cap("\n".join(lines))


def templates_text(templates: Sequence[Template]) -> str:
    if not templates:
        return (
            "No templates yet. Save one with "
            "<code>/addtemplate greeting | Hello {first_name}!</code>"
        )
    lines = [f"<b>Templates</b> ({len(templates)})"]
    lines += [f"• <b>{escape(t.name)}</b>: {excerpt(t.text, 120)}" for t in templates]
    return cap("\n".join(lines))


# What splits a typed /schedule line: such a name is typed as its group's id.
_NOT_IN_A_NAME = re.compile(r"[,;|\n\r]")


def groups_text(groups: Sequence[Group]) -> str:
    if not groups:
        return "The linked WhatsApp account is in no groups."
    keys = [typed_key(g.name) for g in groups]
    typeable = [
        g.name
        for g, key in zip(groups, keys, strict=True)
        if keys.count(key) == 1 and not _NOT_IN_A_NAME.search(g.name)
    ]
    example = typeable[0] if typeable else groups[0].id
    lines = [
        f"<b>WhatsApp groups</b> ({len(groups)}); schedule to one by its name, or by its id "
        "when another group or a contact has that name too, for example "
        f"<code>/schedule {escape(example)} | tomorrow 9:00 | Hello!</code>"
    ]
    lines += [
        f"• {escape(g.name)} ({g.participants} {'person' if g.participants == 1 else 'people'})"
        f": <code>{escape(g.id)}</code>"
        for g in groups
    ]
    return cap("\n".join(lines))


def status_report(
    report: Status,
    timezone: str,
    store_state: StoreState | None = None,
    store_reason: str = "",
    caps: Caps | None = None,
) -> str:
    """/status: the session's state, the scheduler, counts, the version, and the store's state
    when the store is checked; with `caps`, the sends against the caps."""
    whatsapp = escape(report.whatsapp_state)
    who = " ".join(p for p in (report.whatsapp_name or "", report.whatsapp_number or "") if p)
    if who:
        whatsapp += f" as {escape(who)}"
    schedules = ", ".join(f"{n} {s.value}" for s, n in report.schedules.items() if n) or "none"
    deliveries = (
        ", ".join(f"{DELIVERY_ICONS[s]} {n} {s.value}" for s, n in report.deliveries.items() if n)
        or "none"
    )
    lines = [
        "<b>wasched status</b>",
        f"WhatsApp: {whatsapp}",
        *session_lines(report.whatsapp_words),
        f"Scheduler: {escape(report.scheduler)}",
        f"Next run: {escape(local_time(report.next_run_at, timezone, with_zone=True))}",
        f"Schedules: {schedules}",
        f"Deliveries: {deliveries}",
        *(caps_lines(caps, timezone) if caps is not None else []),
        f"Version: {escape(report.version)}",
    ]
    if store_state is not None:
        lines.append(store_state_line(store_state, store_reason))
    return "\n".join(lines)


# --- a typed name that matches several contacts or groups ------------------------------------

PICK_BUTTON_LIMIT = 60


def recipient_choice(choice: Choice, part: int) -> tuple[str, InlineKeyboardMarkup]:
    """Ask which of the contacts and groups a typed name matches was meant."""
    builder = InlineKeyboardBuilder()
    for number, shown in enumerate(distinct_labels(choice.options)):
        builder.button(
            text=shorten(shown, PICK_BUTTON_LIMIT),
            callback_data=PickCb(part=part, option=number),
        )
    builder.button(text="Cancel", callback_data=WizardCb(action=WizardAction.cancel))
    builder.adjust(1)
    groups = sum(1 for o in choice.options if o.kind is RecipientKind.group)
    people = len(choice.options) - groups
    counts = [
        f"{n} {word}{'s' if n != 1 else ''}"
        for n, word in ((people, "contact"), (groups, "group"))
        if n
    ]
    text = (
        f"<b>{escape(choice.typed)}</b> matches {' and '.join(counts)}: which one do you "
        "mean? Nothing is saved until you pick one."
    )
    return text, builder.as_markup()


def recipient_chosen(choice: Choice, chosen: Recipient) -> str:
    shown = dict(zip(choice.options, distinct_labels(choice.options), strict=True))
    return f"<b>{escape(choice.typed)}</b>: {escape(shown.get(chosen) or label(chosen))}"


# --- the wizard's When buttons and its end -------------------------------------------------

# The When step's buttons (their callback data is the index here); each one parses.
WHEN_BUTTONS: tuple[str, ...] = (
    "tomorrow 9:00",
    "in 10 minutes",
    "every day at 9:00",
    "every weekday at 8:30",
    "every monday 9:00",
    "every month on the 1st at 10:00",
    "every 2 hours",
    "monday 9am",
)


def cancelled(fsm_state: str | None) -> str:
    """What leaving a step with /cancel or Cancel did (`fsm_state`, the step left): only that
    step's work is dropped (a contact saved meanwhile with /addcontact stays)."""
    if fsm_state is not None and fsm_state.startswith("EditForm:"):
        return "Cancelled; the schedule is unchanged."
    if fsm_state is not None and fsm_state.startswith("ZoneForm:"):
        return "Cancelled; your time zone is unchanged."
    return "Cancelled; no schedule was saved."


# --- the first minute and time zones ---------------------------------------------------------

# Zones offered as buttons besides the person's own (a few likely ones, one per region).
LIKELY_ZONES = (
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Australia/Sydney",
    "UTC",
)
ZONE_BUTTONS = 8

WHERE_THE_CODE_IS = (
    "The code is in the output of <code>bash deploy/start.sh</code>; when wasched runs as a "
    "service, find it with <code>journalctl -u wasched | grep 'send /start'</code>, or with "
    "Docker <code>docker compose -f deploy/docker-compose.yml logs | grep 'send /start'</code>. "
    "Then send <code>/start CODE</code> here."
)


def claim_hint(user_id: int, *, tried: bool) -> str:
    """To someone while this wasched has no owner yet: how to become it."""
    first = "That is not the one-time code." if tried else "This wasched has no owner yet."
    return (
        f"{first} Whoever sends <code>/start CODE</code> with the one-time code becomes its "
        f"owner. {WHERE_THE_CODE_IS}\n(Your Telegram user id is {user_id}; an admin can also "
        "put it in TELEGRAM_ADMIN_IDS.)"
    )


OWNER_WELCOME = (
    "You are now the owner of this wasched. Two steps to go: your time zone (below), then "
    "/link to link WhatsApp. /help lists everything I can do."
)


def zone_buttons(zones: Sequence[str], action_text: str = "") -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for zone in zones[:ZONE_BUTTONS]:
        builder.button(
            text=f"{action_text}{zone}", callback_data=ZoneCb(action=ZoneAction.choose, zone=zone)
        )
    builder.adjust(2)
    return builder.as_markup()


def zone_question(
    current: str, now: datetime, *, typing: bool = True
) -> tuple[str, InlineKeyboardMarkup]:
    """Which time zone: buttons with likely ones, or a typed city (`typing`: read as the
    answer; else, while a wizard waits for text, with /tz), or a shared location."""
    zones = [current] + [z for z in LIKELY_ZONES if z != current]
    name = (
        "type a city or zone name (Berlin, New York, Asia/Tokyo)"
        if typing
        else "send /tz with a city or zone name (<code>/tz Berlin</code>)"
    )
    text = (
        f"<b>Your time zone</b> is {escape(current)} (there it is now "
        f"{escape(format_local(now, current))}). Times you type are read in it and times I show "
        f"are in it.\nTap yours, {name}, or share your location (📎 → Location; it is turned "
        "into a zone here and not kept)."
    )
    return text, zone_buttons(zones)


def zone_choices(
    typed: str, zones: Sequence[str], *, typing: bool = True
) -> tuple[str, InlineKeyboardMarkup]:
    """A button per matching zone; more than fit are counted and the city asked for."""
    if len(zones) <= ZONE_BUTTONS:
        return f"Several time zones match “{escape(typed)}”; tap yours:", zone_buttons(zones)
    city = zones[ZONE_BUTTONS].rsplit("/", 1)[-1].replace("_", " ")
    ask = escape(city) if typing else f"<code>/tz {escape(city)}</code>"
    text = (
        f"{len(zones)} time zones match “{escape(typed)}”; here are {ZONE_BUTTONS} of them. "
        f"Yours is not among them? Send your city ({ask}) or share your location."
    )
    return text, zone_buttons(zones)


def zone_unknown(typed: str, near: Sequence[str], *, typing: bool = True) -> str:
    hint = f" Did you mean {escape(near[0])}?" if near else ""
    how = (
        "Type a city (Berlin), an Area/City name (Europe/Berlin) or UTC"
        if typing
        else "Send <code>/tz Berlin</code> (a city, an Area/City name or UTC)"
    )
    return (
        f"I know no time zone called “{escape(shorten(typed, 60))}”.{hint} {how}, tap a "
        "button, or share your location."
    )


def zone_nowhere(*, typing: bool = True) -> str:
    """A shared location no zone covers."""
    how = (
        "Type a city or zone name instead, for example Berlin or Europe/Berlin."
        if typing
        else "Send /tz with a city or zone name instead, for example <code>/tz Berlin</code>."
    )
    return f"No time zone covers that spot (open sea?). {how}"


def zone_changed_since(zone: str, current: str) -> str:
    """An old "Move them" button for a zone that is no longer the person's (a callback
    answer: plain text)."""
    return (
        f"Your time zone is now {current}, not {zone}: nothing was moved. "
        f"Send /tz {current} to be offered the move there."
    )


def zone_set(
    zone: str, now: datetime, others: Sequence[Schedule]
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The zone is set; what happens to schedules made in another zone (a button moves them)."""
    lines = [
        f"Your time zone is now {escape(zone)} (there it is now "
        f"{escape(format_local(now, zone))}). New times are read and shown in it."
    ]
    if not others:
        return lines[0], None
    kept = sorted({s.rule.timezone for s in others})
    count = len(others)
    noun = "schedule keeps" if count == 1 else "schedules keep"
    ids = ", ".join(f"#{s.id}" for s in others[:10]) + (" …" if count > 10 else "")
    lines.append(
        f"Your {count} {noun} {escape(', '.join(kept))} ({ids}): they fire as before. "
        f"Move them to {escape(zone)} to keep their clock times there (09:00 stays 09:00)."
    )
    builder = InlineKeyboardBuilder()
    builder.button(
        text=f"Move them to {zone}", callback_data=ZoneCb(action=ZoneAction.move, zone=zone)
    )
    return "\n".join(lines), builder.as_markup()


def zones_moved(zone: str, moved: Sequence[Schedule], kept: Sequence[Schedule]) -> str:
    parts = []
    if moved:
        ids = ", ".join(f"#{s.id}" for s in moved[:20])
        parts.append(f"Moved {len(moved)} to {escape(zone)} ({ids}); their clock times stay.")
    if kept:
        ids = ", ".join(f"#{s.id}" for s in kept[:20])
        parts.append(
            f"Not moved: {ids}, whose time would be in the past in {escape(zone)}; "
            "/edit gives it a new time."
        )
    return " ".join(parts) or f"Your schedules use {escape(zone)} already."


FIRST_STEP_LINK = "Next: /link links WhatsApp, then /schedule plans a message."


def lateness(seconds: float) -> str:
    """`14 s`, `12 min`, `2.5 h`: how late, never `0 min` for a few seconds."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def store_state_line(store_state: StoreState, reason: str) -> str:
    """/status: whether the database takes writes, and why not."""
    if store_state is StoreState.ok:
        return "Database: takes writes"
    if store_state is StoreState.busy:
        return "Database: ⏳ busy (another process holds it); runs wait and are not lost"
    return (
        f"Database: ⚠️ does not take writes: {escape(reason)}\n"
        "Runs due meanwhile go out once it takes writes again."
    )


# --- the routers' answers, refusals and alerts, by router -------------------------------------

# acks: Check again / Send again under an unacked alert
NOTHING_TO_SEND_AGAIN = (
    "Every message of this run is on the recipient's phone now, or failed: nothing to send again."
)
NOT_SENT_AGAIN = "Not sent again."


def sending_copy(copy_id: int) -> str:
    return f"Sending a second copy as run {copy_id}."


def not_sent_again(run_id: int) -> str:
    return (
        f"Not sent again. WhatsApp delivers run {run_id}'s messages when the phone is "
        "back; Check again under the alert asks where they stand."
    )


# contacts
ADD_CONTACT_FORM = "Write it as /addcontact Anna +4915123456789 (a name, then a number)."
DELETE_CONTACT_FORM = "Tell me who: /delcontact Anna (see /contacts)."


def contact_saved(contact: Contact) -> str:
    return f"Saved {escape(contact.name)} ({escape(contact.phone)}). Use the name as a recipient."


def contact_deleted(contact: Contact) -> str:
    return f"Deleted {escape(contact.name)}. Schedules to them keep their number."


def contacts_imported(result: ImportResult) -> str:
    lines = [
        f"Imported {result.imported} contact{'s' if result.imported != 1 else ''} from WhatsApp"
        f" ({result.existing} known already, {result.skipped} without a usable name or number)."
    ]
    if result.not_on_whatsapp:
        lines.append(imported_without_whatsapp(result.not_on_whatsapp))
    lines += [f"• {escape(c.name)}: {escape(c.phone)}" for c in result.contacts[:50]]
    return cap("\n".join(lines))


# errors
SOMETHING_WENT_WRONG = (
    "Something went wrong on wasched's side; it is logged. Please try again in a moment."
)

# fallback
NOT_THIS_STEP = "That does not fit this step: follow the question above, or /cancel to stop."
WHAT_TO_SEND = "To schedule a message, send /schedule. /help lists everything I can do."
BUTTON_GONE = "This button no longer works. Send /list or /help."


def unknown_command(command: str) -> str:
    return f"I don't know {escape(command)}. /help lists what I can do."


# link
NO_QR_YET = "WhatsApp has no QR code this moment; I will send it here as soon as it has one."
QR_FILENAME = "whatsapp-qr.png"


def linked_already(name: str | None, number: str | None) -> str:
    who = " ".join(p for p in (name, number) if p)
    return f"WhatsApp is linked already{f' as {escape(who)}' if who else ''}."


def pairing_code_text(code: str) -> str:
    return (
        f"Your pairing code: <code>{escape(code)}</code>\nOn your phone: WhatsApp → "
        "Settings → Linked devices → Link a device → Link with phone number instead, "
        "then type the code. I will tell you when it is linked."
    )


# logs and export
def no_deliveries(schedule_id: int | None) -> str:
    what = f"#{schedule_id}" if schedule_id is not None else "your schedules"
    return f"No deliveries for {what} yet. /runnow sends one at once."


def logs_text(
    deliveries: Sequence[Delivery],
    timezone: str,
    schedule_id: int | None,
    choices: Mapping[int, Ask] | None = None,
) -> str:
    """/logs: the latest deliveries, one line each, in the order given; `choices` (by run
    id) says what was chosen before a run that asked first."""
    heading = f"<b>Latest deliveries{f' of #{schedule_id}' if schedule_id else ''}</b>"
    asked = choices or {}
    lines = [heading] + [
        delivery_line(d, timezone, with_schedule=schedule_id is None)
        + choice_note(asked.get(d.run_id), timezone)
        for d in deliveries
    ]
    lines.append(f"Times in {timezone}. /export gives every delivery as CSV.")
    return cap("\n".join(lines))


def export_filename(schedule_id: int | None) -> str:
    return f"wasched-deliveries{f'-{schedule_id}' if schedule_id else ''}.csv"


def export_caption(rows: int) -> str:
    return f"{rows} deliver{'y' if rows == 1 else 'ies'}, oldest first."


def retrying(count: int) -> str:
    return f"Trying {count} deliver{'y' if count == 1 else 'ies'} again."


# schedule: the wizard and the one-line form
ONE_SHOT_EXAMPLE = "/schedule +4915123456789, Anna | tomorrow 9:00 | Hello!"
ONE_SHOT_FORM = f"Write it as {ONE_SHOT_EXAMPLE}, or send /schedule alone to go step by step."
QUESTION_OVER = "That question is over. Send /schedule to start again."
PICK_FIRST = "First tap which one you meant (the question above), or type the recipients again."
TEMPLATE_GONE = "That template was deleted; pick another or write the text."
EXAMPLE_GONE = "That example is gone; type a time instead."
PREVIEW_NOT_YOURS = "This preview is not yours."
CANCELLED_ALERT = "Cancelled"
STEP_OVER = "That step is over. Send /schedule to start again."


def saved(schedule: Schedule, template_name: str | None = None) -> str:
    return f"Saved.\n\n{schedule_block(schedule, template_name)}"


def saved_alert(schedule_id: int) -> str:
    return f"Saved #{schedule_id}"


def nobody_chosen(*, has_contacts: bool) -> str:
    """Done with no recipient: what to do, for a person with contacts or without any."""
    if has_contacts:
        return "Tap at least one contact, or type a number, a contact's or a group's name."
    return (
        "You have no saved contacts yet: type a number, such as +49 151 23456789, or a "
        "WhatsApp group's name (see /groups)."
    )


def file_too_big(size: int, limit: int) -> str:
    return (
        f"That file is {size / 1024 / 1024:.1f} MB; WhatsApp takes files up to "
        f"{limit // 1024 // 1024} MB. Send a smaller one."
    )


def template_picked(name: str) -> str:
    return f"Template {name}"


# schedules: /list's buttons, /runnow, /pause, /resume, /delete, /edit


def which_schedule(command: str) -> str:
    return f"Tell me which schedule: /{command} 12 (the number from /list)."


def no_such_schedule(typed: str) -> str:
    return f"There is no schedule #{shorten(typed, 24)}: see /list for your schedules."


def sending_now(schedule_id: int, count: int) -> str:
    return (
        f"Sending #{schedule_id} now to {count} recipient{'s' if count != 1 else ''}; "
        "I will report here how it goes."
    )


def paused_until_resume(schedule_id: int) -> str:
    return f"Paused #{schedule_id}: it will not fire until /resume {schedule_id}."


def resumed(block: str, resumed: Resumed | None = None) -> str:
    """/resume's answer: the schedule, and the messages held by failure spikes it sends (and
    those of older runs it leaves held)."""
    done = resumed is not None and resumed.schedule.state is ScheduleState.done
    lines = [nothing_left(resumed.schedule) if done and resumed else "Resumed."]
    if resumed is not None:
        lines += held_lines(resumed)
    return "\n".join(lines) + f"\n\n{block}"


def nothing_left(schedule: Schedule) -> str:
    """Resume found no time left for `schedule` to fire: it is done now."""
    sid = schedule.id
    if schedule.rule.kind is RuleKind.once:
        return (
            f"The time of #{sid} passed while it was paused, so it is done now: "
            f"/runnow {sid} sends it now, or /edit {sid} gives it a new time."
        )
    return (
        f"#{sid} has ended ({describe(schedule.rule)}), so it is done now: "
        f"/edit {sid} when every day at 9:00 5 times gives it a new time and end."
    )


def held_lines(resumed: Resumed) -> list[str]:
    """What resuming did to the messages held after too many of a run failed."""
    lines = []
    if resumed.sent:
        total = sum(resumed.sent.values())
        what = "1 held message goes" if total == 1 else f"{total} held messages go"
        lines.append(f"▶️ {what} out now ({runs_counted(resumed.sent)}).")
    if resumed.left_held:
        total = sum(resumed.left_held.values())
        what = "1 message stays" if total == 1 else f"{total} messages stay"
        lines.append(
            f"⏸ {what} held ({runs_counted(resumed.left_held)}): too old to send without "
            "asking. The Resume button on the run's message sends them."
        )
    return lines


def runs_counted(by_run: Mapping[int, int]) -> str:
    return ", ".join(f"run {run_id}: {count}" for run_id, count in by_run.items())


def changed(block: str, note: str = "") -> str:
    return f"Changed.{' ' + note if note else ''}\n\n{block}"


def what_to_change(schedule_id: int, block: str) -> str:
    return f"What should change in #{schedule_id}?\n\n{block}"


def edit_prompt(field: EditField) -> str:
    return EDIT_PROMPTS[field] + "\n/cancel keeps it as it is."


# A /list button's action done: the alert on the button, and the card's new text.
DONE_ALERTS: dict[ScheduleAction, str] = {
    ScheduleAction.pause: "Paused #{id}.",
    ScheduleAction.resume: "Resumed #{id}.",
    ScheduleAction.confirm_delete: "Deleted #{id}.",
    ScheduleAction.keep: "Kept.",
}
DONE_CARDS: dict[ScheduleAction, str] = {
    ScheduleAction.confirm_delete: "Deleted #{id}. Its logs stay in /logs.",
    ScheduleAction.keep: "Kept #{id}.",
}


def done_alert(action: ScheduleAction, schedule_id: int) -> str:
    return DONE_ALERTS[action].format(id=schedule_id)


def done_card(action: ScheduleAction, schedule_id: int) -> str:
    return DONE_CARDS[action].format(id=schedule_id)


# start
NOTHING_TO_CANCEL = "Nothing to cancel. /help lists what I can do."


def hello() -> str:
    return "Hello! " + help_text()


# templates
ADD_TEMPLATE_FORM = "Write it as /addtemplate greeting | Hello {first_name}!"
DELETE_TEMPLATE_FORM = "Tell me which: /deltemplate greeting (see /templates)."


def template_saved(template: Template) -> str:
    return f"Saved template <b>{escape(template.name)}</b>. Pick it in /schedule."


def template_deleted(template: Template) -> str:
    return f"Deleted template <b>{escape(template.name)}</b>."


# timezone
def with_intro(intro: str, text: str) -> str:
    """A question after `intro` (the first /start's hello), in one message."""
    return cap(f"{intro}\n\n{text}" if intro else text)


def first_zone_set(text: str) -> str:
    """The zone set on the first /start, and the next step."""
    return text + "\n" + FIRST_STEP_LINK


# ends: schedules that end (`5 times`, `until 31.12.2026`, `for 4 weeks`)
def end_line(schedule: Schedule) -> str:
    """What is left of a schedule that ends (`3 of 5 left`, `until Thu 31 Dec · 24 left`),
    or how it ended; "" for one that does not end."""
    rule = schedule.rule
    if rule.ends_at is None:
        return ""
    if schedule.state is ScheduleState.done:
        return f"ended ({escape(end_how(rule))})"
    left = occurrences_left(rule, schedule.next_run_at) or 0
    if rule.times is not None:
        return f"{min(left, rule.times)} of {rule.times} left"
    zone = ZoneInfo(rule.timezone)
    same_year = schedule.next_run_at is not None and (
        schedule.next_run_at.astimezone(zone).year == rule.ends_at.astimezone(zone).year
    )
    words = end_words(rule, year=not same_year)
    count = f"more than {MOST_LEFT_COUNTED}" if left > MOST_LEFT_COUNTED else str(left)
    return f"{escape(words)} · {count} left"


def schedule_done_text(schedule: Schedule, occurrences: int) -> str:
    """The one notice that a recurring schedule has ended."""
    went = "1 occurrence went out" if occurrences == 1 else f"{occurrences} occurrences went out"
    return (
        f"✔️ <b>Schedule #{schedule.id} is done</b>: {escape(describe(schedule.rule))}. "
        f"{went}; it sends nothing more. Edit gives it a new time, Delete removes it "
        "(its logs stay in /logs).\n\n" + schedule_block(schedule)
    )


def schedule_done_buttons(schedule: Schedule) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    schedule_buttons(schedule, builder)
    return builder.as_markup()


def end_dropped(old: Schedule, new: Schedule, typed: str) -> str:
    """After /edit of the time: what happened to the end the schedule had ("" if nothing)."""
    rule = old.rule
    if rule.ends_at is None or new.rule.ends_at is not None or new.rule.kind is RuleKind.once:
        return ""
    if old.state is ScheduleState.done:
        return "It had ended; the new time has no end."
    zone = ZoneInfo(rule.timezone)
    last = rule.ends_at.astimezone(zone)
    through_the_day = (last + timedelta(milliseconds=1)).time() == time(0, 0)
    keep = f"{typed} until {last:%d.%m.%Y}" + ("" if through_the_day else f" {last:%H:%M}")
    left = occurrences_left(rule, old.next_run_at) or 0
    if rule.times is not None and left > 0:
        keep = f"{typed} {left} times"
    return (
        f"The new time has no end, so the old one ({escape(end_how(rule))}) is gone: to "
        f"keep it, send <code>/edit {old.id} when {escape(keep)}</code>"
    )


def end_how(rule: Rule) -> str:
    """`5 times` or `until Thu 31 Dec 2026`: how a rule ends."""
    return f"{rule.times} times" if rule.times is not None else end_words(rule)


# --- pace: runs cut short by a failure spike, caps and warm-up -------------------------------

# A delivery's status while its run is stopped by a failure spike (not WhatsApp's state).
SPIKE_HELD_WORDS = "held: the run was stopped after too many failures"


def spike_reason(spike: Spike) -> str:
    """The commonest reason of a spike's failures, in plain words."""
    return FAILURE_WORDS.get(spike.reason_code) or spike.reason or "unknown reason"


def auto_paused_text(schedule: Schedule | None, run: Run, spike: Spike) -> str:
    """The one message to the owner about a run cut short by a failure spike."""
    paused = (
        f"Schedule #{run.schedule_id} is paused"
        if spike.paused
        else f"Schedule #{run.schedule_id} is not paused (it was not active)"
    )
    held = "1 message is" if spike.held == 1 else f"{spike.held} messages are"
    lines = [
        f"⏸ <b>{run_name(schedule, run)}</b> was stopped: {spike.failed} of the {spike.tried} "
        "messages sent so far failed.",
        f"Most common reason ({spike.reason_count}×): {escape(spike_reason(spike))}.",
        f"{paused}, and the other {held} held, not sent: sending on to numbers that fail "
        "makes WhatsApp restrict the account.",
        "<b>Resume</b> sends the held messages and resumes the schedule; "
        "<b>Show failures</b> lists who failed and why.",
    ]
    return "\n".join(lines)


def auto_paused_buttons(run_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="▶️ Resume", callback_data=SpikeCb(action=SpikeAction.resume, id=run_id))
    builder.button(
        text="❌ Show failures", callback_data=SpikeCb(action=SpikeAction.failures, id=run_id)
    )
    builder.adjust(2)
    return builder.as_markup()


def spike_resumed(schedule: Schedule | None, run: Run, released: int) -> str:
    """What Resume did: the held messages queued, and the schedule's state now."""
    if schedule is None:
        state = f"Schedule #{run.schedule_id} was deleted."
    elif schedule.state is ScheduleState.active:
        state = f"Schedule #{run.schedule_id} is active again."
    elif schedule.state is ScheduleState.done:
        state = f"Schedule #{run.schedule_id} has nothing left to send: it is done."
    else:
        state = (
            f"Schedule #{run.schedule_id} stays {schedule.state.value}: "
            f"/resume {run.schedule_id} if it should run again."
        )
    if released == 0:
        return f"Nothing is held in run {run.id} any more: it was resumed already. {state}"
    what = "1 held message goes" if released == 1 else f"{released} held messages go"
    return f"▶️ Run {run.id}: {what} out now. {state}"


def spike_failures(schedule: Schedule | None, run: Run, deliveries: Sequence[Delivery]) -> str:
    """Show failures: the failed deliveries of a run with their reasons."""
    failed = [d for d in deliveries if d.status is DeliveryStatus.failed]
    if not failed:
        return f"No message of {run_name(schedule, run)} failed."
    lines = [f"❌ <b>{run_name(schedule, run)}</b>: {len(failed)} failed"]
    lines += [f"• {delivery_who(d)}: {escape(failure_reason(d))}" for d in failed[:40]]
    if len(failed) > 40:
        lines.append(f"… and {len(failed) - 40} more: /export has them all")
    return cap("\n".join(lines))


def caps_lines(caps: Caps, timezone: str) -> list[str]:
    """/status: the sends of the last hour and day against the caps, warm-up, and when the
    next send may go while a cap is reached."""
    daily = f"{caps.sent_last_day} of {caps.daily_cap} in the last 24 h"
    if caps.warmup is not None:
        daily += f" ({warmup_words(caps.warmup)})"
    lines = [f"Sends: {caps.sent_last_hour} of {caps.hourly_cap} in the last hour, {daily}"]
    if caps.capped is not None and caps.next_at is not None:
        lines.append(
            f"⏳ The {caps.capped} cap is reached: the next send goes at "
            f"{escape(local_time(caps.next_at, timezone, with_zone=True))}."
        )
    return lines


def warmup_words(day: WarmUpDay) -> str:
    """`warm-up day 2 of 7: 100 a day`: a new number's lowered daily cap."""
    return f"warm-up day {day.day} of {day.days}: {day.cap} a day, growing to SEND_DAILY_CAP"


def waiting_note(schedule: Schedule, waiting: Mapping[int, tuple[int, Pacing]] | None) -> str:
    """A schedule card's line while its messages wait for a cap, else nothing."""
    count, pacing = (waiting or {}).get(schedule.id, (0, None))
    if not count or pacing is None:
        return ""
    return "\n" + pacing_line(count, pacing, schedule.rule.timezone)


# stats (/stats)
# The chart's series, in the order drawn, and their names in its legend.
CHART_SERIES = {"sent": "Sent", "delivered": "Delivered", "read": "Read", "failed": "Failed"}
CHART_RATE_LABEL = "Read rate (%)"
CHART_COUNT_LABEL = "Messages"
STATS_FILENAME = "stats.png"


def stats_period(days: int) -> str:
    return "Today" if days == 1 else f"Last {days} days"


def chart_title(days: int, timezone: str) -> str:
    return f"{stats_period(days)} ({timezone})"


def _percent(rate: float | None) -> str:
    return "no messages sent" if rate is None else f"{rate:.0%}"


def _median(seconds: float | None) -> str:
    return "none yet" if seconds is None else lateness(seconds)


def stats_caption(figures: Figures) -> str:
    """The figures under the /stats chart; short enough for a photo's caption whatever the
    numbers (at most three schedules are named)."""
    days = len(figures.days)
    lines = [
        f"<b>{stats_period(days)}</b> ({escape(figures.timezone)})",
        f"Sent {figures.total('sent')}, delivered {figures.total('delivered')}, "
        f"read {figures.total('read')}, failed {figures.total('failed')}.",
        f"Read rate: {_percent(figures.read_rate)}.",
        f"Median time to delivered: {_median(figures.median_to_delivered_s)}; "
        f"to read: {_median(figures.median_to_read_s)}.",
    ]
    if figures.top_failing:
        most = ", ".join(f"#{sid} ({count})" for sid, count in figures.top_failing)
        lines.append(f"Most failures: {most}. /logs &lt;id&gt; shows them.")
    lines.append("Each message counts on the day it was sent; failures on the day they failed.")
    return "\n".join(lines)


def no_stats(days: int) -> str:
    when = "today" if days == 1 else f"in the last {days} days"
    return (
        f"Nothing was sent {when}, so there is no chart yet. "
        "/list shows your schedules; /stats 365 looks back a year."
    )


# --- guard: numbers checked with WhatsApp -----------------------------------------------------


def numbers_unchecked(numbers: Sequence[str]) -> str:
    """Said after a save while WhatsApp could not be asked whether the numbers have it."""
    listed = ", ".join(escape(n) for n in numbers[:10]) + (" …" if len(numbers) > 10 else "")
    return (
        f"⚠️ WhatsApp could not be asked now whether {listed} "
        f"{'has' if len(numbers) == 1 else 'have'} an account (it is not linked or not "
        "answering; see /status). They will be checked before the first send, and a number "
        "without WhatsApp is not sent to: its delivery fails with the reason."
    )


def with_unchecked(text: str, numbers: Sequence[str]) -> str:
    """`text`, and below it the warning about numbers not checked yet (if any)."""
    return f"{text}\n\n{numbers_unchecked(numbers)}" if numbers else text


def imported_without_whatsapp(count: int) -> str:
    return (
        f"Left out {count} number{'s' if count != 1 else ''} that "
        f"{'have' if count != 1 else 'has'} no WhatsApp account (WhatsApp says so)."
    )


# --- ask: skipping an occurrence, asking before a run ----------------------------------------


def skipped_alert(schedule: Schedule, occurrence: datetime) -> str:
    """Skip next pressed: the occurrence skipped and the one after (a short button alert)."""
    tz = schedule.rule.timezone
    after = (
        f"Next: {local_time(schedule.next_run_at, tz)}."
        if schedule.state is ScheduleState.active and schedule.next_run_at is not None
        else f"Nothing comes after it: #{schedule.id} is done."
    )
    return f"Skipped {local_time(occurrence, tz)}. {after}"


def asks_line(schedule: Schedule) -> str:
    """The card's line on asking first: "asks 15 min before (skips if no answer)"."""
    if not schedule.ask_first:
        return ""
    minutes = max(1, (schedule.ask_lead_s or 0) // 60)
    policy = "skips" if schedule.on_no_answer is NoAnswer.skip else "sends"
    return f"asks {minutes} min before ({policy} if no answer)"


ASK_BUTTONS: dict[AskAnswer, str] = {
    AskAnswer.send_now: "Send now",
    AskAnswer.at_time: "Send at the time",
    AskAnswer.snooze_15: "Snooze 15 min",
    AskAnswer.snooze_1h: "Snooze 1 h",
    AskAnswer.snooze_1d: "Snooze until tomorrow",
    AskAnswer.skip: "Skip this one",
    AskAnswer.edit: "Edit",
}
# Each snooze button's name in `core.delivery.asker.SNOOZES`.
SNOOZE_NAMES: dict[AskAnswer, str] = {
    AskAnswer.snooze_15: "15 min",
    AskAnswer.snooze_1h: "1 h",
    AskAnswer.snooze_1d: "tomorrow",
}
CHOICE_WORDS: dict[AskChoice, str] = {
    AskChoice.send_now: "Send now",
    AskChoice.at_time: "Send at the time",
    AskChoice.snooze: "Snooze",
    AskChoice.skip: "Skip",
}


def ask_question(question: Question) -> tuple[str, InlineKeyboardMarkup]:
    """The question before an ask-first run: due when, to whom, what, and the answers."""
    schedule, ask = question.schedule, question.ask
    tz = schedule.rule.timezone
    policy = "it is skipped" if schedule.on_no_answer is NoAnswer.skip else "it goes out"
    lines = [
        f"❓ <b>#{schedule.id} is due {escape(local_time(ask.occurrence, tz))}</b>. Send it?",
        f"Without an answer by then, {policy}.",
        "",
        *(f"to {escape(name)}: “{escape(text)}”" for name, text in question.messages),
    ]
    builder = InlineKeyboardBuilder()
    rows = [1, 1]
    for answer in (AskAnswer.send_now, AskAnswer.at_time):
        builder.button(text=ASK_BUTTONS[answer], callback_data=AskCb(id=ask.id, answer=answer))
    offered = [a for a, name in SNOOZE_NAMES.items() if name in question.snoozes]
    for answer in offered:
        builder.button(text=ASK_BUTTONS[answer], callback_data=AskCb(id=ask.id, answer=answer))
    if offered:
        rows.append(len(offered))
    for answer in (AskAnswer.skip, AskAnswer.edit):
        builder.button(text=ASK_BUTTONS[answer], callback_data=AskCb(id=ask.id, answer=answer))
    rows.append(2)
    builder.adjust(*rows)
    return cap("\n".join(lines)), builder.as_markup()


def ask_outcome(answer: Answer, viewer: int) -> str:
    """What was decided for the occurrence, as the question then says (and a late or second
    press is answered): "You chose Skip at 08:47", "Already sent at 09:00: nobody answered"."""
    schedule, ask = answer.schedule, answer.ask
    tz = schedule.rule.timezone
    due = local_time(ask.occurrence, tz)
    if ask.choice is None:
        return f"Too late: #{schedule.id} was due {due}; it goes as the schedule says."
    if ask.choice is AskChoice.no_answer_sent:
        return f"Already sent at {due}: nobody answered."
    if ask.choice is AskChoice.no_answer_skipped:
        return f"Skipped at {due}: nobody answered."
    who = "You" if ask.chosen_by == viewer else "The owner"
    at = local_time(ask.chosen_at, tz)
    said = f"{who} chose {CHOICE_WORDS[ask.choice]} at {at}"
    if ask.choice is AskChoice.send_now:
        return f"{said}: #{schedule.id} is going out now, ahead of {due}."
    if ask.choice is AskChoice.at_time:
        return f"{said}: #{schedule.id} goes out {due}."
    if ask.choice is AskChoice.snooze:
        later = local_time(ask.snoozed_until, tz)
        return f"{said}: #{schedule.id} goes out {later} instead of {due}."
    return f"{said}: #{schedule.id} does not go out {due}."


def ask_unanswered(schedule: Schedule, ask: Ask) -> str:
    """Told when nobody answered by the due time."""
    due = local_time(ask.occurrence, schedule.rule.timezone)
    if ask.choice is AskChoice.no_answer_skipped:
        return f"⏭ #{schedule.id} was skipped {due}: nobody answered, and it skips then."
    return f"📤 #{schedule.id} went out {due}: nobody answered, and it sends then."


def ask_turned(schedule: Schedule) -> str:
    """Asking first turned on or off (Edit, the wizard)."""
    if schedule.ask_first:
        return f"#{schedule.id} now {asks_line(schedule)}."
    return f"#{schedule.id} no longer asks before each run."


def question_answered(question_html: str, outcome: str) -> str:
    """The question once answered: as it was, with what was decided below (no buttons)."""
    return cap(f"{question_html}\n\n<b>{escape(outcome)}</b>")


def choice_note(ask: Ask | None, timezone: str) -> str:
    """A /logs line's note on what was chosen before its run (ask me first)."""
    if ask is None or ask.choice is None:
        return ""
    if ask.choice is AskChoice.no_answer_sent:
        return " (nobody answered: sent)"
    if ask.choice is AskChoice.no_answer_skipped:
        return " (nobody answered: skipped)"
    at = escape(short_time(ask.chosen_at, timezone))
    # Only the owner answers, and /logs is theirs: the id is in the export.
    return f" ({CHOICE_WORDS[ask.choice]}, chosen by you at {at})"


def ask_toggle(ask: NoAnswer | None) -> str:
    """The wizard's toggle, showing the setting a press changes."""
    if ask is None:
        return "❓ Ask me first: off"
    return f"❓ Ask me first: on, {'skip' if ask is NoAnswer.skip else 'send'} if no answer"
