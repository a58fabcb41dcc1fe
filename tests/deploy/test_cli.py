"""The admin subcommands through the `wasched` entry point: status, check, migrate."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.commands.legacy import choose_owner
from core.commands.status import next_run_line
from core.domain.models import DeliveryStatus, Recipient, RecipientKind, Rule, RuleKind
from tests.deploy.conftest import fill
from tests.fakes.sidecar import FakeSidecar, free_port


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Settings for a wasched whose data lives in tmp_path (nothing of the repo's .env)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'wasched.db'}")
    monkeypatch.setenv("WASCHED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HTTP_PORT", str(free_port()))
    monkeypatch.setenv("WHATSAPP_API_KEY", "cli-test-key-0123456789")
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.fixture
async def sidecar(env: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key="cli-test-key-0123456789", state="SCAN_QR_CODE")
    await fake.start()
    monkeypatch.setenv("WHATSAPP_URL", fake.url)
    try:
        yield fake
    finally:
        await fake.close()


async def filled(url: str) -> None:
    store = await SQLiteStore.open(url)
    try:
        await fill(store)
    finally:
        await store.close()


async def test_status_shows_processes_whatsapp_state_and_next_run(
    env: Path, sidecar: FakeSidecar, capsys: pytest.CaptureFixture[str]
) -> None:
    await filled(os.environ["DATABASE_URL"])

    code = await asyncio.to_thread(main, ["status"])

    out = capsys.readouterr().out
    assert code == 3  # wasched itself is not running
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert "not running" in rows["wasched"]
    assert "running (not started by deploy/start.sh)" in rows["whatsapp"]
    assert "WhatsApp SCAN_QR_CODE (fake engine)" in rows["whatsapp"]
    assert "why: WhatsApp is not linked" in rows["why:"]
    assert "fix: Send /link to the bot" in rows["fix:"]
    assert "#1 at 2026-11-30 11:00 Europe/Berlin" in rows["next"]
    assert "1 active, 1 paused, 1 done" in rows["schedules"]


async def test_status_says_why_whatsapp_fails_and_what_to_do(
    env: Path, sidecar: FakeSidecar, capsys: pytest.CaptureFixture[str]
) -> None:
    await sidecar.set_state("FAILED", failure="whatsapp_web_unreachable", announce=False)

    await asyncio.to_thread(main, ["status"])

    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "WhatsApp FAILED (fake engine)" in rows["whatsapp"]
    assert "why: This server cannot reach WhatsApp Web" in rows["why:"]
    assert "net::ERR_NAME_NOT_RESOLVED" in rows["why:"]  # the sidecar's own words
    assert "fix: Check the server's internet connection and DNS" in rows["fix:"]
    assert "deploy/stop.sh" not in rows["fix:"] and "/link" not in rows["fix:"]


async def test_migrate_command_copies_and_says_how_to_switch(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await filled(os.environ["DATABASE_URL"])
    target = f"sqlite:///{env / 'moved.db'}"

    code = await asyncio.to_thread(main, ["migrate", "--to", target])

    out = capsys.readouterr().out
    assert code == 0
    # `fill` stores one delivery in each status.
    assert "  schedules: 3" in out and f"  deliveries: {len(DeliveryStatus)}" in out
    assert "Set DATABASE_URL to the new URL" in out
    moved = await SQLiteStore.open(target)
    try:
        assert len(await moved.list_schedules()) == 3
    finally:
        await moved.close()


async def test_migrate_command_refuses_while_wasched_runs_and_into_a_full_target(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await filled(os.environ["DATABASE_URL"])
    pid_file = env / "data" / "wasched.pid"
    pid_file.write_text(str(os.getpid()))

    assert await asyncio.to_thread(main, ["migrate", "--to", f"sqlite:///{env / 'b.db'}"]) == 1
    err = capsys.readouterr().err
    assert "stop it first" in err
    assert not err.startswith("wasched: wasched"), err

    pid_file.unlink()
    assert await asyncio.to_thread(main, ["migrate", "--to", os.environ["DATABASE_URL"]]) == 1
    assert "--to names the database" in capsys.readouterr().err

    full = f"sqlite:///{env / 'full.db'}"
    await filled(full)
    assert await asyncio.to_thread(main, ["migrate", "--to", full]) == 1
    assert "already holds data" in capsys.readouterr().err


async def test_imports_belong_to_the_given_owner_else_the_bot_owner_else_an_admin(
    sqlite_store: Store,
) -> None:
    assert await choose_owner(sqlite_store, frozenset({9, 5}), None) == 5
    assert await choose_owner(sqlite_store, frozenset(), 77) == 77
    await sqlite_store.upsert_user(4242, is_owner=True)
    assert await choose_owner(sqlite_store, frozenset({5}), None) == 4242


def test_next_run_is_shown_in_the_schedule_time_zone() -> None:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    from core.domain.models import Schedule

    schedule = Schedule(
        id=12,
        owner_id=1,
        recipients=(Recipient(kind=RecipientKind.phone, address="+4915112345678"),),
        text="hi",
        rule=Rule(kind=RuleKind.cron, timezone="Asia/Tokyo", cron="0 9 * * *"),
        next_run_at=now + timedelta(minutes=30),
        created_at=now,
        updated_at=now,
    )
    assert next_run_line([schedule], now) == "#12 at 2026-11-28 19:30 Asia/Tokyo (in 30 min)"
    assert next_run_line([], now) == "nothing scheduled"
