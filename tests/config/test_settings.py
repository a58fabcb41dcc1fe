"""Settings: a missing or malformed value stops start-up with one line that names it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import FIXES, Settings, load_settings
from core.domain.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def test_defaults_start_an_embedded_sqlite_install() -> None:
    settings = load_settings(_env_file=None)
    database_url = settings.DATABASE_URL
    assert database_url == f"sqlite:///{REPO / 'data' / 'wasched.db'}"
    assert settings.WHATSAPP_URL == "http://127.0.0.1:3001"
    assert (settings.HTTP_HOST, settings.HTTP_PORT) == ("127.0.0.1", 8001)
    assert settings.admin_ids == frozenset()


def test_admin_ids_are_read_as_integers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", " 12345, 67890 ,")
    assert load_settings(_env_file=None).admin_ids == frozenset({12345, 67890})


def test_settings_are_read_from_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DEFAULT_TIMEZONE=Europe/Berlin\nSEND_DAILY_CAP=50\n")
    settings = load_settings(_env_file=str(env_file))
    assert settings.DEFAULT_TIMEZONE == "Europe/Berlin"
    assert settings.SEND_DAILY_CAP == 50


def test_missing_bot_token_names_it_and_botfather() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigError) as error:
        settings.require_bot_token()
    assert "TELEGRAM_BOT_TOKEN" in str(error.value)
    assert "@BotFather" in str(error.value)


MALFORMED = [
    ("TELEGRAM_BOT_TOKEN", "not-a-token"),
    ("TELEGRAM_ADMIN_IDS", "alice,bob"),
    ("TELEGRAM_API_URL", "localhost:8081"),
    ("DATABASE_URL", "postgres://db/wasched"),
    ("DEFAULT_TIMEZONE", "Mars/Olympus"),
    ("HTTP_PORT", "99999"),
    ("HTTP_PORT", "eighty"),
    ("WHATSAPP_URL", "3001"),
    ("SEND_GAP_MIN_S", "-1"),
    ("SEND_HOURLY_CAP", "0"),
    ("SEND_DAILY_CAP", "many"),
    ("RETRY_MAX_ATTEMPTS", "0"),
    ("MISFIRE_GRACE_S", "-5"),
]


@pytest.mark.parametrize(("name", "value"), MALFORMED)
def test_malformed_setting_names_itself_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(_env_file=None)
    message = str(error.value)
    assert message.startswith(f"{name} is malformed")
    assert FIXES[name] in message
    assert "\n" not in message


def test_gap_max_below_gap_min_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEND_GAP_MIN_S", "30")
    monkeypatch.setenv("SEND_GAP_MAX_S", "10")
    with pytest.raises(ConfigError, match=r"^SEND_GAP_MAX_S is malformed"):
        load_settings(_env_file=None)


def test_every_setting_has_a_fix() -> None:
    assert set(FIXES) <= set(Settings.model_fields)
    for name in Settings.model_fields:
        assert name in FIXES, name


def test_wasched_help_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True
    )
    assert "run" in done.stdout


def run_wasched(cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`wasched run` in a fresh process with only `settings` set among wasched's own."""
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_wasched_run_with_a_malformed_setting_stops_with_one_line(tmp_path: Path) -> None:
    done = run_wasched(tmp_path, HTTP_PORT="eighty")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"wasched: HTTP_PORT is malformed: {FIXES['HTTP_PORT']}"]


def test_wasched_run_without_a_token_says_how_to_get_one(tmp_path: Path) -> None:
    done = run_wasched(tmp_path, TELEGRAM_BOT_TOKEN="")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("wasched: TELEGRAM_BOT_TOKEN is missing")


def test_an_empty_api_key_is_refused_with_what_to_put_in_env_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHATSAPP_API_KEY", "  ")
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigError) as error:
        settings.require_api_key()
    message = str(error.value)
    assert message.startswith("WHATSAPP_API_KEY is missing: put WHATSAPP_API_KEY=")
    assert "in .env" in message and "secrets.token_urlsafe(32)" in message
    assert "\n" not in message


def test_a_relative_sqlite_url_is_relative_to_the_repo_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///data/other.db")
    database_url = load_settings(_env_file=None).DATABASE_URL
    assert database_url == f"sqlite:///{REPO / 'data' / 'other.db'}"


def test_an_absolute_or_memory_sqlite_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("sqlite:////var/lib/wasched/w.db", "sqlite:///:memory:", "mongodb://db/wasched"):
        monkeypatch.setenv("DATABASE_URL", url)
        kept = load_settings(_env_file=None).DATABASE_URL
        assert kept == url


def test_without_database_url_the_database_lives_in_wasched_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WASCHED_DATA_DIR", str(tmp_path / "state"))
    database_url = load_settings(_env_file=None).DATABASE_URL
    assert database_url == f"sqlite:///{tmp_path / 'state' / 'wasched.db'}"
    monkeypatch.setenv("WASCHED_DATA_DIR", "var/wasched")
    data_dir = load_settings(_env_file=None).WASCHED_DATA_DIR
    assert data_dir == str(REPO / "var" / "wasched")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("", "", "http://127.0.0.1:3001"),
        ("10.0.0.5", "3101", "http://10.0.0.5:3101"),
        ("0.0.0.0", "3102", "http://127.0.0.1:3102"),
    ],
)
def test_an_empty_whatsapp_url_is_derived_from_the_sidecars_host_and_port(
    monkeypatch: pytest.MonkeyPatch, host: str, port: str, url: str
) -> None:
    monkeypatch.setenv("WHATSAPP_URL", "")
    monkeypatch.setenv("WHATSAPP_HOST", host)
    if port:
        monkeypatch.setenv("WHATSAPP_PORT", port)
    derived = load_settings(_env_file=None).WHATSAPP_URL
    assert derived == url


def test_a_set_whatsapp_url_wins_over_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_URL", "http://whatsapp:3001")
    monkeypatch.setenv("WHATSAPP_PORT", "3999")
    assert load_settings(_env_file=None).WHATSAPP_URL == "http://whatsapp:3001"
