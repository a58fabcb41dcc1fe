"""What both stores share about records: how datetimes, names and delivery updates are
normalized, the fields of a new delivery, id counters, and the shape of an export, so SQLite and
MongoDB give the same answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from core.domain.models import (
    Ask,
    CheckedNumber,
    Contact,
    Delivery,
    DeliveryStatus,
    NewDelivery,
    Rule,
    Run,
    Schedule,
    ScheduleState,
    Template,
    User,
)

# Collections with short integer ids, each with its own counter.
ID_COLLECTIONS = ("contacts", "templates", "schedules", "runs", "deliveries", "asks")

# Export layout: every record collection, plus `values` ({key, value}) and `counters`
# ({name, last_id}: the highest id ever given, so ids of deleted records are not reused).
RECORD_COLLECTIONS: dict[str, type[BaseModel]] = {
    "users": User,
    "contacts": Contact,
    "templates": Template,
    "schedules": Schedule,
    "runs": Run,
    "deliveries": Delivery,
    "number_checks": CheckedNumber,
    "asks": Ask,
}

# The field that is each record's key, where it is not `id` (`_id` in MongoDB).
KEY_FIELDS: dict[str, str] = {"users": "telegram_id", "number_checks": "number"}


def key_field(collection: str) -> str:
    return KEY_FIELDS.get(collection, "id")


# Each collection's record, and back (`BaseStore` names the table of a model with it).
COLLECTION_OF: dict[type[BaseModel], str] = {
    model: name for name, model in RECORD_COLLECTIONS.items()
}

DELIVERY_FIELDS = frozenset(Delivery.model_fields) - {"id"}
# A partial update of a record: field name -> new value.
Changes = dict[str, Any]
# The statuses a conditional update of a delivery expects it in (`expected_statuses`).
Statuses = tuple[DeliveryStatus, ...]
_STATUS_STAMPS = tuple((status, f"{status.value}_at") for status in DeliveryStatus)


def utc(value: datetime) -> datetime:
    """Aware UTC, truncated to the millisecond (all MongoDB keeps), so both stores agree."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware datetimes")
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def now() -> datetime:
    """The current instant as the stores keep it (aware UTC, to the millisecond)."""
    return utc(datetime.now(UTC))


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def iso(value: datetime) -> str:
    """Fixed-width UTC text (`2026-11-28T10:00:00.000+00:00`): text order is time order."""
    return utc(value).isoformat(timespec="milliseconds")


def name_key(name: str) -> str:
    """The form names are unique in: case-insensitive, the way a person types them."""
    return name.casefold()


def normalized_rule(rule: Rule) -> Rule:
    return rule.model_copy(
        update={
            "at": utc_or_none(rule.at),
            "start": utc_or_none(rule.start),
            "ends_at": utc_or_none(rule.ends_at),
        }
    )


def delivery_changes(fields: dict[str, Any]) -> Changes:
    """Check `update_delivery` field names and normalize values (UTC datetimes, statuses)."""
    unknown = set(fields) - DELIVERY_FIELDS
    if unknown:
        raise TypeError(f"update_delivery() got unknown delivery fields: {sorted(unknown)}")
    changes: Changes = {}
    for name, value in fields.items():
        if isinstance(value, datetime):
            value = utc(value)
        elif name == "status":
            value = DeliveryStatus(value)
        changes[name] = value
    return changes


def new_delivery(run: Run, new: NewDelivery, at: Any) -> dict[str, Any]:
    """Every field of a delivery `add_deliveries` stores but its id: `new`'s own, its run's,
    status as text, due at `at` and stamped `at` for its status (`at` in the store's form)."""
    status = DeliveryStatus(new.status)
    return {
        "run_id": run.id,
        "schedule_id": run.schedule_id,
        "owner_id": run.owner_id,
        **dict(new),
        "status": status.value,
        "next_attempt_at": at,
        "created_at": at,
        **{stamp: at if each is status else None for each, stamp in _STATUS_STAMPS},
    }


def expected_statuses(
    expected: DeliveryStatus | Sequence[DeliveryStatus] | None,
) -> Statuses | None:
    if expected is None:
        return None
    if isinstance(expected, str):
        return (DeliveryStatus(expected),)
    return tuple(DeliveryStatus(status) for status in expected)


def status_counts(counts: dict[str, int]) -> dict[DeliveryStatus, int]:
    return {status: counts.get(status.value, 0) for status in DeliveryStatus}


def state_counts(counts: dict[str, int]) -> dict[ScheduleState, int]:
    return {state: counts.get(state.value, 0) for state in ScheduleState}


def enum_value(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def parse_export(data: dict[str, list[dict[str, Any]]]) -> ParsedExport:
    """Validate an `export_all` document before anything is written."""
    unknown = set(data) - {*RECORD_COLLECTIONS, "values", "counters"}
    if unknown:
        raise ValueError(f"unknown collections in export: {sorted(unknown)}")
    records = {
        name: [model.model_validate(row) for row in data.get(name, [])]
        for name, model in RECORD_COLLECTIONS.items()
    }
    values = {str(row["key"]): str(row["value"]) for row in data.get("values", [])}
    stored = {
        row["name"]: int(row["last_id"])
        for row in data.get("counters", [])
        if row["name"] in ID_COLLECTIONS
    }
    return ParsedExport(records=records, values=values, counters=last_ids(stored, records))


def last_ids(
    counters: Mapping[str, int], records: Mapping[str, Sequence[BaseModel]]
) -> dict[str, int]:
    """The id counter of each collection with ids: the highest id ever given, which is the
    stored counter (it remembers deleted records) unless a record holds a higher id."""
    return {
        name: max([counters.get(name, 0), *(getattr(r, "id", 0) for r in records.get(name, ()))])
        for name in ID_COLLECTIONS
    }


class ParsedExport:
    def __init__(
        self,
        *,
        records: dict[str, list[BaseModel]],
        values: dict[str, str],
        counters: dict[str, int],
    ) -> None:
        self.records = records
        self.values = values
        self.counters = counters


def export_document(
    records: Mapping[str, Sequence[BaseModel]],
    values: Mapping[str, str],
    counters: Mapping[str, int],
) -> dict[str, list[dict[str, Any]]]:
    """The `export_all` document of `records`, `values` and the stored id `counters`."""
    counters = last_ids(counters, records)
    document: dict[str, list[dict[str, Any]]] = {
        name: [record.model_dump(mode="json") for record in records[name]]
        for name in RECORD_COLLECTIONS
    }
    document["values"] = [{"key": key, "value": values[key]} for key in sorted(values)]
    document["counters"] = [{"name": name, "last_id": counters[name]} for name in ID_COLLECTIONS]
    return document
