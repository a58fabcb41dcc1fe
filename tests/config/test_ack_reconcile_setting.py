"""ACK_RECONCILE_WINDOW_S: how far back lost acks are asked for; 0 turns it off."""

from __future__ import annotations

import pytest

from core.config import FIXES, Settings, load_settings
from core.domain.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def test_lost_acks_are_asked_for_over_two_days_unless_set() -> None:
    assert load_settings(_env_file=None).ACK_RECONCILE_WINDOW_S == 2 * 86400


@pytest.mark.parametrize("value", ["-1", "two days", "1.5", ""])
def test_a_bad_window_stops_start_up_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACK_RECONCILE_WINDOW_S", value)
    with pytest.raises(ConfigError) as error:
        load_settings(_env_file=None)
    message = str(error.value)
    assert message == f"ACK_RECONCILE_WINDOW_S is malformed: {FIXES['ACK_RECONCILE_WINDOW_S']}"
    assert "0 turns it off" in message
