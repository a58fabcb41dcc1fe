"""What only the SQLite store has to show: its file, its pragmas, and two processes on one file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.adapters.store import open_store
from core.adapters.store.sqlite import SCHEMA_VERSION, SQLiteStore
from core.domain.errors import ConfigError, DuplicateRun, StoreError
from core.domain.models import RunTrigger
from tests.store.factories import OWNER, T0, add_deliveries, add_schedule


async def test_relative_url_creates_the_directory_under_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///data/wasched.db")
    try:
        await store.set_value("k", "v")
    finally:
        await store.close()
    assert (tmp_path / "data" / "wasched.db").is_file()


async def test_absolute_url_and_reopening_keep_the_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'wasched.db'}"
    assert url.startswith("sqlite:////")
    first = await SQLiteStore.open(url)
    schedule = await add_schedule(first)
    await first.close()
    second = await SQLiteStore.open(url)
    try:
        assert await second.get_schedule(schedule.id) == schedule
    finally:
        await second.close()


async def test_in_memory_database_works() -> None:
    store = await SQLiteStore.open("sqlite:///:memory:")
    try:
        assert await store.is_empty()
        await add_schedule(store)
        assert not await store.is_empty()
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["sqlite://data.db", "sqlite:///", "postgres:///x"])
async def test_malformed_urls_are_refused_with_an_example(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///"):
        await SQLiteStore.open(url)


async def test_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "wasched.db"
    store = await SQLiteStore.open(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()


async def test_a_file_from_a_newer_wasched_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wasched.db"
    store = await SQLiteStore.open(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(StoreError, match="upgrade wasched"):
        await SQLiteStore.open(f"sqlite:///{path}")


def _plan(path: Path, sql: str, params: tuple[object, ...]) -> str:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    finally:
        db.close()
    return " | ".join(str(row[-1]) for row in rows)


async def test_hot_queries_walk_an_index_not_the_table(tmp_path: Path) -> None:
    path = tmp_path / "wasched.db"
    store = await SQLiteStore.open(f"sqlite:///{path}")
    await store.close()
    now = "2026-11-28T10:00:00.000+00:00"
    due = _plan(
        path,
        "SELECT * FROM schedules WHERE state = 'active' AND next_run_at <= ?"
        " ORDER BY next_run_at, id LIMIT ?",
        (now, 10),
    )
    assert "USING INDEX schedules_due" in due and "TEMP B-TREE" not in due
    next_due = _plan(
        path,
        "SELECT next_run_at FROM schedules WHERE state = 'active' AND next_run_at IS NOT NULL"
        " ORDER BY next_run_at LIMIT 1",
        (),
    )
    assert "schedules_due" in next_due and "TEMP B-TREE" not in next_due
    claim = _plan(
        path,
        "SELECT id FROM deliveries WHERE status = 'queued' AND next_attempt_at <= ?"
        " ORDER BY next_attempt_at, id LIMIT 1",
        (now,),
    )
    assert "deliveries_due" in claim and "TEMP B-TREE" not in claim
    lease = _plan(
        path,
        "SELECT id FROM deliveries WHERE status = 'sending' AND lease_until <= ?"
        " ORDER BY lease_until, id LIMIT 1",
        (now,),
    )
    assert "deliveries_lease" in lease and "TEMP B-TREE" not in lease


async def test_two_stores_on_one_file_never_share_a_claim_or_a_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wasched.db'}"
    one = await SQLiteStore.open(url)
    two = await SQLiteStore.open(url)
    try:
        schedule = await add_schedule(one)
        await add_deliveries(one, 40, now=T0)

        async def insert(store: SQLiteStore) -> bool:
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
        assert len(await two.list_runs(schedule_id=schedule.id)) == 1

        claims = await asyncio.gather(
            *(
                store.claim_delivery(now=T0, lease_s=60, worker=f"{name}-{n}")
                for n in range(30)
                for name, store in (("one", one), ("two", two))
            )
        )
        ids = [d.id for d in claims if d is not None]
        assert len(ids) == 40
        assert len(set(ids)) == 40
        assert {d.lease_owner.split("-")[0] for d in claims if d and d.lease_owner} == {
            "one",
            "two",
        }
        assert await one.claim_delivery(now=T0, lease_s=60, worker="late") is None
    finally:
        await one.close()
        await two.close()


async def test_two_stores_on_one_file_never_share_a_batched_claim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wasched.db'}"
    one = await SQLiteStore.open(url)
    two = await SQLiteStore.open(url)
    try:
        await add_deliveries(one, 100, now=T0)
        claims = await asyncio.gather(
            *(
                store.claim_deliveries(now=T0, lease_s=60, worker=f"{name}-{n}", limit=7)
                for n in range(10)
                for name, store in (("one", one), ("two", two))
            )
        )
        claimed = [d for claim in claims for d in claim]
        assert len(claimed) == 100
        assert len({d.id for d in claimed}) == 100
        assert {d.lease_owner.split("-")[0] for d in claimed if d.lease_owner} == {"one", "two"}
        assert await two.claim_deliveries(now=T0, lease_s=60, worker="late", limit=7) == []
    finally:
        await one.close()
        await two.close()


# One process of `test_processes_on_one_file_...`: insert the occurrence's run, then claim
# until nothing is left; print what it got as JSON.
_WORKER = """
import asyncio, json, sys
from datetime import datetime
from core.domain.errors import DuplicateRun
from core.domain.models import RunTrigger
from core.adapters.store.sqlite import SQLiteStore

async def main(url, name, schedule_id, now):
    store = await SQLiteStore.open(url)
    try:
        try:
            await store.insert_run(schedule_id=schedule_id, owner_id=1, scheduled_for=now,
                                   trigger=RunTrigger.schedule)
            inserted = True
        except DuplicateRun:
            inserted = False
        claimed = []
        while (d := await store.claim_delivery(now=now, lease_s=60, worker=name)) is not None:
            claimed.append(d.id)
    finally:
        await store.close()
    print(json.dumps({"inserted": inserted, "claimed": claimed}))

url, name, schedule_id, now = sys.argv[1:]
asyncio.run(main(url, name, int(schedule_id), datetime.fromisoformat(now)))
"""


def test_processes_on_one_file_never_share_a_claim_or_a_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wasched.db'}"

    async def prepare() -> int:
        store = await SQLiteStore.open(url)
        try:
            schedule = await add_schedule(store)
            await add_deliveries(store, 300, now=T0)
            return schedule.id
        finally:
            await store.close()

    schedule_id = asyncio.run(prepare())
    repo = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, f"p{n}", str(schedule_id), T0.isoformat()],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    assert [r["inserted"] for r in results].count(True) == 1
    claimed = [delivery_id for r in results for delivery_id in r["claimed"]]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300
