"""Deliveries as a CSV file a spreadsheet opens safely."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime

from core.domain.models import Ask, Delivery

HEADER = (
    "delivery id",
    "schedule",
    "schedule when",
    "run",
    "recipient",
    "recipient name",
    "message",
    "status",
    "attempts",
    "error",
    "whatsapp id",
    "created at",
    "queued at",
    "sending at",
    "sent at",
    "delivered at",
    "read at",
    "failed at",
    "missed at",
    "held at",
    "skipped at",
    # Ask me first: what was chosen before the run, by whom (a Telegram id; empty for the
    # no-answer policy), when.
    "choice",
    "chosen by",
    "chosen at",
)

# The "schedule when" of a delivery whose schedule was deleted since.
DELETED_SCHEDULE = "(deleted)"

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, with a leading quote when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def deliveries_csv(
    deliveries: Iterable[Delivery],
    schedule_when: Mapping[int, str] | None = None,
    choices: Mapping[int, Ask] | None = None,
) -> bytes:
    """UTF-8 CSV with a header row; times in ISO 8601 (UTC). `schedule_when` gives each
    schedule's rule in words (by schedule id); a schedule missing from it was deleted;
    `choices` the ask behind each run that asked first (by run id)."""
    whens = schedule_when or {}
    asked = choices or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for d in deliveries:
        ask = asked.get(d.run_id)
        writer.writerow(
            safe_cell(value)
            for value in (
                d.id,
                d.schedule_id,
                whens.get(d.schedule_id, DELETED_SCHEDULE),
                d.run_id,
                d.recipient,
                d.recipient_name,
                d.text,
                d.status.value,
                d.attempts,
                d.last_error,
                d.whatsapp_id,
                d.created_at,
                d.queued_at,
                d.sending_at,
                d.sent_at,
                d.delivered_at,
                d.read_at,
                d.failed_at,
                d.missed_at,
                d.held_at,
                d.skipped_at,
                ask.choice.value if ask is not None and ask.choice is not None else None,
                ask.chosen_by if ask is not None else None,
                ask.chosen_at if ask is not None else None,
            )
        )
    return buffer.getvalue().encode("utf-8")
