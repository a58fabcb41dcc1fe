"""A database wasched cannot write stops `wasched run` and `python -m core` at start-up in one
line (where, why, what to do), and `wasched check` names it, instead of starting and failing
every write later. Read-only and full are made for real (tests.engine.disk)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.adapters.store.sqlite import SQLiteStore
from core.app import located
from core.config import Settings
from core.domain.errors import StoreNotWritable
from tests.engine.disk import fill, read_only, small_disk
from tests.fakes.sidecar import free_port
from tests.store.conftest import REAL_MONGO, backend_store

# (why, what to do) as wasched says them.
READ_ONLY = (
    "the database is read-only (attempt to write a readonly database)",
    "make the file and its directory writable by the user that runs wasched, "
    "or set DATABASE_URL to a writable place",
)
# SQLite cannot even make the -shm file of a WAL database on a full disk.
FULL = (
    "the database cannot make its shared-memory file: the disk is full (disk I/O error)",
    "free space on the disk that holds it",
)


@pytest.fixture(params=["read-only", "full"])
async def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Path]:
    """A wasched database (made by wasched) that cannot be written; what is wrong as the
    param says."""
    directory = tmp_path / "data"
    directory.mkdir()
    if request.param == "full":
        with small_disk(directory) as disk:
            path = disk / "wasched.db"
            await (await SQLiteStore.open(f"sqlite:///{path}")).close()
            filler = fill(disk)
            try:
                yield path
            finally:
                filler.unlink()
        return
    path = directory / "wasched.db"
    await (await SQLiteStore.open(f"sqlite:///{path}")).close()
    with read_only(path):
        yield path


def expected(request: pytest.FixtureRequest) -> tuple[str, str]:
    return READ_ONLY if "read-only" in request.node.callspec.id else FULL


def run(cwd: Path, database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in a fresh process with only wasched's test settings."""
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        TELEGRAM_BOT_TOKEN="123456:unwritable-database-test",
        # Nothing listens on these: Telegram and the sidecar are not what is tested.
        TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
        WHATSAPP_URL=f"http://127.0.0.1:{free_port()}",
        HTTP_PORT=str(free_port()),
        WHATSAPP_API_KEY="unwritable-database-test-key",
    )
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize("command", [["-m", "bot", "run"], ["-m", "core"]], ids=["run", "core"])
def test_start_up_refuses_a_database_it_cannot_write_in_one_line(
    command: list[str], unwritable: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    done = run(tmp_path, unwritable, *command)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    reason, fix = expected(request)
    assert last == f"wasched: {unwritable}: {reason}: {fix}"
    assert "core listening" not in done.stderr


def test_check_names_the_database_it_cannot_write_and_the_fix(
    unwritable: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    done = run(tmp_path, unwritable, "-m", "bot", "check")

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    (row,) = [i for i, line in enumerate(lines) if line.startswith("database")]
    reason, fix = expected(request)
    assert lines[row].split() == ["database", "FAIL", f"sqlite:///{unwritable}:", *reason.split()]
    assert lines[row + 1].split() == ["fix:", *fix.split()]


@pytest.mark.parametrize("kind", ["sqlite", REAL_MONGO])
async def test_the_write_check_leaves_an_empty_database_empty_for_a_migration(
    kind: str, tmp_path: Path
) -> None:
    async with backend_store(kind, tmp_path) as store:
        await store.check_writes()
        await store.check_writes()
        assert await store.is_empty()
        exported = await store.export_all()
        assert not any(exported.get(name) for name in ("users", "schedules", "values"))


def test_a_mongodb_url_is_named_without_its_credentials() -> None:
    error = located(
        StoreNotWritable("the database does not take writes (not primary)", "fix it"),
        "mongodb://wasched:s3cret@db.example:27017/wasched",
    )
    assert str(error) == (
        "mongodb://wasched:***@db.example:27017/wasched: "
        "the database does not take writes (not primary): fix it"
    )


def test_a_directory_that_takes_no_new_file_is_refused_in_one_line_with_the_fix(
    tmp_path: Path,
) -> None:
    """The directory exists but the database file cannot be made in it (another user's
    directory; here a read-only mount): a refusal with the fix, not 'cannot create the
    directory'."""
    directory = tmp_path / "data"
    directory.mkdir()
    database = directory / "wasched.db"
    with read_only(directory):
        done = run(tmp_path, database, "-m", "core")

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"wasched: {database}: the database file cannot be created in its ")
    assert last.endswith(
        ": make its directory writable by the user that runs wasched, or set DATABASE_URL to a "
        "writable place"
    )
    assert not database.exists()
