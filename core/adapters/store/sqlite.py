"""The embedded store: one SQLite file (WAL), safe with several processes sharing it.

Datetimes are stored as fixed-width ISO text in UTC (`2026-11-28T10:00:00.000+00:00`), so text
order is time order and indexes answer range queries. Every write that must be atomic across
processes is a single statement (run uniqueness by a partial unique index, compare-and-set of
`next_run_at`, `claim_delivery` as one `UPDATE ... RETURNING`); the few multi-statement writes
run in `BEGIN IMMEDIATE` transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from pydantic import BaseModel

from core.adapters.store import DeliveryTimes, SentRecord
from core.adapters.store._base import (
    BaseStore,
    Conflict,
    no_longer_due,
    run_exists,
    target_not_empty,
    translated,
)
from core.adapters.store._records import (
    COLLECTION_OF,
    ID_COLLECTIONS,
    RECORD_COLLECTIONS,
    Changes,
    Statuses,
    enum_value,
    export_document,
    key_field,
    name_key,
    new_delivery,
    normalized_rule,
    parse_export,
)
from core.adapters.store._records import iso as ts
from core.adapters.store._records import now as _now
from core.delivery.states import SPIKE_HOLD
from core.domain.errors import ConfigError, StoreError, StoreNotWritable
from core.domain.models import (
    Ask,
    AskChoice,
    CheckedNumber,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
    Recipient,
    Rule,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
    User,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 10_000
# Keep IN (...) lists well under SQLite's limit on bound parameters.
CHUNK = 500

M = TypeVar("M", bound=BaseModel)

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS users (
    telegram_id INTEGER PRIMARY KEY,
    timezone TEXT,
    is_owner INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    whatsapp_id TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    text TEXT,
    template_id INTEGER,
    media TEXT,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    next_run_at TEXT,
    misfire_grace_s INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ask_first INTEGER NOT NULL DEFAULT 0,
    ask_lead_s INTEGER,
    on_no_answer TEXT NOT NULL DEFAULT 'send'
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (state, next_run_at);
CREATE INDEX IF NOT EXISTS schedules_owner ON schedules (owner_id);

-- No foreign keys: runs and deliveries outlive their schedule, for the logs.
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    scheduled_for TEXT NOT NULL,
    trigger TEXT NOT NULL,
    created_at TEXT NOT NULL,
    fanned_out INTEGER NOT NULL DEFAULT 0,
    late_by_s REAL NOT NULL DEFAULT 0,
    outcome TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_occurrence
    ON runs (schedule_id, scheduled_for) WHERE trigger != 'manual';
CREATE INDEX IF NOT EXISTS runs_schedule ON runs (schedule_id);
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs (id) WHERE fanned_out = 0;

CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    schedule_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    recipient_name TEXT,
    text TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    error_code TEXT,
    whatsapp_id TEXT,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    queued_at TEXT,
    sending_at TEXT,
    sent_at TEXT,
    delivered_at TEXT,
    read_at TEXT,
    failed_at TEXT,
    missed_at TEXT,
    held_at TEXT,
    skipped_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_key ON deliveries (idempotency_key);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (status, lease_until);
CREATE INDEX IF NOT EXISTS deliveries_whatsapp
    ON deliveries (whatsapp_id) WHERE whatsapp_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_run ON deliveries (run_id);
CREATE INDEX IF NOT EXISTS deliveries_schedule ON deliveries (schedule_id);
CREATE INDEX IF NOT EXISTS deliveries_owner ON deliveries (owner_id);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at);
CREATE INDEX IF NOT EXISTS deliveries_unacked ON deliveries (status, sent_at);
-- /stats: an owner's deliveries sent, or failed, in a period (`delivery_times`).
CREATE INDEX IF NOT EXISTS deliveries_owner_sent ON deliveries (owner_id, sent_at);
CREATE INDEX IF NOT EXISTS deliveries_owner_failed ON deliveries (owner_id, failed_at);

CREATE TABLE IF NOT EXISTS number_checks (
    number TEXT PRIMARY KEY,
    on_whatsapp INTEGER NOT NULL,
    whatsapp_id TEXT,
    checked_at TEXT NOT NULL
);

-- The question asked before an occurrence of an ask-first schedule (`core.delivery.asker`).
CREATE TABLE IF NOT EXISTS asks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    occurrence TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    told INTEGER NOT NULL DEFAULT 0,
    choice TEXT,
    chosen_by INTEGER,
    chosen_at TEXT,
    snoozed_until TEXT,
    run_id INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS asks_occurrence ON asks (schedule_id, occurrence);
CREATE INDEX IF NOT EXISTS asks_open ON asks (id) WHERE told = 0 OR run_id IS NULL;
CREATE INDEX IF NOT EXISTS asks_run ON asks (run_id) WHERE run_id IS NOT NULL;
"""

# Columns each schema version added to tables an older one created: (table, column, type).
# `SCHEMA` creates them in a new database; an older one gets them by ALTER TABLE at open.
MIGRATIONS: dict[int, tuple[tuple[str, str, str], ...]] = {
    2: (
        ("deliveries", "skipped_at", "TEXT"),
        ("schedules", "ask_first", "INTEGER NOT NULL DEFAULT 0"),
        ("schedules", "ask_lead_s", "INTEGER"),
        ("schedules", "on_no_answer", "TEXT NOT NULL DEFAULT 'send'"),
    ),
}

# Tables that hold data (`sqlite_sequence` only remembers ids given, `kv` holds the values).
DATA_TABLES = (*RECORD_COLLECTIONS, "kv")

_DATETIME_COLUMNS = frozenset(
    {"created_at", "updated_at", "next_run_at", "scheduled_for", "next_attempt_at"}
    | {"lease_until", "occurrence", "asked_at", "chosen_at", "snoozed_until"}
    | {"checked_at"}
    | {f"{status.value}_at" for status in DeliveryStatus}
)
_JSON_COLUMNS = frozenset({"fields", "recipients", "rule", "media"})
_DELIVERY_COLUMNS = ", ".join(Delivery.model_fields)

# Oldest due first: a delivery whose worker's lease ran out (it was taken before anything now
# queued), then queued ones by `next_attempt_at`. Each branch walks one index.
_CLAIM = f"""
UPDATE deliveries
SET status = 'sending', lease_owner = :worker, lease_until = :until, sending_at = :now
WHERE id = coalesce(
    (SELECT id FROM deliveries WHERE status = 'sending' AND lease_until <= :now
     ORDER BY lease_until, id LIMIT 1),
    (SELECT id FROM deliveries WHERE status = 'queued' AND next_attempt_at <= :now
     ORDER BY next_attempt_at, id LIMIT 1)
)
RETURNING {_DELIVERY_COLUMNS}
"""

# The same choice for up to :limit deliveries in one statement: the `limit` oldest of each
# branch, then the `limit` first of both (ended leases before queued ones).
_CLAIM_MANY = f"""
UPDATE deliveries
SET status = 'sending', lease_owner = :worker, lease_until = :until, sending_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id, 0 AS branch, due FROM (
            SELECT id, lease_until AS due FROM deliveries
            WHERE status = 'sending' AND lease_until <= :now
            ORDER BY lease_until, id LIMIT :limit)
        UNION ALL
        SELECT id, 1 AS branch, due FROM (
            SELECT id, next_attempt_at AS due FROM deliveries
            WHERE status = 'queued' AND next_attempt_at <= :now
            ORDER BY next_attempt_at, id LIMIT :limit)
    )
    ORDER BY branch, due, id LIMIT :limit
)
RETURNING {_DELIVERY_COLUMNS}
"""


def ts_or_none(value: datetime | None) -> str | None:
    return None if value is None else ts(value)


def database_path(database_url: str) -> str:
    """`sqlite:///data/x.db` -> `data/x.db` (relative), `sqlite:////abs` -> `/abs`."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or len(database_url) == len(prefix):
        raise ConfigError(
            "DATABASE_URL for SQLite must look like sqlite:///data/wasched.db (relative) "
            "or sqlite:////var/lib/wasched/wasched.db (absolute)"
        )
    return database_url[len(prefix) :]


def _create_private_directory(path: Path) -> None:
    """The database's directory (0700) where it is missing, whatever the umask."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
    if not path.parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path.parent))


def _create_private_file(path: Path) -> None:
    """A new database file 0600, whatever the umask: it holds the messages and the numbers
    (SQLite gives its -wal and -shm files the database file's mode). An existing file is
    SQLite's to open; a read-only one is then refused by the write check."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _store_error(exc: sqlite3.Error) -> StoreError:
    """What an error of SQLite means to the store's caller (every statement goes through it)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"The database refused a duplicate: {exc}")
    # A refused write (read-only, full, locked) says so and what to do: the store's health
    # reports it; anything else is a plain failure of the one call.
    return _not_writable(exc) or StoreError(f"The SQLite database failed: {exc}")


def _translated() -> AbstractContextManager[None]:
    return translated(sqlite3.Error, _store_error)


def _column(name: str, value: Any) -> Any:
    """A Python value as its SQLite column value."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, Rule):
        return normalized_rule(value).model_dump_json()
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if name == "recipients":
        return json.dumps([Recipient.model_validate(r).model_dump(mode="json") for r in value])
    if name in _JSON_COLUMNS:
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return enum_value(value)


def _record(model: type[M], row: sqlite3.Row) -> M:
    data: dict[str, Any] = {}
    for name in row.keys():  # noqa: SIM118 - sqlite3.Row iterates values, not keys
        value = row[name]
        if value is not None:
            if name in _DATETIME_COLUMNS:
                value = datetime.fromisoformat(value)
            elif name in _JSON_COLUMNS:
                value = json.loads(value)
        data[name] = value
    data.pop("name_key", None)
    return model.model_validate(data)


def _records(model: type[M], rows: Iterable[sqlite3.Row]) -> list[M]:
    return [_record(model, row) for row in rows]


class SQLiteStore(BaseStore):
    """`Store` on one SQLite file through one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection serves every coroutine: a transaction must not let another
        # coroutine's statement slip into it, so all use of the connection takes turns.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, database_url: str) -> SQLiteStore:
        path = database_path(database_url)
        if path != ":memory:":
            try:
                _create_private_directory(Path(path))
            except OSError as exc:
                raise StoreError(f"Cannot create the directory of {path}: {exc}") from exc
            try:
                _create_private_file(Path(path))
            except OSError as exc:
                raise StoreNotWritable(
                    f"the database file cannot be created in its directory ({exc.strerror})",
                    "make its directory writable by the user that runs wasched, or set "
                    "DATABASE_URL to a writable place",
                ) from exc
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the SQLite database {path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        store = cls(db)
        try:
            await store._prepare()
        except StoreError as exc:
            await db.close()
            cause = exc.__cause__
            refused = _not_writable(cause) if isinstance(cause, sqlite3.Error) else None
            if refused is None:
                raise
            raise refused from exc
        except BaseException:
            await db.close()
            raise
        return store

    async def _prepare(self) -> None:
        with _translated():
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = NORMAL")
        async with self._transaction() as db:
            for statement in _statements(SCHEMA):
                await db.execute(statement)
            rows = await db.execute_fetchall("SELECT version FROM schema_version")
            versions = [row[0] for row in rows]
            if not versions:
                await db.execute(
                    "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
                )
            elif max(versions) > SCHEMA_VERSION:
                raise StoreError(
                    f"The database has schema version {max(versions)}, newer than this "
                    f"wasched ({SCHEMA_VERSION}): upgrade wasched."
                )
            elif max(versions) < SCHEMA_VERSION:
                await _migrate(db, max(versions))

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def ping(self) -> None:
        await self._fetchall("SELECT 1")

    # plumbing -------------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        async with self._lock:
            with _translated():
                return list(await self._db.execute_fetchall(sql, params))

    async def _fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write; return how many rows it changed."""
        async with self._lock:
            with _translated():
                cursor = await self._db.execute(sql, params)
                count = cursor.rowcount
                await cursor.close()
                return count

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """`BEGIN IMMEDIATE` takes the write lock up front, so reads inside see the latest."""
        async with self._lock:
            with _translated():
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    await self._db.execute("ROLLBACK")
                    raise
                await self._db.execute("COMMIT")

    # records by id and by name (the queries `BaseStore` builds on) ---------------------

    async def _get(self, model: type[M], record_id: int) -> M | None:
        row = await self._fetchone(
            f"SELECT * FROM {COLLECTION_OF[model]} WHERE id = ?", (record_id,)
        )
        return None if row is None else _record(model, row)

    async def _find_named(self, model: type[M], key: str) -> M | None:
        row = await self._fetchone(
            f"SELECT * FROM {COLLECTION_OF[model]} WHERE name_key = ?", (key,)
        )
        return None if row is None else _record(model, row)

    async def _list_named(self, model: type[M]) -> list[M]:
        rows = await self._fetchall(f"SELECT * FROM {COLLECTION_OF[model]} ORDER BY name_key, id")
        return _records(model, rows)

    async def _insert(
        self, model: type[M], values: dict[str, Any], *, name_key: str | None = None
    ) -> M:
        columns = {name: _column(name, value) for name, value in values.items()}
        if name_key is not None:
            columns["name_key"] = name_key
        row = await self._fetchone(
            f"INSERT INTO {COLLECTION_OF[model]} ({', '.join(columns)})"
            f" VALUES ({', '.join('?' * len(columns))}) RETURNING *",
            tuple(columns.values()),
        )
        return _record(model, row)

    async def _update(self, model: type[M], record_id: int, changes: dict[str, Any]) -> M | None:
        columns = {name: _column(name, value) for name, value in changes.items()}
        sets = ", ".join(f"{column} = ?" for column in columns) or "id = id"
        row = await self._fetchone(
            f"UPDATE {COLLECTION_OF[model]} SET {sets} WHERE id = ? RETURNING *",
            (*columns.values(), record_id),
        )
        return None if row is None else _record(model, row)

    async def _delete(self, model: type[BaseModel], record_id: int) -> bool:
        deleted = await self._execute(
            f"DELETE FROM {COLLECTION_OF[model]} WHERE id = ?", (record_id,)
        )
        return deleted > 0

    # users ----------------------------------------------------------------------------

    async def get_user(self, telegram_id: int) -> User | None:
        row = await self._fetchone("SELECT * FROM users WHERE telegram_id = ?", (telegram_id,))
        return None if row is None else _record(User, row)

    async def _upsert_user(
        self, telegram_id: int, *, insert: dict[str, Any], changes: dict[str, Any]
    ) -> User:
        on_conflict = (
            "DO UPDATE SET " + ", ".join(f"{name} = excluded.{name}" for name in changes)
            if changes
            else "DO NOTHING"
        )
        await self._execute(
            "INSERT INTO users (telegram_id, timezone, is_owner, created_at) "
            f"VALUES (?, ?, ?, ?) ON CONFLICT (telegram_id) {on_conflict}",
            (
                telegram_id,
                insert["timezone"],
                int(insert["is_owner"]),
                ts(insert["created_at"]),
            ),
        )
        user = await self.get_user(telegram_id)
        if user is None:  # deleted in between; there is no delete, so this cannot happen
            raise StoreError(f"User {telegram_id} vanished while being saved.")
        return user

    async def list_users(self) -> list[User]:
        return _records(User, await self._fetchall("SELECT * FROM users ORDER BY telegram_id"))

    # key/value ------------------------------------------------------------------------

    async def get_value(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_value(self, key: str, value: str | None) -> None:
        if value is None:
            await self._execute("DELETE FROM kv WHERE key = ?", (key,))
        else:
            await self._execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # schedules ------------------------------------------------------------------------

    async def list_schedules(
        self,
        *,
        owner_id: int | None = None,
        states: Sequence[ScheduleState] | None = None,
    ) -> list[Schedule]:
        where: list[str] = []
        params: list[Any] = []
        if owner_id is not None:
            where.append("owner_id = ?")
            params.append(owner_id)
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(ScheduleState(state).value for state in states)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetchall(f"SELECT * FROM schedules {clause} ORDER BY id", params)
        return _records(Schedule, rows)

    async def advance_schedule(
        self,
        schedule_id: int,
        *,
        expected_next_run_at: datetime | None,
        next_run_at: datetime | None,
        state: ScheduleState | None = None,
    ) -> bool:
        changed = await self._execute(
            "UPDATE schedules SET next_run_at = ?, state = coalesce(?, state), updated_at = ?"
            " WHERE id = ? AND next_run_at IS ?",
            (
                ts_or_none(next_run_at),
                None if state is None else ScheduleState(state).value,
                ts(_now()),
                schedule_id,
                ts_or_none(expected_next_run_at),
            ),
        )
        return changed > 0

    async def due_schedules(self, now: datetime, *, limit: int | None = None) -> list[Schedule]:
        rows = await self._fetchall(
            "SELECT * FROM schedules WHERE state = 'active' AND next_run_at <= ?"
            " ORDER BY next_run_at, id LIMIT ?",
            (ts(now), -1 if limit is None else max(limit, 0)),
        )
        return _records(Schedule, rows)

    async def next_due_at(self) -> datetime | None:
        row = await self._fetchone(
            "SELECT next_run_at FROM schedules WHERE state = 'active' AND next_run_at IS NOT NULL"
            " ORDER BY next_run_at LIMIT 1"
        )
        return None if row is None else datetime.fromisoformat(row[0])

    async def _count_by(
        self, model: type[BaseModel], field: str, values: Iterable[StrEnum]
    ) -> dict[str, int]:
        table = COLLECTION_OF[model]
        rows = await self._fetchall(f"SELECT {field}, count(*) FROM {table} GROUP BY {field}")
        return {row[0]: row[1] for row in rows}

    # runs -----------------------------------------------------------------------------

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
        values = (
            schedule_id,
            owner_id,
            ts(scheduled_for),
            RunTrigger(trigger).value,
            ts(_now()),
            late_by_s,
            outcome,
        )
        columns = "schedule_id, owner_id, scheduled_for, trigger, created_at, late_by_s, outcome"
        try:
            if only_if_due:
                # One statement: the occurrence is claimed only while it is still the due one.
                row = await self._fetchone(
                    f"INSERT INTO runs ({columns}) SELECT ?, ?, ?, ?, ?, ?, ?"
                    " WHERE EXISTS (SELECT 1 FROM schedules WHERE id = ? AND state = 'active'"
                    " AND next_run_at = ?) RETURNING *",
                    (*values, schedule_id, ts(scheduled_for)),
                )
            else:
                row = await self._fetchone(
                    f"INSERT INTO runs ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    values,
                )
        except Conflict as exc:
            raise run_exists(schedule_id, scheduled_for) from exc
        if row is None:
            raise no_longer_due(schedule_id, scheduled_for)
        return _record(Run, row)

    async def find_run(self, schedule_id: int, scheduled_for: datetime) -> Run | None:
        row = await self._fetchone(
            "SELECT * FROM runs WHERE schedule_id = ? AND scheduled_for = ?"
            " AND trigger != 'manual'",
            (schedule_id, ts(scheduled_for)),
        )
        return None if row is None else _record(Run, row)

    async def unfinished_runs(self) -> list[Run]:
        rows = await self._fetchall("SELECT * FROM runs WHERE fanned_out = 0 ORDER BY id")
        return _records(Run, rows)

    async def list_runs(self, *, schedule_id: int | None = None, limit: int = 50) -> list[Run]:
        if schedule_id is None:
            rows = await self._fetchall(
                "SELECT * FROM runs ORDER BY id DESC LIMIT ?", (max(limit, 0),)
            )
        else:
            rows = await self._fetchall(
                "SELECT * FROM runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?",
                (schedule_id, max(limit, 0)),
            )
        return _records(Run, rows)

    # deliveries -----------------------------------------------------------------------

    async def _insert_deliveries(
        self, run: Run, deliveries: Sequence[NewDelivery], *, at: datetime
    ) -> dict[str, Delivery]:
        at_text = ts(at)
        rows = [new_delivery(run, new, at_text) for new in deliveries]
        columns = list(rows[0])
        keys = [new.idempotency_key for new in deliveries]
        found: dict[str, Delivery] = {}
        async with self._transaction() as db:
            await db.executemany(
                f"INSERT INTO deliveries ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                [tuple(row.values()) for row in rows],
            )
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                selected = await db.execute_fetchall(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
                    f" WHERE idempotency_key IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for row in selected:
                    delivery = _record(Delivery, row)
                    found[delivery.idempotency_key] = delivery
        return found

    async def find_delivery_by_whatsapp_id(self, whatsapp_id: str) -> Delivery | None:
        row = await self._fetchone(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE whatsapp_id = ?"
            " ORDER BY id DESC LIMIT 1",
            (whatsapp_id,),
        )
        return None if row is None else _record(Delivery, row)

    async def claim_delivery(
        self, *, now: datetime, lease_s: float, worker: str
    ) -> Delivery | None:
        row = await self._fetchone(
            _CLAIM,
            {"worker": worker, "now": ts(now), "until": ts(now + timedelta(seconds=lease_s))},
        )
        return None if row is None else _record(Delivery, row)

    async def claim_deliveries(
        self, *, now: datetime, lease_s: float, worker: str, limit: int
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        rows = await self._fetchall(
            _CLAIM_MANY,
            {
                "worker": worker,
                "now": ts(now),
                "until": ts(now + timedelta(seconds=lease_s)),
                "limit": limit,
            },
        )
        claimed = _records(Delivery, rows)
        claimed.sort(key=lambda d: (d.next_attempt_at, d.id))
        return claimed

    async def record_sent(
        self, sent: Sequence[SentRecord], *, worker: str, now: datetime
    ) -> list[int]:
        moved: list[int] = []
        for start in range(0, len(sent), CHUNK):
            chunk = sent[start : start + CHUNK]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            params = [value for record in chunk for value in record]
            # One statement: each row moves or stays under the same conditions as one
            # `update_delivery(expected_status=sending, worker=worker)` would apply.
            rows = await self._fetchall(
                f"WITH sent (id, whatsapp_id, attempts) AS (VALUES {values})"
                " UPDATE deliveries SET status = 'sent', whatsapp_id = sent.whatsapp_id,"
                " attempts = sent.attempts, sent_at = ?, last_error = NULL,"
                " error_code = NULL, lease_owner = NULL, lease_until = NULL"
                " FROM sent WHERE deliveries.id = sent.id"
                " AND deliveries.status = 'sending' AND deliveries.lease_owner = ?"
                " RETURNING deliveries.id",
                (*params, ts(now), worker),
            )
            moved.extend(row[0] for row in rows)
        return moved

    async def _update_delivery(
        self, delivery_id: int, changes: Changes, statuses: Statuses | None, worker: str | None
    ) -> Delivery | None:
        changes = {name: _column(name, value) for name, value in changes.items()}
        where = ["id = ?"]
        params: list[Any] = [delivery_id]
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(status.value for status in statuses)
        if worker is not None:
            where.append("lease_owner = ?")
            params.append(worker)
        condition = " AND ".join(where)
        if changes:
            sets = ", ".join(f"{column} = ?" for column in changes)
            row = await self._fetchone(
                f"UPDATE deliveries SET {sets} WHERE {condition} RETURNING {_DELIVERY_COLUMNS}",
                (*changes.values(), *params),
            )
        else:
            row = await self._fetchone(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE {condition}", params
            )
        return None if row is None else _record(Delivery, row)

    async def release_held(self, *, now: datetime) -> int:
        at = ts(now)
        return await self._execute(
            "UPDATE deliveries SET status = 'queued', next_attempt_at = ?, queued_at = ?"
            " WHERE status = 'held' AND coalesce(error_code, '') != ?",
            (at, at, SPIKE_HOLD),
        )

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        where: list[str] = []
        params: list[Any] = []
        for column in ("run_id", "schedule_id", "owner_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.statuses is not None:
            where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
            params.extend(DeliveryStatus(status).value for status in query.statuses)
        if query.since is not None:
            where.append("created_at >= ?")
            params.append(ts(query.since))
        if query.until is not None:
            where.append("created_at < ?")
            params.append(ts(query.until))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        direction = "DESC" if query.order == "newest" else "ASC"
        rows = await self._fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {clause} ORDER BY id {direction} LIMIT ?",
            (*params, -1 if query.limit is None else max(query.limit, 0)),
        )
        return _records(Delivery, rows)

    async def count_unacked(self, *, sent_before: datetime) -> int:
        row = await self._fetchone(
            "SELECT count(*) FROM deliveries WHERE status = 'sent' AND sent_at <= ?",
            (ts(sent_before),),
        )
        return int(row[0]) if row is not None else 0

    async def next_delivery_due_at(self) -> datetime | None:
        # Aggregate min() skips NULLs (scalar min(a, b) would not); each branch walks an index.
        row = await self._fetchone(
            "SELECT min(due) FROM ("
            " SELECT * FROM (SELECT next_attempt_at AS due FROM deliveries"
            "  WHERE status = 'queued' ORDER BY next_attempt_at LIMIT 1)"
            " UNION ALL"
            " SELECT * FROM (SELECT lease_until AS due FROM deliveries"
            "  WHERE status = 'sending' AND lease_until IS NOT NULL ORDER BY lease_until LIMIT 1))"
        )
        if row is None or row[0] is None:
            return None
        return datetime.fromisoformat(row[0])

    # migration ------------------------------------------------------------------------

    async def is_empty(self) -> bool:
        sql = " UNION ALL ".join(f"SELECT 1 FROM (SELECT 1 FROM {t} LIMIT 1)" for t in DATA_TABLES)
        return not await self._fetchall(sql)

    async def export_all(self) -> dict[str, list[dict[str, Any]]]:
        records: dict[str, list[BaseModel]] = {}
        async with self._transaction() as db:  # one consistent snapshot
            for name, model in RECORD_COLLECTIONS.items():
                order = key_field(name)
                rows = await db.execute_fetchall(f"SELECT * FROM {name} ORDER BY {order}")
                records[name] = _records(model, rows)
            kv = await db.execute_fetchall("SELECT key, value FROM kv")
            sequences = await db.execute_fetchall("SELECT name, seq FROM sqlite_sequence")
        counters = {row[0]: int(row[1]) for row in sequences if row[0] in ID_COLLECTIONS}
        return export_document(records, {row[0]: row[1] for row in kv}, counters)

    async def import_all(self, data: dict[str, list[dict[str, Any]]]) -> None:
        parsed = parse_export(data)
        async with self._transaction() as db:
            for table in DATA_TABLES:
                if await db.execute_fetchall(f"SELECT 1 FROM {table} LIMIT 1"):
                    raise target_not_empty()
            for name, records in parsed.records.items():
                if not records:
                    continue
                columns = list(type(records[0]).model_fields)
                extra = ["name_key"] if name in ("contacts", "templates") else []
                rows = [
                    (
                        *(_column(column, getattr(record, column)) for column in columns),
                        *([name_key(getattr(record, "name"))] if extra else []),  # noqa: B009
                    )
                    for record in records
                ]
                all_columns = [*columns, *extra]
                await db.executemany(
                    f"INSERT INTO {name} ({', '.join(all_columns)})"
                    f" VALUES ({', '.join('?' * len(all_columns))})",
                    rows,
                )
            await db.executemany(
                "INSERT INTO kv (key, value) VALUES (?, ?)", list(parsed.values.items())
            )
            for name, last_id in parsed.counters.items():
                # AUTOINCREMENT keeps its counter in sqlite_sequence; inserts above moved it
                # to the highest id, this moves it past deleted ones too.
                await db.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
                await db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, last_id)
                )

    async def sent_deliveries(
        self,
        *,
        statuses: Sequence[DeliveryStatus],
        since: datetime,
        after_id: int | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        if not statuses or limit <= 0:
            return []
        marks = ", ".join("?" * len(statuses))
        after = "sent_at >= ?" if after_id is None else "(sent_at > ? OR (sent_at = ? AND id > ?))"
        bounds: tuple[object, ...] = (
            (ts(since),) if after_id is None else (ts(since), ts(since), after_id)
        )
        if until is not None:
            after += " AND sent_at <= ?"
            bounds = (*bounds, ts(until))
        rows = await self._fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
            f" WHERE status IN ({marks}) AND {after} ORDER BY sent_at, id LIMIT ?",
            (*(DeliveryStatus(s).value for s in statuses), *bounds, limit),
        )
        return _records(Delivery, rows)

    async def check_writes(self) -> None:
        await _check_writes(self)

    async def count_occurrences_sent(self, schedule_id: int) -> int:
        row = await self._fetchone(
            "SELECT COUNT(*) FROM runs WHERE schedule_id = ? AND trigger != ? AND outcome IS NULL",
            (schedule_id, RunTrigger.manual.value),
        )
        return int(row[0]) if row else 0

    async def claim_value(self, key: str, value: str) -> bool:
        inserted = await self._execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value)
        )
        return inserted == 1

    # stats ----------------------------------------------------------------------------

    async def delivery_times(
        self, *, since: datetime, until: datetime, owner_id: int | None = None
    ) -> list[DeliveryTimes]:
        # The owner in each branch of the OR, so each walks its index (owner_id, sent_at) or
        # (owner_id, failed_at): SQLite's MULTI-INDEX OR.
        owner = "" if owner_id is None else "owner_id = ? AND "
        branch = (ts(since), ts(until)) if owner_id is None else (owner_id, ts(since), ts(until))
        rows = await self._fetchall(
            "SELECT schedule_id, status, sent_at, delivered_at, read_at, failed_at"
            f" FROM deliveries WHERE ({owner}sent_at >= ? AND sent_at < ?)"
            f" OR ({owner}failed_at >= ? AND failed_at < ?) ORDER BY id",
            branch * 2,
        )
        return [
            DeliveryTimes(
                row[0],
                DeliveryStatus(row[1]),
                *(None if at is None else datetime.fromisoformat(at) for at in row[2:]),
            )
            for row in rows
        ]

    async def number_checks(self, numbers: Sequence[str]) -> dict[str, CheckedNumber]:
        found: dict[str, CheckedNumber] = {}
        wanted = list(dict.fromkeys(numbers))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows = await self._fetchall(
                f"SELECT * FROM number_checks WHERE number IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update((check.number, check) for check in _records(CheckedNumber, rows))
        return found

    async def save_number_checks(self, checks: Sequence[CheckedNumber]) -> None:
        if not checks:
            return
        async with self._transaction() as db:
            await db.executemany(
                "INSERT INTO number_checks (number, on_whatsapp, whatsapp_id, checked_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET"
                " on_whatsapp = excluded.on_whatsapp, whatsapp_id = excluded.whatsapp_id,"
                " checked_at = excluded.checked_at",
                [(c.number, int(c.on_whatsapp), c.whatsapp_id, ts(c.checked_at)) for c in checks],
            )

    # ask first ------------------------------------------------------------------------

    async def find_ask(self, schedule_id: int, occurrence: datetime) -> Ask | None:
        row = await self._fetchone(
            "SELECT * FROM asks WHERE schedule_id = ? AND occurrence = ?",
            (schedule_id, ts(occurrence)),
        )
        return None if row is None else _record(Ask, row)

    async def open_asks(self) -> list[Ask]:
        rows = await self._fetchall(
            "SELECT * FROM asks WHERE told = 0 OR run_id IS NULL ORDER BY id"
        )
        return [
            ask for ask in _records(Ask, rows) if not ask.told or ask.choice is AskChoice.snooze
        ]

    async def asks_of_runs(self, run_ids: Sequence[int]) -> dict[int, Ask]:
        found: dict[int, Ask] = {}
        ids = sorted(set(run_ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = await self._fetchall(
                f"SELECT * FROM asks WHERE run_id IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update((ask.run_id or 0, ask) for ask in _records(Ask, rows))
        return found

    async def _choose(self, ask_id: int, changes: dict[str, Any]) -> Ask | None:
        columns = {name: _column(name, value) for name, value in changes.items()}
        sets = ", ".join(f"{column} = ?" for column in columns)
        row = await self._fetchone(
            f"UPDATE asks SET {sets} WHERE id = ? AND choice IS NULL RETURNING *",
            (*columns.values(), ask_id),
        )
        return None if row is None else _record(Ask, row)


async def _migrate(db: aiosqlite.Connection, version: int) -> None:
    """Bring a database at schema `version` to `SCHEMA_VERSION` (inside the open's
    transaction): add the columns later versions added, keeping every row."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for table, column, kind in MIGRATIONS.get(target, ()):
            rows = await db.execute_fetchall(f"PRAGMA table_info({table})")
            if column not in {row[1] for row in rows}:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    await db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    logger.info("database schema moved from version %s to %s", version, SCHEMA_VERSION)


def _statements(script: str) -> list[str]:
    """Split the schema into statements (none of them holds a `;` inside)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


# Why SQLite refuses a write (its extended error names start with these), and what to do.
_WRITE_FAILURES = {
    "SQLITE_READONLY": (
        "is read-only",
        "make the file and its directory writable by the user that runs wasched, "
        "or set DATABASE_URL to a writable place",
    ),
    "SQLITE_FULL": ("cannot grow: the disk is full", "free space on the disk that holds it"),
    "SQLITE_CANTOPEN": (
        "cannot be opened for writing",
        "make its directory writable by the user that runs wasched",
    ),
    "SQLITE_BUSY": (
        "is locked by another process",
        "stop the other process that holds it, or wait until it lets go",
    ),
    # WAL mode needs a -shm file beside the database: a full disk cannot make it.
    "SQLITE_IOERR_SHMSIZE": (
        "cannot make its shared-memory file: the disk is full",
        "free space on the disk that holds it",
    ),
    "SQLITE_IOERR": (
        "cannot be written (disk I/O error)",
        "check the disk that holds it (is it full or failing?)",
    ),
}


def _not_writable(exc: sqlite3.Error) -> StoreNotWritable | None:
    """What SQLite's refusal of a write means and what to do; None for other errors."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    for prefix, (what, fix) in _WRITE_FAILURES.items():
        if name.startswith(prefix):
            return StoreNotWritable(f"the database {what} ({exc})", fix)
    return None


async def _check_writes(store: SQLiteStore) -> None:
    """Write one row: SQLite opens a read-only file without a word and answers reads from it,
    so only a write tells. Raises `StoreNotWritable` with why and what to do."""
    with translated(sqlite3.Error, _unwritable):
        async with store._lock:
            db = store._db
            await db.execute(
                "CREATE TABLE IF NOT EXISTS write_check (id INTEGER PRIMARY KEY, at TEXT)"
            )
            await db.execute(
                "INSERT OR REPLACE INTO write_check (id, at) VALUES (1, ?)", (ts(_now()),)
            )


def _unwritable(exc: sqlite3.Error) -> StoreError:
    """What any error of the test write means: why the database does not take writes."""
    return _not_writable(exc) or StoreNotWritable(
        f"the database cannot be written ({exc})", "check the file, its directory and the disk"
    )
