"""`wasched migrate`: every record moves between stores with ids and history intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.commands.migrate import copy_store, migrate, redact_url, summary
from core.domain.errors import ConfigError, TargetNotEmpty
from core.domain.models import DeliveryStatus
from tests.deploy.conftest import fill
from tests.store.conftest import backend_store


@pytest.mark.mongo
async def test_sqlite_to_mongodb_and_back_keeps_every_record_identical(
    sqlite_store: Store, tmp_path: Path
) -> None:
    await fill(sqlite_store)
    original = await sqlite_store.export_all()

    async with backend_store("mongo", tmp_path) as mongo:
        back = await SQLiteStore.open(f"sqlite:///{tmp_path / 'back.db'}")
        try:
            counts = await copy_store(sqlite_store, mongo)
            assert await mongo.export_all() == original
            await copy_store(mongo, back)
            assert await back.export_all() == original
        finally:
            await back.close()

    assert (counts["contacts"], counts["schedules"]) == (2, 3)
    assert counts["deliveries"] == len(DeliveryStatus)  # `fill` stores one in each status


async def test_copied_store_reads_the_same_and_continues_ids_after_the_old_ones(
    sqlite_store: Store, tmp_path: Path
) -> None:
    await fill(sqlite_store)
    target = await SQLiteStore.open(f"sqlite:///{tmp_path / 'target.db'}")
    try:
        await copy_store(sqlite_store, target)
        assert await target.list_contacts() == await sqlite_store.list_contacts()
        assert await target.list_schedules() == await sqlite_store.list_schedules()
        assert await target.count_deliveries() == await sqlite_store.count_deliveries()
        assert await target.get_value("owner_code") == "used"
        assert (await target.get_user(4242)) == (await sqlite_store.get_user(4242))

        # "Gone" (id 2) was deleted in the source: its id is not handed out again.
        source_next = await sqlite_store.add_contact("Carla", "+4915122222222")
        target_next = await target.add_contact("Carla", "+4915122222222")
        assert target_next.id == source_next.id == 4
    finally:
        await target.close()


async def test_migrate_refuses_a_target_that_holds_data(
    sqlite_store: Store, tmp_path: Path
) -> None:
    await fill(sqlite_store)
    target = await SQLiteStore.open(f"sqlite:///{tmp_path / 'target.db'}")
    try:
        await target.add_template("Mine", "keep me")
        with pytest.raises(TargetNotEmpty):
            await copy_store(sqlite_store, target)
        assert [t.name for t in await target.list_templates()] == ["Mine"]
    finally:
        await target.close()


async def test_migrate_by_url_copies_between_two_sqlite_files(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'a.db'}"
    target_url = f"sqlite:///{tmp_path / 'b.db'}"
    source = await SQLiteStore.open(source_url)
    try:
        await fill(source)
    finally:
        await source.close()

    counts = await migrate(source_url, target_url)

    target = await SQLiteStore.open(target_url)
    try:
        assert (await target.count_deliveries())[DeliveryStatus.held] == 1
    finally:
        await target.close()
    assert counts["runs"] == 2
    assert "Copied to sqlite:///" in summary(counts, target_url)


async def test_migrate_refuses_the_database_in_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(ConfigError, match="--to names the database"):
        await migrate(url, url + "/")


def test_summary_never_shows_a_password() -> None:
    assert redact_url("mongodb://ann:s3cret@db:27017/w") == "mongodb://ann:***@db:27017/w"
    assert "s3cret" not in summary({"contacts": 1}, "mongodb://ann:s3cret@db/w")
