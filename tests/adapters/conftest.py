"""The HTTP server and the sidecar client run in core as it runs: the engine tests' fixtures
(`open_core` against the fake sidecar over real HTTP, SQLite on disk, a FakeClock)."""

from __future__ import annotations

from tests.engine.conftest import (  # noqa: F401 (fixtures, found by pytest by name)
    clock,
    core,
    database_url,
    notifier,
    sidecar,
    start_core,
)
