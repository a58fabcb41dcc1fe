"""/status says whether the database takes writes, and why not (a read-only file for real,
see tests.engine.disk)."""

from __future__ import annotations

from pathlib import Path

from core.adapters.health import StoreHealth
from core.adapters.store.sqlite import SQLiteStore
from tests.bot.conftest import ADMIN, Harness
from tests.engine.disk import read_only


async def ask_status(harness: Harness, health: StoreHealth) -> str:
    since = harness.telegram.cursor()
    await harness.telegram.send(ADMIN, "/status")
    await harness.feed(store_health=health)
    return (await harness.telegram.reply(ADMIN, "wasched status", since=since, within=5)).text


async def test_status_says_the_database_takes_writes(harness: Harness) -> None:
    text = await ask_status(harness, StoreHealth(harness.store, harness.clock))
    assert "Database: takes writes" in text


async def test_status_says_a_read_only_database_does_not_take_writes_and_why(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "wasched.db"
    with read_only(path):
        # What a core started before the file turned read-only would see.
        store = await SQLiteStore.open(f"sqlite:///{path}")
        try:
            text = await ask_status(harness, StoreHealth(store, harness.clock))
        finally:
            await store.close()
    assert "Database: ⚠️ does not take writes: the database is read-only" in text
    assert "make the file and its directory writable" in text
    assert "Runs due meanwhile go out once it takes writes again." in text
