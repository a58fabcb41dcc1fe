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
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

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
    export_document,
    iso,
    key_field,
    name_key,
    new_delivery,
    normalized_rule,
    parse_export,
    utc,
)
from core.adapters.store._records import now as _now
from core.delivery.states import SPIKE_HOLD
from core.domain.errors import ConfigError, StoreError, StoreNotWritable
from core.domain.models import (
    Ask,
    AskChoice,
    CheckedNumber,
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
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


def _store_error(exc: PyMongoError) -> StoreError:
    """What an error of PyMongo means to the store's caller (every method goes through it)."""
    if isinstance(exc, DuplicateKeyError):
        return Conflict(f"The database refused a duplicate: {exc}")
    if isinstance(exc, ConnectionFailure):
        # Server gone, unreachable, or no longer the primary: no write goes through.
        return StoreNotWritable(
            f"the MongoDB server does not answer ({exc})",
            "check that the server in DATABASE_URL runs and is the primary",
        )
    return StoreError(f"The MongoDB database failed: {exc}")


def _translating(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any PyMongo error a method lets through into `StoreError` (`_store_error`)."""

    @functools.wraps(method)
    async def translating(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated(PyMongoError, _store_error):
            return await method(*args, **kwargs)

    return translating


def _unwritable(exc: PyMongoError) -> StoreError:
    """What any error of a test write means: the database does not take writes."""
    return StoreNotWritable(
        f"the database does not take writes ({exc})",
        "check that the server runs with free disk space, is the primary, and that "
        "the user in DATABASE_URL may write",
    )


async def _upserted(upsert: Callable[[], Awaitable[T]]) -> T:
    """Run an upsert; when it raced another upsert of the same new document and lost (a
    duplicate key), run it once more: now it is an update."""
    try:
        return await upsert()
    except DuplicateKeyError:
        return await upsert()


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
    return f"{schedule_id}@{iso(scheduled_for)}"


def _manual_key(run_id: int) -> str:
    return f"manual#{run_id}"


def _due(at: datetime) -> tuple[Doc, Doc]:
    """What a claim at `at` may take: a delivery whose worker's lease ended, a queued one."""
    return (
        {"status": DeliveryStatus.sending.value, "lease_until": {"$lte": at}},
        {"status": DeliveryStatus.queued.value, "next_attempt_at": {"$lte": at}},
    )


def _take(worker: str, at: datetime, lease_s: float, **more: Any) -> Doc:
    """The update that claims a delivery: `sending` from `at` under `worker`'s lease."""
    lease = {"lease_owner": worker, "lease_until": utc(at + timedelta(seconds=lease_s))}
    return {"$set": {"status": DeliveryStatus.sending.value, **lease, "sending_at": at, **more}}


class MongoStore(BaseStore):
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
        # Keyed by the number (`_id`): no index beyond the one every collection has.
        self._number_checks: AsyncCollection[Doc] = db["number_checks"]
        self._asks: AsyncCollection[Doc] = db["asks"]

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
        # /stats: an owner's deliveries sent, or failed, in a period (`delivery_times`).
        for field in ("sent_at", "failed_at"):
            await self._deliveries.create_index([("owner_id", ASCENDING), (field, ASCENDING)])
        await self._asks.create_index(
            [("schedule_id", ASCENDING), ("occurrence", ASCENDING)], unique=True
        )
        await self._asks.create_index([("told", ASCENDING), ("run_id", ASCENDING)])
        await self._asks.create_index("run_id")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @_translating
    async def ping(self) -> None:
        await self._db.command("ping")

    async def _next_ids(self, collection: str, count: int = 1) -> list[int]:
        counter = await _upserted(
            functools.partial(
                self._counters.find_one_and_update,
                {"_id": collection},
                {"$inc": {"seq": count}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        )
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

    # records by id and by name (the queries `BaseStore` builds on) ---------------------

    def _collection(self, model: type[BaseModel]) -> AsyncCollection[Doc]:
        return self._db[COLLECTION_OF[model]]

    @_translating
    async def _get(self, model: type[M], record_id: int) -> M | None:
        doc = await self._collection(model).find_one({"_id": record_id})
        return None if doc is None else _record(model, doc)

    @_translating
    async def _find_named(self, model: type[M], key: str) -> M | None:
        doc = await self._collection(model).find_one({"name_key": key})
        return None if doc is None else _record(model, doc)

    @_translating
    async def _list_named(self, model: type[M]) -> list[M]:
        cursor = (
            self._collection(model).find({}).sort([("name_key", ASCENDING), ("_id", ASCENDING)])
        )
        return [_record(model, doc) for doc in await cursor.to_list(None)]

    @_translating
    async def _insert(
        self, model: type[M], values: dict[str, Any], *, name_key: str | None = None
    ) -> M:
        collection = self._collection(model)
        named: Doc = {}
        if name_key is not None:
            # Checked before an id is taken, so a refused name burns none (the index decides
            # races).
            if await collection.find_one({"name_key": name_key}, {"_id": 1}):
                raise Conflict(f"The name key {name_key!r} is taken.")
            named["name_key"] = name_key
        [record_id] = await self._next_ids(COLLECTION_OF[model])
        record = model(id=record_id, **values)
        await collection.insert_one({**_document(record), **named})
        return record

    @_translating
    async def _update(self, model: type[M], record_id: int, changes: dict[str, Any]) -> M | None:
        collection = self._collection(model)
        if changes:
            doc = await collection.find_one_and_update(
                {"_id": record_id}, {"$set": _bson(changes)}, return_document=ReturnDocument.AFTER
            )
        else:
            doc = await collection.find_one({"_id": record_id})
        return None if doc is None else _record(model, doc)

    @_translating
    async def _delete(self, model: type[BaseModel], record_id: int) -> bool:
        return (await self._collection(model).delete_one({"_id": record_id})).deleted_count > 0

    # users ----------------------------------------------------------------------------

    @_translating
    async def get_user(self, telegram_id: int) -> User | None:
        doc = await self._users.find_one({"_id": telegram_id})
        return None if doc is None else _record(User, doc, "telegram_id")

    @_translating
    async def _upsert_user(
        self, telegram_id: int, *, insert: dict[str, Any], changes: dict[str, Any]
    ) -> User:
        update: Doc = {"$setOnInsert": {k: v for k, v in insert.items() if k not in changes}}
        if changes:
            update["$set"] = changes
        doc = await _upserted(
            functools.partial(
                self._users.find_one_and_update,
                {"_id": telegram_id},
                update,
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
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
            await _upserted(
                functools.partial(
                    self._values.update_one, {"_id": key}, {"$set": {"value": value}}, upsert=True
                )
            )

    # schedules ------------------------------------------------------------------------

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
    async def _count_by(
        self, model: type[BaseModel], field: str, values: Iterable[StrEnum]
    ) -> dict[str, int]:
        # One round trip: a `$group` of the values asked for (0 for those with no document).
        counts = {value.value: 0 for value in values}
        pipeline: list[dict[str, Any]] = [
            {"$match": {field: {"$in": list(counts)}}},
            {"$group": {"_id": f"${field}", "count": {"$sum": 1}}},
        ]
        cursor = await self._collection(model).aggregate(pipeline)
        async for row in cursor:
            counts[row["_id"]] = int(row["count"])
        return counts

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
            raise no_longer_due(schedule_id, scheduled_for)
        duplicate = run_exists(schedule_id, scheduled_for)
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
    async def find_run(self, schedule_id: int, scheduled_for: datetime) -> Run | None:
        doc = await self._runs.find_one({"run_key": _run_key(schedule_id, scheduled_for)})
        return None if doc is None else _record(Run, doc)

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

    # deliveries -----------------------------------------------------------------------

    async def _deliveries_by_key(self, keys: Sequence[str]) -> dict[str, Delivery]:
        docs = await self._deliveries.find({"idempotency_key": {"$in": list(keys)}}).to_list(None)
        return {doc["idempotency_key"]: _record(Delivery, doc) for doc in docs}

    @_translating
    async def _insert_deliveries(
        self, run: Run, deliveries: Sequence[NewDelivery], *, at: datetime
    ) -> dict[str, Delivery]:
        # The unique `idempotency_key` decides in the insert itself which are new, so a batch
        # of new ones costs one `$inc` reserving its ids and one unordered `insert_many`, and
        # what was inserted is not read back.
        missing = {new.idempotency_key: new for new in deliveries}
        found: dict[str, Delivery] = {}
        for _ in range(ID_TRIES):
            if not missing:
                break
            ids = await self._next_ids("deliveries", len(missing))
            made: dict[str, Delivery] = {}
            for delivery_id, new in zip(ids, missing.values(), strict=True):
                made[new.idempotency_key] = Delivery(id=delivery_id, **new_delivery(run, new, at))
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
        return found

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
        take = _take(worker, at, lease_s)
        ended, queued = _due(at)
        # Oldest due first: a delivery whose worker's lease ran out (it was taken before
        # anything now queued), then queued ones by `next_attempt_at`, as SQLite does.
        doc = await self._deliveries.find_one_and_update(
            ended,
            take,
            sort=[("lease_until", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = await self._deliveries.find_one_and_update(
                queued,
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
        take = _take(worker, at, lease_s, mark=mark)
        ended, queued = _due(at)
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
    async def _update_delivery(
        self, delivery_id: int, changes: Changes, statuses: Statuses | None, worker: str | None
    ) -> Delivery | None:
        changes = _bson(changes)
        query: Doc = {"_id": delivery_id}
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
            {"status": DeliveryStatus.held.value, "error_code": {"$ne": SPIKE_HOLD}},
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
            docs = await self._db[name].find({}).sort("_id", ASCENDING).to_list(None)
            records[name] = [_record(model, doc, key_field(name)) for doc in docs]
        values = {
            str(doc["_id"]): str(doc["value"]) for doc in await self._values.find({}).to_list(None)
        }
        counters = {
            str(doc["_id"]): int(doc["seq"])
            for doc in await self._counters.find({}).to_list(None)
            if doc["_id"] in ID_COLLECTIONS
        }
        return export_document(records, values, counters)

    @_translating
    async def import_all(self, data: dict[str, list[dict[str, Any]]]) -> None:
        parsed = parse_export(data)
        if not await self.is_empty():
            raise target_not_empty()
        for name, records in parsed.records.items():
            if not records:
                continue
            docs = []
            for record in records:
                doc = _document(record, key_field(name))
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
        with translated(PyMongoError, _unwritable):
            await self._db["write_check"].update_one(
                {"_id": 1}, {"$set": {"at": datetime.now(UTC)}}, upsert=True
            )

    @_translating
    async def count_occurrences_sent(self, schedule_id: int) -> int:
        return await self._runs.count_documents(
            {
                "schedule_id": schedule_id,
                "trigger": {"$ne": RunTrigger.manual.value},
                "outcome": None,
            }
        )

    @_translating
    async def claim_value(self, key: str, value: str) -> bool:
        try:
            await self._values.insert_one({"_id": key, "value": value})
        except DuplicateKeyError:
            return False
        return True

    # stats ----------------------------------------------------------------------------

    @_translating
    async def delivery_times(
        self, *, since: datetime, until: datetime, owner_id: int | None = None
    ) -> list[DeliveryTimes]:
        window = {"$gte": utc(since), "$lt": utc(until)}
        query: Doc = {"$or": [{"sent_at": window}, {"failed_at": window}]}
        if owner_id is not None:
            query["owner_id"] = owner_id
        fields = DeliveryTimes._fields
        cursor = self._deliveries.find(query, dict.fromkeys(fields, 1)).sort("_id", ASCENDING)
        return [
            DeliveryTimes(
                doc["schedule_id"],
                DeliveryStatus(doc["status"]),
                *(_aware(doc.get(name)) for name in fields[2:]),
            )
            for doc in await cursor.to_list(None)
        ]

    @_translating
    async def number_checks(self, numbers: Sequence[str]) -> dict[str, CheckedNumber]:
        wanted = list(dict.fromkeys(numbers))
        if not wanted:
            return {}
        docs = await self._number_checks.find({"_id": {"$in": wanted}}).to_list(None)
        checks = [_record(CheckedNumber, doc, "number") for doc in docs]
        return {check.number: check for check in checks}

    @_translating
    async def save_number_checks(self, checks: Sequence[CheckedNumber]) -> None:
        for check in checks:
            doc = _document(check, "number")
            await _upserted(
                functools.partial(
                    self._number_checks.replace_one, {"_id": doc["_id"]}, doc, upsert=True
                )
            )

    # ask first ------------------------------------------------------------------------

    @_translating
    async def find_ask(self, schedule_id: int, occurrence: datetime) -> Ask | None:
        doc = await self._asks.find_one(
            {"schedule_id": schedule_id, "occurrence": utc(occurrence)}
        )
        return None if doc is None else _record(Ask, doc)

    @_translating
    async def open_asks(self) -> list[Ask]:
        query: Doc = {"$or": [{"told": False}, {"choice": AskChoice.snooze.value, "run_id": None}]}
        docs = await self._asks.find(query).sort("_id", ASCENDING).to_list(None)
        return [_record(Ask, doc) for doc in docs]

    @_translating
    async def asks_of_runs(self, run_ids: Sequence[int]) -> dict[int, Ask]:
        if not run_ids:
            return {}
        docs = await self._asks.find({"run_id": {"$in": sorted(set(run_ids))}}).to_list(None)
        return {int(doc["run_id"]): _record(Ask, doc) for doc in docs}

    @_translating
    async def _choose(self, ask_id: int, changes: dict[str, Any]) -> Ask | None:
        doc = await self._asks.find_one_and_update(
            {"_id": ask_id, "choice": None},
            {"$set": _bson(changes)},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _record(Ask, doc)
