"""One `store` fixture per backend, so every contract test runs against each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.store import Store
from core.store.sqlite import SQLiteStore

BACKENDS = [pytest.param("sqlite", id="sqlite")]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: str = request.param
    opened: Store
    if backend == "sqlite":
        opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 'wasched.db'}")
    else:
        raise AssertionError(backend)
    try:
        yield opened
    finally:
        await opened.close()
