"""One `store` fixture per backend, so every contract test runs against each of them.

- sqlite: a file in the test's tmp directory;
- mongo: MongoStore on the real server in MONGODB_TEST_URI (`bash scripts/test` starts FerretDB
  and mongo-java-server and runs these once on each), on a database of its own that is dropped
  afterwards. Marked `mongo`: without the variable tests/conftest.py skips them, in one line.

Where FerretDB differs from MongoDB in something the store relies on, the test that shows it
calls `expect_ferretdb_gap`: on FerretDB it is an expected failure, everywhere else it runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from core.adapters.store import Store
from core.adapters.store.mongo import MongoStore
from core.adapters.store.sqlite import SQLiteStore
from core.domain.errors import StoreError

MONGODB_TEST_URI = os.environ.get("MONGODB_TEST_URI")

# What FerretDB 1.24 does differently from MongoDB, in what the store relies on (README,
# "MongoDB").
FERRETDB_NOT_ATOMIC = (
    "FerretDB 1.x runs findAndModify and update as a read, then a write of the whole document "
    "by _id (FerretDB issue 2168), so concurrent conditional updates are not atomic: two claims "
    "can take the same delivery, two `$inc` id counters give two processes one id. MongoDB "
    "applies each one atomically."
)
FERRETDB_UPDATE_DUPLICATE = (
    "FerretDB 1.x answers an update that breaks a unique index with code 1 (InternalError), "
    "not 11000 (DuplicateKey) as MongoDB does; its inserts do answer 11000."
)
_server: dict[str, bool] = {}


async def is_ferretdb(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    """Whether the server is FerretDB (its buildInfo names its own features)."""
    if "ferretdb" not in _server:
        info = await client.admin.command("buildInfo")
        _server["ferretdb"] = "ferretdbFeatures" in info
    return _server["ferretdb"]


def expect_ferretdb_gap(request: pytest.FixtureRequest, backend: str, why: str) -> None:
    """Mark this test as failing on FerretDB for `why`. A gap that always shows (an error
    code) is strict: passing there fails too. A race (`FERRETDB_NOT_ATOMIC`) shows in most
    runs, not all, so passing there is allowed: CI must not depend on losing a race."""
    if backend == "mongo" and _server.get("ferretdb"):
        strict = why is not FERRETDB_NOT_ATOMIC
        # Only the failure that shows the gap is expected (a race: an assertion; the error
        # code: the untranslated StoreError instead of AlreadyExists); any other still fails.
        raises = AssertionError if why is FERRETDB_NOT_ATOMIC else StoreError
        request.applymarker(pytest.mark.xfail(reason=why, strict=strict, raises=raises))


@asynccontextmanager
async def real_mongo_url() -> AsyncIterator[str]:
    """A `mongodb://` URL of a fresh database on the server in MONGODB_TEST_URI, dropped after."""
    assert MONGODB_TEST_URI is not None
    name = f"wasched_test_{uuid.uuid4().hex[:12]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_TEST_URI)
    try:
        await is_ferretdb(client)
        head, _, options = MONGODB_TEST_URI.partition("?")
        scheme, _, rest = head.partition("://")
        hosts = rest.split("/", 1)[0]
        yield f"{scheme}://{hosts}/{name}" + (f"?{options}" if options else "")
    finally:
        await client.drop_database(name)
        await client.close()


# The real server's variant of a test (tests/conftest.py skips it when there is none).
REAL_MONGO = pytest.param("mongo", id="mongo", marks=pytest.mark.mongo)
# A store of each backend (`open_backend`), or a database URL for processes to share.
BACKENDS = [pytest.param("sqlite", id="sqlite"), REAL_MONGO]
SHARED_DATABASES = BACKENDS


@asynccontextmanager
async def database_url_of(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A `DATABASE_URL` for processes to share: a SQLite file, or a real MongoDB database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'wasched.db'}"
    else:
        async with real_mongo_url() as url:
            yield url


def backend_of(request: pytest.FixtureRequest, fixture: str = "store") -> str:
    return str(request.node.callspec.params.get(fixture, ""))


async def open_backend(backend: str, tmp_path: Path) -> AsyncGenerator[Store, None]:
    """Yield an empty store of that backend once; clean up after (`async for` over it)."""
    if backend == "sqlite":
        sqlite = await SQLiteStore.open(f"sqlite:///{tmp_path / 'wasched.db'}")
        try:
            yield sqlite
        finally:
            await sqlite.close()
    elif backend == "mongo":
        assert MONGODB_TEST_URI is not None
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_TEST_URI)
        name = f"wasched_test_{uuid.uuid4().hex[:12]}"
        try:
            await is_ferretdb(client)
            yield await MongoStore.from_database(client[name])
        finally:
            await client.drop_database(name)
            await client.close()
    else:
        raise AssertionError(backend)


@asynccontextmanager
async def backend_store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """`open_backend` as a context manager: cleaned up on leaving, even by an exception."""
    stores = open_backend(backend, tmp_path)
    try:
        yield await anext(stores)
    finally:
        await stores.aclose()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with backend_store(request.param, tmp_path) as opened:
        yield opened
