"""Typed callback data of every inline button (Telegram caps packed data at 64 bytes)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from core.domain.recipients import MAX_OPTIONS
from core.services import MAX_ID

# A record's id as the stores can hold it. Forged data out of range does not unpack, so no
# handler sees it and the button is answered as one that no longer works.
RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]


class ScheduleAction(StrEnum):
    run = "run"
    pause = "pause"
    resume = "resume"
    edit = "edit"
    delete = "del"
    confirm_delete = "delok"
    keep = "keep"
    preview = "prev"


class ScheduleCb(CallbackData, prefix="s"):
    """A button on one schedule (`/list`, confirmations)."""

    action: ScheduleAction
    id: RecordId


class ListPageCb(CallbackData, prefix="lp"):
    page: int


class EditField(StrEnum):
    text = "text"
    when = "when"
    recipients = "rcpt"
    ask = "ask"  # ask me first: off -> on (send if no answer) -> on (skip) -> off


class EditCb(CallbackData, prefix="e"):
    """Which part of schedule `id` to change."""

    id: RecordId
    field: EditField


class RunCb(CallbackData, prefix="r"):
    """Retry the failed deliveries of run `id`."""

    id: RecordId


class WizardAction(StrEnum):
    contact = "c"  # toggle contact `value` (its id) as a recipient
    recipients_done = "rd"
    template = "t"  # use template `value` (its id)
    when = "w"  # use example number `value` of the when language
    save = "save"
    edit = "edit"
    edit_recipients = "er"
    edit_message = "em"
    edit_when = "ew"
    cancel = "x"
    ask = "ask"  # ask me first: off -> on (send if no answer) -> on (skip) -> off


class WizardCb(CallbackData, prefix="w"):
    action: WizardAction
    value: Annotated[int, Field(ge=0, le=MAX_ID)] = 0  # an id, an index, or 0 for none


class UnackedAction(StrEnum):
    check = "chk"  # Check again: ask WhatsApp where the messages stand now
    resend = "re"  # Send again: asks to confirm first
    resend_ok = "reok"  # confirmed: send a second copy
    keep = "keep"  # not now


class UnackedCb(CallbackData, prefix="ua"):
    """A button about run `id`'s messages that are not on the recipient's phone yet."""

    action: UnackedAction
    id: RecordId


class PickCb(CallbackData, prefix="pk"):
    """Which contact or group a typed name that matches several means: option `option` of the
    name at `part` of the typed recipients."""

    part: Annotated[int, Field(ge=0, le=MAX_ID)]
    option: Annotated[int, Field(ge=0, le=MAX_OPTIONS)]


class ZoneAction(StrEnum):
    choose = "set"  # make `zone` the person's time zone
    move = "mv"  # move their schedules to `zone`, keeping their wall-clock times


class ZoneCb(CallbackData, prefix="tz"):
    """A time zone button (`/tz`, the first `/start`); IANA names fit in 64 bytes."""

    action: ZoneAction
    zone: Annotated[str, Field(min_length=1, max_length=40)]


class SpikeAction(StrEnum):
    resume = "go"  # send the held rest of the run and resume its schedule
    failures = "f"  # list the run's failed deliveries with their reasons


class SpikeCb(CallbackData, prefix="sp"):
    """A button under the message about run `id`, cut short by a failure spike."""

    action: SpikeAction
    id: RecordId


class SkipCb(CallbackData, prefix="sk"):
    """Skip next on a schedule's card: `at` is the occurrence the card showed (seconds since
    the epoch), so a second press, or one on an old card, skips nothing more."""

    id: RecordId
    at: Annotated[int, Field(ge=0, le=2**40)]


class AskAnswer(StrEnum):
    """A button on a question asked before a run (ask me first)."""

    send_now = "now"
    at_time = "time"
    snooze_15 = "z15"
    snooze_1h = "z1h"
    snooze_1d = "z1d"
    skip = "skip"
    edit = "edit"


class AskCb(CallbackData, prefix="ak"):
    """An answer to ask `id` (`core.domain.models.Ask`)."""

    id: RecordId
    answer: AskAnswer
