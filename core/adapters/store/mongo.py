"""The MongoDB store, through PyMongo's `AsyncMongoClient` (Motor is deprecated).

Several processes may share one database: a run is unique through its `run_key` (the
occurrence for scheduled runs, the run's own id for manual ones), `next_run_at` moves by a
conditional update, and deliveries are claimed by conditional updates under a lease. Ids are
short integers from a `counters` collection. Documents hold the records' fields with `_id` for
the id, and a delivery also its `mark`: the `claim_deliveries` or `record_sent` call that last
changed it, so such a bulk write can read back which deliveries it changed. MongoDB keeps
milliseconds and may hand back naive datetimes, so every datetime is made aware UTC where it
leaves the store.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from core.adapters.store import UNSET, SentRecord
from core.adapters.store._records import (
    ID_COLLECTIONS,
    RECORD_COLLECTIONS,
    delivery_changes,
    expected_statuses,
    export_document,
    name_key,
    normalized_rule,
    parse_export,
    state_counts,
    status_counts,
    utc,
)
from core.adapters.store._records import (
    now as _now,
)
from core.domain.errors import (
    AlreadyExists,
    ConfigError,
    DuplicateRun,
    NotFound,
    ScheduleMoved,
    StoreError,
    StoreNotWritable,
    TargetNotEmpty,
    WaschedError,
)
from core.domain.models import (
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Media,
    NewDelivery,
    Recipient,
    Rule,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
    Template,
    User,
)

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "wasched"
DUPLICATE_KEY = 11000
# Inserts tried with fresh ids when an id was taken already (see `insert_run`).
ID_TRIES = 10
# Passes of `claim_deliveries` when other claimers took some of its candidates.
CLAIM_PASSES = 3
# Collections that hold data (`counters` only remembers ids given).
DATA_COLLECTIONS = (*RECORD_COLLECTIONS, "values")

Doc = dict[str, Any]
M = TypeVar("M", bound=BaseModel)
P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except WaschedError:
        raise
    except ConnectionFailure as exc:
        # Server gone, unreachable, or no longer the primary: no write goes through.
        raise StoreNotWritable(
            f"the MongoDB server does not answer ({exc})",
            "check that the server in DATABASE_URL runs and is the primary",
        ) from exc
    except PyMongoError as exc:
        raise StoreError(f"The MongoDB database failed: {exc}") from exc


def _translating(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any PyMongo error a method lets through into `StoreError`."""

    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        with _translated():
            return await method(*args, **kwargs)

    return translated


def _bson(value: Any) -> Any:
    """A Python value as MongoDB stores it: UTC datetimes, plain strings for enums, lists."""
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, BaseModel):
        return _bson(value.model_dump())
    if isinstance(value, dict):
        return {key: _bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bson(item) for item in value]
    return value


def _aware(value: Any) -> Any:
    """Datetimes from MongoDB as aware UTC, however the client was configured."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {key: _aware(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_aware(item) for item in value]
    return value


def _document(record: BaseModel, id_field: str = "id") -> Doc:
    data = record.model_dump()
    if isinstance(record, Schedule):
        data["rule"] = normalized_rule(record.rule).model_dump()
    doc: Doc = {"_id": data.pop(id_field)}
    doc.update(_bson(data))
    return doc


def _record(model: type[M], doc: Doc, id_field: str = "id") -> M:
    data = {key: _aware(value) for key, value in doc.items() if key in model.model_fields}
    data[id_field] = doc["_id"]
    return model.model_validate(data)


def _run_key(schedule_id: int, scheduled_for: datetime) -> str:
    return f"{schedule_id}@{utc(scheduled_for).isoformat(timespec='milliseconds')}"


def _manual_key(run_id: int) -> str:
    return f"manual#{run_id}"


class MongoStore:
    """`Store` on one MongoDB database."""

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        client: AsyncMongoClient[Doc] | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._users: AsyncCollection[Doc] = db["users"]
        self._values: AsyncCollection[Doc] = db["values"]
        self._contacts: AsyncCollection[Doc] = db["contacts"]
        self._templates: AsyncCollection[Doc] = db["templates"]
        self._schedules: AsyncCollection[Doc] = db["schedules"]
        self._runs: AsyncCollection[Doc] = db["runs"]
        self._deliveries: AsyncCollection[Doc] = db["deliveries"]
        self._counters: AsyncCollection[Doc] = db["counters"]

    @classmethod
    async def open(cls, database_url: str) -> MongoStore:
        """Connect to `mongodb://...`; the database is the URL's path, `wasched` if none."""
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(database_url, tz_aware=True)
        except (PyMongoError, ValueError) as exc:
            raise ConfigError(
                f"DATABASE_URL is not a usable MongoDB URL ({exc}): write it like "
                "mongodb://user:password@host:27017/wasched"
            ) from exc
        store = cls(client.get_default_database(DEFAULT_DATABASE), client)
        try:
            await store._create_indexes()
        except BaseException:
            await client.close()
            raise
        return store

    @classmethod
    async def from_database(cls, db: AsyncDatabase[Doc]) -> MongoStore:
        """A store on a database whose client the caller owns (and closes), as tests do."""
        store = cls(db)
        await store._create_indexes()
        return store

    @_translating
    async def _create_indexes(self) -> None:
        await self._contacts.create_index("name_key", unique=True)
        await self._templates.create_index("name_key", unique=True)
        await self._schedules.create_index(
            [("state", ASCENDING), ("next_run_at", ASCENDING), ("_id", ASCENDING)]
        )
        await self._schedules.create_index("owner_id")
        await self._runs.create_index("run_key", unique=True)
        await self._runs.create_index([("schedule_id", ASCENDING), ("_id", DESCENDING)])
        await self._runs.create_index("fanned_out")
        await self._deliveries.create_index("idempotency_key", unique=True)
        await self._deliveries.create_index(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING), ("_id", ASCENDING)]
        )
        await self._deliveries.create_index(
            [("status", ASCENDING), ("lease_until", ASCENDING), ("_id", ASCENDING)]
        )
        await self._deliveries.create_index("whatsapp_id")
        for field in ("run_id", "schedule_id", "owner_id"):
            await self._deliveries.create_index([(field, ASCENDING), ("_id", ASCENDING)])
        await self._deliveries.create_index("created_at")
        await self._deliveries.create_index(
            [("status", ASCENDING), ("sent_at", ASCENDING), ("_id", ASCENDING)]
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @_translating
    async def ping(self) -> None:
        await self._db.command("ping")

    async def _next_ids(self, collection: str, count: int = 1) -> list[int]:
        take: Callable[[], Coroutine[Any, Any, Doc | None]] = functools.partial(
            self._counters.find_one_and_update,
            {"_id": collection},
            {"$inc": {"seq": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        try:
            counter = await take()
        except DuplicateKeyError:
            # Two upserts of a new counter raced and this one lost: now it is an update.
            counter = await take()
        if counter is None:  # upsert=True always returns the document
            raise StoreError(f"The id counter of {collection} could not be moved.")
        last = int(counter["seq"])
        return list(range(last - count + 1, last + 1))

    async def _catch_up_counter(self, collection: str) -> None:
        """Move the id counter of `collection` past its highest id in use, after an insert
        found its id taken (a counter behind the data)."""
        highest = await self._db[collection].find_one({}, {"_id": 1}, sort=[("_id", DESCENDING)])
        if highest is not None:
            await self._counters.update_one(
                {"_id": collection}, {"$max": {"seq": int(highest["_id"])}}, upsert=True
            )

    # users ----------------------------------------------------------------------------

    @_translating
    async def get_user(self, telegram_id: int) -> User | None:
        doc = await self._users.find_one({"_id": telegram_id})
        return None if doc is None else _record(User, doc, "telegram_id")

    @_translating
    async def upsert_user(
        self, telegram_id: int, *, timezone: str | None = UNSET, is_owner: bool = UNSET
    ) -> User:
        changes: Doc = {}
        if timezone is not UNSET:
            changes["timezone"] = timezone
        if is_owner is not UNSET:
            changes["is_owner"] = bool(is_owner)
        defaults = {"timezone": None, "is_owner": False, "created_at": _now()}
        update: Doc = {"$setOnInsert": {k: v for k, v in defaults.items() if k not in changes}}
        if changes:
            update["$set"] = changes
        try:
            doc = await self._users.find_one_and_update(
                {"_id": telegram_id}, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            # Two upserts of a new user raced and this one lost: now it is an update.
            doc = await self._users.find_one_and_update(
                {"_id": telegram_id}, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        if doc is None:  # upsert=True always returns the document
            raise StoreError(f"User {telegram_id} could not be saved.")
        return _record(User, doc, "telegram_id")

    @_translating
    async def list_users(self) -> list[User]:
        docs = await self._users.find({}).sort("_id", ASCENDING).to_list(None)
        return [_record(User, doc, "telegram_id") for doc in docs]

    # key/value ------------------------------------------------------------------------

    @_translating
    async def get_value(self, key: str) -> str | None:
        doc = await self._values.find_one({"_id": key})
        return None if doc is None else str(doc["value"])

    @_translating
    async def set_value(self, key: str, value: str | None) -> None:
        if value is None:
            await self._values.delete_one({"_id": key})
        else:
            try:
                await self._values.update_one(
                    {"_id": key}, {"$set": {"value": value}}, upsert=True
                )
            except DuplicateKeyError:
                # Two upserts of a new key raced and this one lost: now it is an update.
                await self._values.update_one({"_id": key}, {"$set": {"value": value}})

    # contacts -------------------------------------------------------------------------

    @_translating
    async def add_contact(
        self,
        name: str,
        phone: str,
        *,
        whatsapp_id: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> Contact:
        # Checked before an id is taken, so a refused name burns none (the index decides races).
        if await self._contacts.find_one({"name_key": name_key(name)}, {"_id": 1}):
            raise AlreadyExists(f"A contact named {name!r} exists already.")
        [contact_id] = await self._next_ids("contacts")
        contact = Contact(
            id=contact_id,
            name=name,
            phone=phone,
            whatsapp_id=whatsapp_id,
            fields=fields or {},
            created_at=_now(),
        )
        try:
            await self._contacts.insert_one({**_document(contact), "name_key": name_key(name)})
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"A contact named {name!r} exists already.") from exc
        return contact

    @_translating
    async def get_contact(self, contact_id: int) -> Contact | None:
        doc = await self._contacts.find_one({"_id": contact_id})
        return None if doc is None else _record(Contact, doc)

    @_translating
    async def find_contact(self, name: str) -> Contact | None:
        doc = await self._contacts.find_one({"name_key": name_key(name)})
        return None if doc is None else _record(Contact, doc)

    @_translating
    async def list_contacts(self) -> list[Contact]:
        cursor = self._contacts.find({}).sort([("name_key", ASCENDING), ("_id", ASCENDING)])
        return [_record(Contact, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def update_contact(
        self,
        contact_id: int,
        *,
        name: str = UNSET,
        phone: str = UNSET,
        whatsapp_id: str | None = UNSET,
        fields: dict[str, str] = UNSET,
    ) -> Contact:
        changes: Doc = {}
        if name is not UNSET:
            changes["name"] = name
            changes["name_key"] = name_key(name)
        if phone is not UNSET:
            changes["phone"] = phone
        if whatsapp_id is not UNSET:
            changes["whatsapp_id"] = whatsapp_id
        if fields is not UNSET:
            changes["fields"] = dict(fields)
        try:
            if changes:
                doc = await self._contacts.find_one_and_update(
                    {"_id": contact_id},
                    {"$set": changes},
                    return_document=ReturnDocument.AFTER,
                )
            else:
                doc = await self._contacts.find_one({"_id": contact_id})
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"A contact named {name!r} exists already.") from exc
        if doc is None:
            raise NotFound(f"There is no contact #{contact_id}.")
        return _record(Contact, doc)

    @_translating
    async def delete_contact(self, contact_id: int) -> bool:
        return (await self._contacts.delete_one({"_id": contact_id})).deleted_count > 0

    # templates ------------------------------------------------------------------------

    @_translating
    async def add_template(self, name: str, text: str) -> Template:
        if await self._templates.find_one({"name_key": name_key(name)}, {"_id": 1}):
            raise AlreadyExists(f"A template named {name!r} exists already.")
        [template_id] = await self._next_ids("templates")
        template = Template(id=template_id, name=name, text=text, created_at=_now())
        try:
            await self._templates.insert_one({**_document(template), "name_key": name_key(name)})
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"A template named {name!r} exists already.") from exc
        return template

    @_translating
    async def get_template(self, template_id: int) -> Template | None:
        doc = await self._templates.find_one({"_id": template_id})
        return None if doc is None else _record(Template, doc)

    @_translating
    async def find_template(self, name: str) -> Template | None:
        doc = await self._templates.find_one({"name_key": name_key(name)})
        return None if doc is None else _record(Template, doc)

    @_translating
    async def list_templates(self) -> list[Template]:
        cursor = self._templates.find({}).sort([("name_key", ASCENDING), ("_id", ASCENDING)])
        return [_record(Template, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def delete_template(self, template_id: int) -> bool:
        return (await self._templates.delete_one({"_id": template_id})).deleted_count > 0

    # schedules ------------------------------------------------------------------------

    @_translating
    async def add_schedule(
        self,
        *,
        owner_id: int,
        recipients: Sequence[Recipient],
        rule: Rule,
        next_run_at: datetime | None,
        text: str | None = None,
        template_id: int | None = None,
        media: Media | None = None,
        state: ScheduleState = ScheduleState.active,
        misfire_grace_s: int | None = None,
    ) -> Schedule:
        [schedule_id] = await self._next_ids("schedules")
        now = _now()
        schedule = Schedule(
            id=schedule_id,
            owner_id=owner_id,
            recipients=tuple(recipients),
            text=text,
            template_id=template_id,
            media=media,
            rule=normalized_rule(rule),
            state=state,
            next_run_at=None if next_run_at is None else utc(next_run_at),
            misfire_grace_s=misfire_grace_s,
            created_at=now,
            updated_at=now,
        )
        await self._schedules.insert_one(_document(schedule))
        return schedule

    @_translating
    async def get_schedule(self, schedule_id: int) -> Schedule | None:
        doc = await self._schedules.find_one({"_id": schedule_id})
        return None if doc is None else _record(Schedule, doc)

    @_translating
    async def list_schedules(
        self,
        *,
        owner_id: int | None = None,
        states: Sequence[ScheduleState] | None = None,
    ) -> list[Schedule]:
        query: Doc = {}
        if owner_id is not None:
            query["owner_id"] = owner_id
        if states is not None:
            query["state"] = {"$in": [ScheduleState(state).value for state in states]}
        cursor = self._schedules.find(query).sort("_id", ASCENDING)
        return [_record(Schedule, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def update_schedule(
        self,
        schedule_id: int,
        *,
        recipients: Sequence[Recipient] = UNSET,
        rule: Rule = UNSET,
        text: str | None = UNSET,
        template_id: int | None = UNSET,
        media: Media | None = UNSET,
        state: ScheduleState = UNSET,
        next_run_at: datetime | None = UNSET,
    ) -> Schedule:
        given: Doc = {
            "recipients": recipients,
            "rule": rule if rule is UNSET else normalized_rule(rule),
            "text": text,
            "template_id": template_id,
            "media": media,
            "state": state if state is UNSET else ScheduleState(state),
            "next_run_at": next_run_at,
        }
        changes = {name: _bson(value) for name, value in given.items() if value is not UNSET}
        changes["updated_at"] = _now()
        doc = await self._schedules.find_one_and_update(
            {"_id": schedule_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise NotFound(f"There is no schedule #{schedule_id}.")
        return _record(Schedule, doc)

    @_translating
    async def delete_schedule(self, schedule_id: int) -> bool:
        return (await self._schedules.delete_one({"_id": schedule_id})).deleted_count > 0

    @_translating
    async def advance_schedule(
        self,
        schedule_id: int,
        *,
        expected_next_run_at: datetime | None,
        next_run_at: datetime | None,
        state: ScheduleState | None = None,
    ) -> bool:
        changes: Doc = {"next_run_at": _bson(next_run_at), "updated_at": _now()}
        if state is not None:
            changes["state"] = ScheduleState(state).value
        result = await self._schedules.update_one(
            {"_id": schedule_id, "next_run_at": _bson(expected_next_run_at)},
            {"$set": changes},
        )
        return result.matched_count > 0

    @_translating
    async def due_schedules(self, now: datetime, *, limit: int | None = None) -> list[Schedule]:
        if limit is not None and limit <= 0:
            return []
        cursor = self._schedules.find(
            {"state": ScheduleState.active.value, "next_run_at": {"$lte": utc(now)}}
        ).sort([("next_run_at", ASCENDING), ("_id", ASCENDING)])
        if limit is not None:
            cursor = cursor.limit(limit)
        return [_record(Schedule, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def next_due_at(self) -> datetime | None:
        doc = await self._schedules.find_one(
            {"state": ScheduleState.active.value, "next_run_at": {"$ne": None}},
            {"next_run_at": 1},
            sort=[("next_run_at", ASCENDING)],
        )
        return None if doc is None else _aware(doc["next_run_at"])

    @_translating
    async def count_schedules(self) -> dict[ScheduleState, int]:
        return state_counts(
            {
                state.value: await self._schedules.count_documents({"state": state.value})
                for state in ScheduleState
            }
        )

    # runs -----------------------------------------------------------------------------

    @_translating
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
        manual = RunTrigger(trigger) is RunTrigger.manual
        # Not atomic with the insert: a pause, edit or delete committing between the two
        # returns before the run is stored (the Protocol's note says why no write to the
        # schedule here would close that without a transaction).
        if only_if_due and not await self._schedules.find_one(
            {
                "_id": schedule_id,
                "state": ScheduleState.active.value,
                "next_run_at": _bson(scheduled_for),
            },
            {"_id": 1},
        ):
            raise ScheduleMoved(
                f"Schedule #{schedule_id} is no longer due at {utc(scheduled_for).isoformat()}."
            )
        duplicate = DuplicateRun(
            f"Schedule #{schedule_id} already has a run for {utc(scheduled_for).isoformat()}."
        )
        # The unique `run_key` decides, in the insert itself. A duplicate key error can also
        # come from `_id` (an id counter behind the data, or a server whose `$inc` is not
        # atomic): then the occurrence has no run yet and the insert is tried with a new id.
        for _ in range(ID_TRIES):
            [run_id] = await self._next_ids("runs")
            run = Run(
                id=run_id,
                schedule_id=schedule_id,
                owner_id=owner_id,
                scheduled_for=utc(scheduled_for),
                trigger=trigger,
                created_at=_now(),
                late_by_s=late_by_s,
                outcome=outcome,
            )
            key = _manual_key(run_id) if manual else _run_key(schedule_id, scheduled_for)
            try:
                await self._runs.insert_one({**_document(run), "run_key": key})
            except DuplicateKeyError as exc:
                if not manual and await self._runs.find_one({"run_key": key}, {"_id": 1}):
                    raise duplicate from exc
                logger.warning("store: run id %d was taken already; drawing another", run_id)
                await self._catch_up_counter("runs")
                continue
            return run
        raise StoreError(f"No free run id after {ID_TRIES} tries: the id counter is broken.")

    @_translating
    async def get_run(self, run_id: int) -> Run | None:
        doc = await self._runs.find_one({"_id": run_id})
        return None if doc is None else _record(Run, doc)

    @_translating
    async def find_run(self, schedule_id: int, scheduled_for: datetime) -> Run | None:
        doc = await self._runs.find_one({"run_key": _run_key(schedule_id, scheduled_for)})
        return None if doc is None else _record(Run, doc)

    @_translating
    async def mark_run_fanned_out(self, run_id: int) -> None:
        await self._update_run(run_id, {"fanned_out": True})

    @_translating
    async def unfinished_runs(self) -> list[Run]:
        cursor = self._runs.find({"fanned_out": False}).sort("_id", ASCENDING)
        return [_record(Run, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def list_runs(self, *, schedule_id: int | None = None, limit: int = 50) -> list[Run]:
        if limit <= 0:
            return []
        query: Doc = {} if schedule_id is None else {"schedule_id": schedule_id}
        cursor = self._runs.find(query).sort("_id", DESCENDING).limit(limit)
        return [_record(Run, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def set_run_outcome(self, run_id: int, outcome: str) -> None:
        await self._update_run(run_id, {"outcome": outcome})

    async def _update_run(self, run_id: int, changes: Doc) -> None:
        result = await self._runs.update_one({"_id": run_id}, {"$set": changes})
        if result.matched_count == 0:
            raise NotFound(f"There is no run #{run_id}.")

    # deliveries -----------------------------------------------------------------------

    async def _deliveries_by_key(self, keys: Sequence[str]) -> dict[str, Delivery]:
        docs = await self._deliveries.find({"idempotency_key": {"$in": list(keys)}}).to_list(None)
        return {doc["idempotency_key"]: _record(Delivery, doc) for doc in docs}

    @_translating
    async def add_deliveries(
        self, run: Run, deliveries: Sequence[NewDelivery], *, now: datetime
    ) -> list[Delivery]:
        if not deliveries:
            return []
        at = utc(now)
        # One key once, in the order given; the unique `idempotency_key` decides in the
        # insert itself which are new, so a batch of new ones costs one `$inc` reserving its
        # ids and one unordered `insert_many`, and what was inserted is not read back.
        missing = {new.idempotency_key: new for new in deliveries}
        found: dict[str, Delivery] = {}
        for _ in range(ID_TRIES):
            if not missing:
                break
            ids = await self._next_ids("deliveries", len(missing))
            made: dict[str, Delivery] = {}
            for delivery_id, new in zip(ids, missing.values(), strict=True):
                status = DeliveryStatus(new.status)
                made[new.idempotency_key] = Delivery(
                    id=delivery_id,
                    run_id=run.id,
                    schedule_id=run.schedule_id,
                    owner_id=run.owner_id,
                    recipient=new.recipient,
                    recipient_name=new.recipient_name,
                    text=new.text,
                    idempotency_key=new.idempotency_key,
                    status=status,
                    next_attempt_at=at,
                    created_at=at,
                    **{f"{status.value}_at": at},
                )
            try:
                await self._deliveries.insert_many(
                    [_document(delivery) for delivery in made.values()], ordered=False
                )
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise
                # A key stored already (by an earlier fan-out or another process) stands and
                # is returned as it is now. A key still missing lost on `_id` (see
                # `insert_run`) and is tried again with a new id.
                refused = [list(made)[error["index"]] for error in errors]
                found.update(made)
                for key in refused:
                    del found[key]
                found.update(await self._deliveries_by_key(refused))
            else:
                found.update(made)
            missing = {key: new for key, new in missing.items() if key not in found}
            if missing:
                logger.warning("store: %d delivery ids were taken already", len(missing))
                await self._catch_up_counter("deliveries")
        if missing:
            raise StoreError(
                f"No free delivery ids after {ID_TRIES} tries: the id counter is broken."
            )
        return [found[new.idempotency_key] for new in deliveries]

    @_translating
    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        doc = await self._deliveries.find_one({"_id": delivery_id})
        return None if doc is None else _record(Delivery, doc)

    @_translating
    async def find_delivery_by_whatsapp_id(self, whatsapp_id: str) -> Delivery | None:
        doc = await self._deliveries.find_one(
            {"whatsapp_id": whatsapp_id}, sort=[("_id", DESCENDING)]
        )
        return None if doc is None else _record(Delivery, doc)

    @_translating
    async def claim_delivery(
        self, *, now: datetime, lease_s: float, worker: str
    ) -> Delivery | None:
        at = utc(now)
        take = {
            "$set": {
                "status": DeliveryStatus.sending.value,
                "lease_owner": worker,
                "lease_until": utc(at + timedelta(seconds=lease_s)),
                "sending_at": at,
            }
        }
        # Oldest due first: a delivery whose worker's lease ran out (it was taken before
        # anything now queued), then queued ones by `next_attempt_at`, as SQLite does.
        doc = await self._deliveries.find_one_and_update(
            {"status": DeliveryStatus.sending.value, "lease_until": {"$lte": at}},
            take,
            sort=[("lease_until", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = await self._deliveries.find_one_and_update(
                {"status": DeliveryStatus.queued.value, "next_attempt_at": {"$lte": at}},
                take,
                sort=[("next_attempt_at", ASCENDING), ("_id", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
        return None if doc is None else _record(Delivery, doc)

    @_translating
    async def claim_deliveries(
        self, *, now: datetime, lease_s: float, worker: str, limit: int
    ) -> list[Delivery]:
        # MongoDB has no "update the first n and return them". So: find the candidates in
        # `claim_delivery`'s order, take them with one `update_many` whose filter repeats the
        # claim's condition, and read back those that carry this call's mark: 4 round trips
        # for any batch, where taking one at a time costs up to 2 per delivery.
        # Two claimers never get the same delivery: MongoDB writes each document atomically
        # and each update "ensures that the query condition still matches" the document it
        # writes (manual, "Atomicity and Transactions"), so a candidate another claimer took
        # since (now `sending` under a running lease) is skipped; a delivery holds one mark,
        # so the read-back returns only what this call took. (FerretDB 1.x does not re-check;
        # see tests/store/conftest.py, FERRETDB_NOT_ATOMIC.)
        at = utc(now)
        mark = uuid.uuid4().hex
        take = {
            "$set": {
                "status": DeliveryStatus.sending.value,
                "lease_owner": worker,
                "lease_until": utc(at + timedelta(seconds=lease_s)),
                "sending_at": at,
                "mark": mark,
            }
        }
        ended: Doc = {"status": DeliveryStatus.sending.value, "lease_until": {"$lte": at}}
        queued: Doc = {"status": DeliveryStatus.queued.value, "next_attempt_at": {"$lte": at}}
        claimed: dict[int, Delivery] = {}
        # Candidates taken by others meanwhile are made up for by another pass, a few at most.
        for _ in range(CLAIM_PASSES):
            want = limit - len(claimed)
            if want <= 0:
                break
            # Not those this call took (a lease of 0 s would be over at once).
            ended["_id"] = queued["_id"] = {"$nin": list(claimed)}
            candidates = await self._candidate_ids(ended, [("lease_until", ASCENDING)], want)
            if len(candidates) < want:
                candidates += await self._candidate_ids(
                    queued, [("next_attempt_at", ASCENDING)], want - len(candidates)
                )
            if not candidates:
                break
            await self._deliveries.update_many(
                {"_id": {"$in": candidates}, "$or": [ended, queued]}, take
            )
            docs = await self._deliveries.find({"_id": {"$in": candidates}, "mark": mark}).to_list(
                None
            )
            claimed.update((doc["_id"], _record(Delivery, doc)) for doc in docs)
            if len(candidates) < want:
                break  # no more due than these
        return sorted(claimed.values(), key=lambda d: (d.next_attempt_at, d.id))

    async def _candidate_ids(
        self, query: Doc, order: list[tuple[str, int]], limit: int
    ) -> list[int]:
        cursor = self._deliveries.find(query, {"_id": 1}).sort([*order, ("_id", ASCENDING)])
        return [doc["_id"] for doc in await cursor.limit(limit).to_list(None)]

    @_translating
    async def record_sent(
        self, sent: Sequence[SentRecord], *, worker: str, now: datetime
    ) -> list[int]:
        if not sent:
            return []
        at = utc(now)
        # One `update` command for all: each statement still moves its delivery only while
        # it is `sending` under this worker, and runs in order (a repeated id moves once).
        # The result only counts, so each moved delivery also carries this call's mark.
        mark = uuid.uuid4().hex
        result = await self._deliveries.bulk_write(
            [
                UpdateOne(
                    {
                        "_id": record.delivery_id,
                        "status": DeliveryStatus.sending.value,
                        "lease_owner": worker,
                    },
                    {
                        "$set": {
                            "status": DeliveryStatus.sent.value,
                            "whatsapp_id": record.whatsapp_id,
                            "attempts": record.attempts,
                            "sent_at": at,
                            "last_error": None,
                            "error_code": None,
                            "lease_owner": None,
                            "lease_until": None,
                            "mark": mark,
                        }
                    },
                )
                for record in sent
            ]
        )
        if result.matched_count == len(sent):
            return [record.delivery_id for record in sent]
        # Some were taken over (or recorded already): one read of which carry the mark.
        ids = [record.delivery_id for record in sent]
        docs = await self._deliveries.find(
            {"_id": {"$in": ids}, "mark": mark}, {"whatsapp_id": 1}
        ).to_list(None)
        carried = {(doc["_id"], doc.get("whatsapp_id")) for doc in docs}
        moved: list[int] = []
        for record in sent:
            if (record.delivery_id, record.whatsapp_id) in carried and (
                record.delivery_id not in moved
            ):
                moved.append(record.delivery_id)
        return moved

    @_translating
    async def update_delivery(
        self,
        delivery_id: int,
        *,
        expected_status: DeliveryStatus | Sequence[DeliveryStatus] | None = None,
        worker: str | None = None,
        **fields: Any,
    ) -> Delivery | None:
        changes = _bson(delivery_changes(fields))
        query: Doc = {"_id": delivery_id}
        statuses = expected_statuses(expected_status)
        if statuses is not None:
            query["status"] = {"$in": [status.value for status in statuses]}
        if worker is not None:
            query["lease_owner"] = worker
        if changes:
            doc = await self._deliveries.find_one_and_update(
                query, {"$set": changes}, return_document=ReturnDocument.AFTER
            )
        else:
            doc = await self._deliveries.find_one(query)
        return None if doc is None else _record(Delivery, doc)

    @_translating
    async def release_held(self, *, now: datetime) -> int:
        at = utc(now)
        result = await self._deliveries.update_many(
            {"status": DeliveryStatus.held.value},
            {
                "$set": {
                    "status": DeliveryStatus.queued.value,
                    "next_attempt_at": at,
                    "queued_at": at,
                }
            },
        )
        return result.modified_count

    @_translating
    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        if query.limit is not None and query.limit <= 0:
            return []
        find: Doc = {}
        for field in ("run_id", "schedule_id", "owner_id"):
            value = getattr(query, field)
            if value is not None:
                find[field] = value
        if query.statuses is not None:
            find["status"] = {"$in": [DeliveryStatus(s).value for s in query.statuses]}
        created: Doc = {}
        if query.since is not None:
            created["$gte"] = utc(query.since)
        if query.until is not None:
            created["$lt"] = utc(query.until)
        if created:
            find["created_at"] = created
        direction = DESCENDING if query.order == "newest" else ASCENDING
        cursor = self._deliveries.find(find).sort("_id", direction)
        if query.limit is not None:
            cursor = cursor.limit(query.limit)
        return [_record(Delivery, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def count_deliveries(self) -> dict[DeliveryStatus, int]:
        return status_counts(
            {
                status.value: await self._deliveries.count_documents({"status": status.value})
                for status in DeliveryStatus
            }
        )

    @_translating
    async def count_unacked(self, *, sent_before: datetime) -> int:
        return await self._deliveries.count_documents(
            {"status": DeliveryStatus.sent.value, "sent_at": {"$lte": utc(sent_before)}}
        )

    @_translating
    async def next_delivery_due_at(self) -> datetime | None:
        queued = await self._deliveries.find_one(
            {"status": DeliveryStatus.queued.value},
            {"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)],
        )
        leased = await self._deliveries.find_one(
            {"status": DeliveryStatus.sending.value, "lease_until": {"$ne": None}},
            {"lease_until": 1},
            sort=[("lease_until", ASCENDING)],
        )
        times: list[datetime] = []
        if queued is not None:
            times.append(_aware(queued["next_attempt_at"]))
        if leased is not None:
            times.append(_aware(leased["lease_until"]))
        return min(times, default=None)

    # migration ------------------------------------------------------------------------

    @_translating
    async def is_empty(self) -> bool:
        for name in DATA_COLLECTIONS:
            if await self._db[name].find_one({}, {"_id": 1}) is not None:
                return False
        return True

    @_translating
    async def export_all(self) -> dict[str, list[dict[str, Any]]]:
        records: dict[str, list[BaseModel]] = {}
        for name, model in RECORD_COLLECTIONS.items():
            id_field = "telegram_id" if name == "users" else "id"
            docs = await self._db[name].find({}).sort("_id", ASCENDING).to_list(None)
            records[name] = [_record(model, doc, id_field) for doc in docs]
        values = {
            str(doc["_id"]): str(doc["value"]) for doc in await self._values.find({}).to_list(None)
        }
        counters = {name: 0 for name in ID_COLLECTIONS}
        for doc in await self._counters.find({}).to_list(None):
            if doc["_id"] in counters:
                counters[doc["_id"]] = int(doc["seq"])
        for name in ID_COLLECTIONS:
            ids = [getattr(record, "id", 0) for record in records[name]]
            counters[name] = max([counters[name], *ids])
        return export_document(records, values, counters)

    @_translating
    async def import_all(self, data: dict[str, list[dict[str, Any]]]) -> None:
        parsed = parse_export(data)
        if not await self.is_empty():
            raise TargetNotEmpty(
                "The target database already holds data: import into an empty one."
            )
        for name, records in parsed.records.items():
            if not records:
                continue
            docs = []
            for record in records:
                doc = _document(record, "telegram_id" if name == "users" else "id")
                if isinstance(record, Contact | Template):
                    doc["name_key"] = name_key(record.name)
                elif isinstance(record, Run):
                    doc["run_key"] = (
                        _manual_key(record.id)
                        if record.trigger is RunTrigger.manual
                        else _run_key(record.schedule_id, record.scheduled_for)
                    )
                docs.append(doc)
            await self._db[name].insert_many(docs)
        if parsed.values:
            await self._values.insert_many(
                [{"_id": key, "value": value} for key, value in parsed.values.items()]
            )
        for name, last_id in parsed.counters.items():
            await self._counters.update_one({"_id": name}, {"$max": {"seq": last_id}}, upsert=True)

    @_translating
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
        after: Doc = {"sent_at": {"$gte": utc(since)}}
        if after_id is not None:
            after = {
                "$or": [
                    {"sent_at": {"$gt": utc(since)}},
                    {"sent_at": utc(since), "_id": {"$gt": after_id}},
                ]
            }
        query: Doc = {"status": {"$in": [DeliveryStatus(s).value for s in statuses]}, **after}
        if until is not None:
            query = {"$and": [query, {"sent_at": {"$lte": utc(until)}}]}
        cursor = (
            self._deliveries.find(query)
            .sort([("sent_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_record(Delivery, doc) for doc in await cursor.to_list(None)]

    async def check_writes(self) -> None:
        """Write one document: a secondary, a read-only user or a full disk refuse it."""
        try:
            await self._db["write_check"].update_one(
                {"_id": 1}, {"$set": {"at": datetime.now(UTC)}}, upsert=True
            )
        except PyMongoError as exc:
            raise StoreNotWritable(
                f"the database does not take writes ({exc})",
                "check that the server runs with free disk space, is the primary, and that "
                "the user in DATABASE_URL may write",
            ) from exc
