"""Start-up of `wasched run`: a wrong token stops it in one line. (An unreachable Bot API does
not: tests/bot/test_telegram_down.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import run
from core.config import Settings
from core.domain.errors import ConfigError
from tests.fakes.telegram import FakeTelegram


def settings_for(tmp_path: Path, url: str, token: str) -> Settings:
    return Settings(
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_URL=url,
        TELEGRAM_ADMIN_IDS="1001",
        DATABASE_URL=f"sqlite:///{tmp_path / 'wasched.db'}",
    )


async def test_a_token_telegram_refuses_stops_start_up_naming_the_setting(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    wrong = "123456:WRONG-token-abcdefghijklmnopq"
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN was refused"):
        await run(settings_for(tmp_path, telegram.base_url, wrong))
    assert not (tmp_path / "wasched.db").exists()  # nothing started before the check
