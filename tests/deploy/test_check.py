"""`wasched check`: one row per check, a fix under each failure, exit code 1 on any."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.commands.check import CheckResult, check_command, run_checks, table
from core.commands.status import sidecar_status
from core.config import Settings, load_settings
from tests.fakes.sidecar import FakeSidecar, free_port, scripted_sidecar
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuv"
API_KEY = "check-test-key-0123456789"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
async def sidecar() -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key=API_KEY)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


def settings_for(
    tmp_path: Path, telegram: FakeTelegram, sidecar_url: str, **overrides: str
) -> Settings:
    values = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'wasched.db'}",
        "WHATSAPP_URL": sidecar_url,
        "WHATSAPP_API_KEY": API_KEY,
    }
    values.update(overrides)
    return load_settings(**values)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


async def test_every_check_passes_with_a_working_setup(
    tmp_path: Path, telegram: FakeTelegram, sidecar: FakeSidecar
) -> None:
    results = await run_checks(settings_for(tmp_path, telegram, sidecar.url))

    assert [r.name for r in results] == ["settings", "database", "whatsapp", "telegram"]
    assert all(r.ok for r in results), table(results)
    rows = by_name(results)
    assert rows["telegram"].detail == "bot @wasched_test_bot"
    assert "state WORKING" in rows["whatsapp"].detail


async def test_each_failure_names_a_fix_and_never_shows_the_token(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    settings = settings_for(
        tmp_path,
        telegram,
        f"http://127.0.0.1:{free_port()}",
        TELEGRAM_BOT_TOKEN="999999:WRONG-token-abcdefghijklmnopqrs",
        DATABASE_URL="sqlite:////proc/no-such-dir/wasched.db",
    )

    results = by_name(await run_checks(settings))

    assert results["settings"].ok
    for name in ("database", "whatsapp", "telegram"):
        assert not results[name].ok and results[name].fix, name
    assert "cannot reach the sidecar" in results["whatsapp"].detail
    assert results["whatsapp"].fix.startswith("Start it (bash deploy/start.sh)")
    assert results["telegram"].detail == "Telegram rejected the bot token"
    assert "@BotFather" in results["telegram"].fix
    assert "WRONG-token" not in table(list(results.values()))


async def test_a_linked_session_is_ok_and_a_failed_one_is_not(
    tmp_path: Path, telegram: FakeTelegram, sidecar: FakeSidecar
) -> None:
    settings = settings_for(tmp_path, telegram, sidecar.url)
    await sidecar.set_state("SCAN_QR_CODE", announce=False)
    linked = by_name(await run_checks(settings))["whatsapp"]
    assert linked.ok and "Send /link to the bot" in linked.detail

    await sidecar.set_state("FAILED", announce=False)
    failed = by_name(await run_checks(settings))["whatsapp"]
    assert not failed.ok and "failed without saying why" in failed.detail
    assert "deploy/stop.sh && bash deploy/start.sh" in failed.fix


# code -> (the sidecar's state, in the detail, the fix), fix "" when the check passes.
REASONS = {
    "whatsapp_web_unreachable": (
        "FAILED",
        "cannot reach WhatsApp Web",
        "Check the server's internet connection and DNS",
    ),
    "chromium_missing": ("FAILED", "finds no Chromium browser", "set CHROMIUM_PATH in .env"),
    "chromium_failed": ("FAILED", "would not start or crashed", "See data/whatsapp.log"),
    "profile_locked": ("FAILED", "holds WhatsApp's profile", "WHATSAPP_DATA_DIR"),
    "never_ready": ("STARTING", "never finished loading", "restarts it by itself"),
    "page_broken": ("STARTING", "page broke", "restarts it by itself"),
    "logged_out": ("SCAN_QR_CODE", "logged this device out", ""),
    "auth_failure": ("FAILED", "refused the saved link", ""),
}


@pytest.mark.parametrize("code", sorted(REASONS))
async def test_the_whatsapp_row_names_the_sidecars_reason_and_its_fix(
    tmp_path: Path, telegram: FakeTelegram, sidecar: FakeSidecar, code: str
) -> None:
    state, reason, fix = REASONS[code]
    await sidecar.set_state(state, failure=code, announce=False)

    row = by_name(await run_checks(settings_for(tmp_path, telegram, sidecar.url)))["whatsapp"]

    assert reason in row.detail and f"state {state}" in row.detail
    assert sidecar.failure is not None and sidecar.failure["message"] in row.detail
    if fix:
        assert not row.ok and fix in row.fix
    else:  # linking is what helps: the setup itself is fit
        assert row.ok and "Send /link to the bot" in row.detail
    if code == "whatsapp_web_unreachable":
        assert "restart" not in row.fix.replace("no restart", "")


async def test_check_command_prints_the_table_and_exits_1_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HTTP_PORT", "eighty")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    assert await check_command() == 1

    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["settings", "FAIL"]
    assert "HTTP_PORT is malformed" in out[0]
    assert out[1].split()[0] == "fix:"
    assert [line.split()[0] for line in out[2:]] == ["database", "whatsapp", "telegram"]


async def test_check_command_exits_0_when_everything_answers(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    telegram: FakeTelegram,
    sidecar: FakeSidecar,
) -> None:
    for key, value in {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'wasched.db'}",
        "WHATSAPP_URL": sidecar.url,
        "WHATSAPP_API_KEY": API_KEY,
    }.items():
        monkeypatch.setenv(key, value)

    assert await check_command() == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["settings", "ok"],
        ["database", "ok"],
        ["whatsapp", "ok"],
        ["telegram", "ok"],
    ]


async def test_an_empty_api_key_fails_the_settings_row_with_the_fix(
    tmp_path: Path, telegram: FakeTelegram, sidecar: FakeSidecar
) -> None:
    results = await run_checks(settings_for(tmp_path, telegram, sidecar.url, WHATSAPP_API_KEY=""))
    settings = by_name(results)["settings"]
    assert not settings.ok
    assert settings.detail == "WHATSAPP_API_KEY is missing"
    assert "secrets.token_urlsafe(32)" in settings.fix


async def test_a_health_not_shaped_as_the_sidecars_is_refused_by_check_and_status(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    # WHATSAPP_URL pointing at another service that also has a /health (JSON, other fields).
    other = scripted_sidecar(lambda _: httpx.Response(200, json={"status": "ok"}))
    async with other as url, httpx.AsyncClient(timeout=5.0) as client:
        settings = settings_for(tmp_path, telegram, url)
        row = by_name(await run_checks(settings))["whatsapp"]
        status = await sidecar_status(settings, client)

    assert not row.ok
    assert "does not answer as the WhatsApp service does" in row.detail
    assert "WHATSAPP_URL" in row.fix
    assert status.answers
    assert status.detail == "answers, but not as the WhatsApp service does (check WHATSAPP_URL)"
