"""What only the MongoDB store has to show: start-up indexes, errors, two processes on one db,
the window of `only_if_due`, and what its tests do without a server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import ServerSelectionTimeoutError

from core.adapters.store import SentRecord, open_store
from core.adapters.store.mongo import MongoStore
from core.domain.errors import ConfigError, DuplicateRun, ScheduleMoved, StoreError
from core.domain.models import DeliveryFilter, DeliveryStatus, Run, RunTrigger, ScheduleState
from tests.conftest import NO_SERVER
from tests.deploy.test_process import REPO
from tests.store.conftest import (
    FERRETDB_NOT_ATOMIC,
    MONGODB_TEST_URI,
    REAL_MONGO,
    backend_of,
    expect_ferretdb_gap,
    is_ferretdb,
)
from tests.store.factories import OWNER, T0, add_deliveries, add_schedule, new_deliveries


@pytest.fixture(params=[REAL_MONGO])
async def two_stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[MongoStore, ...]]:
    """Two stores on one database, as two processes would have them (two clients)."""
    assert MONGODB_TEST_URI is not None
    name = f"wasched_test_{uuid.uuid4().hex[:12]}"
    clients: list[AsyncMongoClient[dict[str, Any]]] = [
        AsyncMongoClient(MONGODB_TEST_URI),
        AsyncMongoClient(MONGODB_TEST_URI),
    ]
    try:
        await is_ferretdb(clients[0])
        yield tuple([await MongoStore.from_database(client[name]) for client in clients])
    finally:
        await clients[0].drop_database(name)
        for client in clients:
            await client.close()


class _DownCollection:
    """Answers every call the way PyMongo does when no server can be selected."""

    def __getattr__(self, name: str) -> Any:
        async def down(*args: Any, **kwargs: Any) -> Any:
            raise ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused")

        return down


class _DownDatabase(_DownCollection):
    def __getitem__(self, name: str) -> _DownCollection:
        return _DownCollection()


# A real client on an unreachable server is not used here: PyMongo 4.20.1 leaks the socket of
# a monitor check cancelled by close() (a ResourceWarning), so the driver's answer is faked.
async def test_an_unreachable_server_fails_start_up_with_a_store_error() -> None:
    with pytest.raises(StoreError, match="MongoDB"):
        await MongoStore.from_database(_DownDatabase())  # type: ignore[arg-type]


async def test_driver_errors_become_store_errors() -> None:
    store = MongoStore(_DownDatabase())  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.get_contact(1)
    with pytest.raises(StoreError):
        await store.add_template("Greeting", "Hello")
    with pytest.raises(StoreError):
        await store.claim_delivery(now=T0, lease_s=60, worker="w1")


@pytest.mark.parametrize("url", ["mongodb://", "mongodb://host:port/wasched"])
async def test_a_malformed_url_is_a_config_error_with_an_example(url: str) -> None:
    with pytest.raises(ConfigError, match="mongodb://user:password@host:27017/wasched"):
        await open_store(url)


@pytest.mark.mongo
async def test_indexes_are_created_at_start_up() -> None:
    assert MONGODB_TEST_URI is not None
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_TEST_URI)
    name = f"wasched_test_{uuid.uuid4().hex[:12]}"
    try:
        db = client[name]
        await MongoStore.from_database(db)
        # Start-up twice is fine: creating an existing index is a no-op.
        await MongoStore.from_database(db)
        deliveries = await db["deliveries"].index_information()
        runs = await db["runs"].index_information()
        contacts = await db["contacts"].index_information()
        schedules = await db["schedules"].index_information()
    finally:
        await client.drop_database(name)
        await client.close()

    def unique_keys(info: Mapping[str, Any]) -> set[tuple[tuple[str, Any], ...]]:
        return {tuple(index["key"]) for index in info.values() if index.get("unique")}

    assert (("idempotency_key", 1),) in unique_keys(deliveries)
    assert (("run_key", 1),) in unique_keys(runs)
    assert (("name_key", 1),) in unique_keys(contacts)
    assert (("state", 1), ("next_run_at", 1), ("_id", 1)) in {
        tuple(index["key"]) for index in schedules.values()
    }
    assert (("status", 1), ("next_attempt_at", 1), ("_id", 1)) in {
        tuple(index["key"]) for index in deliveries.values()
    }


@pytest.mark.mongo
async def test_open_connects_and_closes_on_a_real_server() -> None:
    assert MONGODB_TEST_URI is not None
    store = await open_store(MONGODB_TEST_URI)
    try:
        await store.ping()
    finally:
        await store.close()


async def test_two_stores_on_one_database_never_share_a_claim_or_a_run(
    two_stores: tuple[MongoStore, MongoStore], request: pytest.FixtureRequest
) -> None:
    expect_ferretdb_gap(request, backend_of(request, "two_stores"), FERRETDB_NOT_ATOMIC)
    one, two = two_stores
    schedule = await add_schedule(one)
    await add_deliveries(one, 40, now=T0)

    async def insert(store: MongoStore) -> bool:
        try:
            await store.insert_run(
                schedule_id=schedule.id,
                owner_id=OWNER,
                scheduled_for=T0,
                trigger=RunTrigger.schedule,
            )
        except DuplicateRun:
            return False
        return True

    inserted = await asyncio.gather(*(insert(s) for s in (one, two) * 5))
    assert inserted.count(True) == 1
    claims = await asyncio.gather(
        *(
            store.claim_delivery(now=T0, lease_s=60, worker=f"w{n}")
            for n in range(30)
            for store in (one, two)
        )
    )
    ids = [d.id for d in claims if d is not None]
    assert sorted(set(ids)) == sorted(ids)
    assert len(ids) == 40


async def test_an_id_counter_behind_the_data_costs_a_retry_not_a_run_or_a_delivery(
    two_stores: tuple[MongoStore, MongoStore],
) -> None:
    # Ids already taken come from the counter when it is behind the data (a counter reset by
    # hand; on FerretDB two `$inc`s at once). The unique key decides what is a duplicate.
    store, _ = two_stores
    schedule = await add_schedule(store)
    first = await store.insert_run(
        schedule_id=schedule.id, owner_id=OWNER, scheduled_for=T0, trigger=RunTrigger.schedule
    )
    await add_deliveries(store, 3, now=T0, run=first)
    await store._counters.update_many({}, {"$set": {"seq": 0}})

    later = await store.insert_run(
        schedule_id=schedule.id,
        owner_id=OWNER,
        scheduled_for=T0 + timedelta(hours=1),
        trigger=RunTrigger.schedule,
    )
    assert later.id != first.id
    delivered = await store.add_deliveries(later, new_deliveries(later, 4), now=T0)
    assert len({d.id for d in delivered}) == 4
    assert len(await store.list_deliveries(DeliveryFilter())) == 3 + 4
    with pytest.raises(DuplicateRun):
        await store.insert_run(
            schedule_id=schedule.id,
            owner_id=OWNER,
            scheduled_for=T0,
            trigger=RunTrigger.schedule,
        )


class _Commands(monitoring.CommandListener):
    """Every command the client sent to the server, by name (one command is one round trip)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
async def counted() -> AsyncIterator[tuple[MongoStore, _Commands]]:
    """A store on the real server whose client reports each command it sends."""
    assert MONGODB_TEST_URI is not None
    commands = _Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        MONGODB_TEST_URI, event_listeners=[commands]
    )
    name = f"wasched_test_{uuid.uuid4().hex[:12]}"
    try:
        await is_ferretdb(client)
        store = await MongoStore.from_database(client[name])
        commands.take()
        yield store, commands
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.mark.mongo
async def test_a_batch_is_stored_claimed_and_recorded_sent_in_a_few_round_trips(
    counted: tuple[MongoStore, _Commands],
) -> None:
    store, commands = counted
    run = await store.insert_run(
        schedule_id=(await add_schedule(store)).id,
        owner_id=OWNER,
        scheduled_for=T0,
        trigger=RunTrigger.schedule,
    )
    commands.take()

    stored = await store.add_deliveries(run, new_deliveries(run, 16), now=T0)
    # Its 16 ids reserved by one `$inc`, then one insert; nothing read back.
    assert commands.take() == ["findAndModify", "insert"]
    again = await store.add_deliveries(run, new_deliveries(run, 17), now=T0)
    assert [d.id for d in again[:16]] == [d.id for d in stored]
    # Sixteen refused by their key are read back once; the new one is not read.
    assert commands.take() == ["findAndModify", "insert", "find"]

    claimed = await store.claim_deliveries(now=T0, lease_s=60, worker="w1", limit=17)
    assert len(claimed) == 17
    # Ended leases, then queued ones, are the candidates; one update takes them all, one
    # read returns what it took.
    assert commands.take() == ["find", "find", "update", "find"]
    sent = [SentRecord(d.id, f"wa-{d.id}", 1) for d in claimed]
    moved = await store.record_sent(sent[:16], worker="w1", now=T0)
    assert moved == [d.id for d in claimed[:16]]
    assert commands.take() == ["update"]

    # One taken over by another worker: the update, then one read of which ones moved.
    last = claimed[16]
    await store.update_delivery(last.id, worker="w1", lease_owner="w2")
    commands.take()
    moved = await store.record_sent([sent[16], sent[0]], worker="w1", now=T0)
    assert moved == []
    assert commands.take() == ["update", "find"]
    taken = await store.get_delivery(last.id)
    assert taken is not None and (taken.status, taken.lease_owner) == (
        DeliveryStatus.sending,
        "w2",
    )


async def test_a_candidate_another_claimer_takes_first_is_skipped_and_made_up_for(
    two_stores: tuple[MongoStore, MongoStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = two_stores
    deliveries = await add_deliveries(one, 5, now=T0)
    stolen: list[int] = []
    candidate_ids = one._candidate_ids

    async def then_another_claims(*args: Any, **kwargs: Any) -> list[int]:
        found = await candidate_ids(*args, **kwargs)
        if found and not stolen:
            # Between the look for candidates and the update: the other process claims the
            # oldest one, as `claim_delivery` would.
            taken = await two.claim_delivery(now=T0, lease_s=60, worker="other")
            assert taken is not None and taken.id == found[0]
            stolen.append(taken.id)
        return found

    monkeypatch.setattr(one, "_candidate_ids", then_another_claims)
    claimed = await one.claim_deliveries(now=T0, lease_s=60, worker="w1", limit=3)
    # Not the stolen one; the next due one in its place, in due order.
    assert [d.id for d in claimed] == [d.id for d in deliveries[1:4]]
    assert {d.lease_owner for d in claimed} == {"w1"}
    other = await one.get_delivery(stolen[0])
    assert other is not None and other.lease_owner == "other"


async def test_a_pause_between_the_due_check_and_the_insert_returns_before_the_run_is_stored(
    two_stores: tuple[MongoStore, MongoStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window the Store Protocol's `insert_run` names, forced: MongoDB checks that the
    occurrence is due one round trip before the insert, so a pause committed in between (by
    another process) returns first, and the occurrence still gets its one run. The window is
    that round trip: the next claim after the pause is refused."""
    one, two = two_stores
    schedule = await add_schedule(one, next_run_at=T0)
    runs = one._runs
    paused: list[ScheduleState] = []

    class PausedBeforeTheInsert:
        def __getattr__(self, name: str) -> Any:
            return getattr(runs, name)

        async def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any:
            paused.append(
                (await two.update_schedule(schedule.id, state=ScheduleState.paused)).state
            )
            return await runs.insert_one(document, *args, **kwargs)

    async def claim(scheduled_for: datetime) -> Run:
        return await one.insert_run(
            schedule_id=schedule.id,
            owner_id=OWNER,
            scheduled_for=scheduled_for,
            trigger=RunTrigger.schedule,
            only_if_due=True,
        )

    monkeypatch.setattr(one, "_runs", PausedBeforeTheInsert())
    run = await claim(T0)
    monkeypatch.undo()

    assert paused == [ScheduleState.paused]
    assert await two.list_runs(schedule_id=schedule.id) == [run]
    for scheduled_for in (T0, T0 + timedelta(hours=1)):
        with pytest.raises(ScheduleMoved):
            await claim(scheduled_for)
    assert len(await two.list_runs(schedule_id=schedule.id)) == 1


def _pytest_without_a_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on some `mongo` tests of two files, with no MONGODB_TEST_URI."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_TEST_", "CI", "PYTEST_"))
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "tests/store/test_mongo.py",
            "tests/store/test_runs.py",
            "-k",
            "only_if_due_claims or two_stores_on_one or batch_is_stored",
            *args,
        ],
        cwd=REPO,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_a_server_the_mongo_tests_skip_in_one_line_and_fail_in_ci() -> None:
    done = _pytest_without_a_server()
    assert done.returncode == 0, done.stdout
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped == [f"SKIPPED [3] tests/conftest.py:{_skip_line()}: {NO_SERVER}"]
    assert "real MongoDB server tests (none: MONGODB_TEST_URI is not set): 3 skipped" in (
        done.stdout
    )
    assert _counts(done) == {"passed": 1, "skipped": 3}

    in_ci = _pytest_without_a_server(CI="true")
    assert in_ci.returncode == 1, in_ci.stdout
    assert in_ci.stdout.count(f"CI must run this test on a real server: {NO_SERVER}") == 3
    assert _counts(in_ci) == {"passed": 1, "errors": 3}


def _counts(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """pytest's closing line as {outcome: count}, its time and the deselected left out."""
    closing = done.stdout.splitlines()[-1].split(" in ")[0]
    counts = {word: int(count) for count, word in (part.split() for part in closing.split(", "))}
    counts.pop("deselected", None)
    return counts


def _skip_line() -> int:
    """The line of tests/conftest.py that skips them."""
    lines = (REPO / "tests" / "conftest.py").read_text().splitlines()
    return 1 + next(n for n, line in enumerate(lines) if "pytest.skip(NO_SERVER)" in line)
