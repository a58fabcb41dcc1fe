"""WHATSAPP_API_KEY: core never runs without it, and refuses events that do not carry it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from aiohttp.test_utils import make_mocked_request

from core.adapters.health import StoreHealth
from core.adapters.http import CoreHttp, EventSink, HealthPort, SchedulerStatus
from core.adapters.store import Store
from core.app import open_core
from core.domain.clock import FakeClock
from core.domain.errors import ConfigError
from tests.engine.conftest import START, RecordingNotifier, settings_for
from tests.fakes.sidecar import FakeSidecar

# What a local user could post to make the owner believe WhatsApp logged out.
FORGED = {
    "event": "session.status",
    "payload": {"state": "FAILED", "failure": {"code": "logged_out", "message": "forged"}},
    "timestamp": 1,
}


@pytest.fixture
async def sidecar() -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar(api_key="the-real-key-0123456789")
    await fake.start()
    yield fake
    await fake.close()


async def test_core_does_not_start_without_a_key(tmp_path: Path, sidecar: FakeSidecar) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'w.db'}", sidecar, WHATSAPP_API_KEY="")
    with pytest.raises(ConfigError, match=r"^WHATSAPP_API_KEY is missing: put WHATSAPP_API_KEY="):
        async with open_core(settings, notifier=RecordingNotifier(), clock=FakeClock(START)):
            pass
    assert not (tmp_path / "w.db").exists()


async def test_a_forged_event_without_the_key_is_refused(
    tmp_path: Path, sidecar: FakeSidecar
) -> None:
    notifier = RecordingNotifier()
    settings = settings_for(f"sqlite:///{tmp_path / 'w.db'}", sidecar)
    async with (
        open_core(settings, notifier=notifier, clock=FakeClock(START)) as core,
        httpx.AsyncClient() as client,
    ):
        url = f"{core.url}/whatsapp/events"
        for headers in ({}, {"X-Api-Key": ""}, {"X-Api-Key": "guessed"}):
            answer = await client.post(url, json=FORGED, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.json()["error"]["code"] == "unauthorized"
        await core.http.notified()
        assert notifier.sessions == []
        # The same event with the key is taken: the refusal above was the key's doing.
        answer = await client.post(url, json=FORGED, headers={"X-Api-Key": sidecar.api_key})
        assert answer.status_code == 200
        await core.http.notified()
        assert [state for state, _ in notifier.sessions] == ["FAILED"]


async def test_core_http_without_a_key_configured_refuses_every_event() -> None:
    """Belt and braces behind open_core's refusal: no key configured is no event taken."""
    notifier = RecordingNotifier()
    http = CoreHttp(
        store=cast(Store, None),
        engine=cast(SchedulerStatus, None),
        sender=cast(EventSink, None),
        notifier=notifier,
        whatsapp=cast(HealthPort, None),
        store_health=cast(StoreHealth, None),
        api_key="",
    )
    for headers in ({}, {"X-Api-Key": ""}):
        request = make_mocked_request("POST", "/whatsapp/events", headers=headers)
        answer = await http.events(request)
        assert answer.status == 401
    assert notifier.sessions == []
