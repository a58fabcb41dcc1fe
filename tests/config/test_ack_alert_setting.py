"""ACK_ALERT_AFTER_S: when a message not on the recipient's phone is told; 0 turns it off."""

from __future__ import annotations

import pytest

from core.config import FIXES, Settings, load_settings
from core.domain.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def test_the_alert_comes_after_ten_minutes_unless_set() -> None:
    assert load_settings(_env_file=None).ACK_ALERT_AFTER_S == 600


@pytest.mark.parametrize(("value", "seconds"), [("0", 0), ("60", 60), ("86400", 86400)])
def test_zero_and_any_whole_seconds_are_taken(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: int
) -> None:
    monkeypatch.setenv("ACK_ALERT_AFTER_S", value)
    assert seconds == load_settings(_env_file=None).ACK_ALERT_AFTER_S


@pytest.mark.parametrize("value", ["-1", "ten", "1.5", ""])
def test_a_bad_value_stops_start_up_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACK_ALERT_AFTER_S", value)
    with pytest.raises(ConfigError) as error:
        load_settings(_env_file=None)
    message = str(error.value)
    assert message == f"ACK_ALERT_AFTER_S is malformed: {FIXES['ACK_ALERT_AFTER_S']}"
    assert "0 turns it off" in message
