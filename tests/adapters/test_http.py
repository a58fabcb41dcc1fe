"""core's HTTP server: sidecar events and the health check."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from core.app import Core
from tests.engine.conftest import CoreFactory, RecordingNotifier, eventually
from tests.fakes.sidecar import FakeSidecar


async def post(core: Core, body: Any, *, key: str | None = "test-key") -> tuple[int, Any]:
    headers = {"X-Api-Key": key} if key is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{core.url}/whatsapp/events", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def get(core: Core, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{core.url}{path}") as response:
        return response.status, await response.json()


async def test_events_need_the_api_key(core: Core) -> None:
    body = '{"event": "session.qr", "payload": {"qr": "x"}}'
    for key in (None, "wrong"):
        status, answer = await post(core, body, key=key)
        assert status == 401
        assert answer["error"]["code"] == "unauthorized"


async def test_malformed_and_unknown_events_are_refused(core: Core) -> None:
    assert (await post(core, "{not json"))[0] == 400
    assert (await post(core, "[1, 2]"))[0] == 400
    status, answer = await post(core, '{"event": "message.revoked", "payload": {}}')
    assert status == 400 and answer["error"]["code"] == "unknown_event"
    assert (await post(core, '{"event": "message.ack", "payload": {"id": 5}}'))[0] == 400


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ("{not json", "invalid_request", "the body is not JSON"),
        (b"\xff\xfe", "invalid_request", "the body is not JSON"),
        ("[1, 2]", "invalid_request", 'expected {"event", "payload", "timestamp"}'),
        ('{"payload": {}}', "invalid_request", 'expected {"event", "payload", "timestamp"}'),
        ('{"event": 5}', "invalid_request", 'expected {"event", "payload", "timestamp"}'),
        ('{"event": "message.revoked"}', "unknown_event", "unknown event 'message.revoked'"),
        (
            '{"event": "message.ack", "payload": {"id": 5}}',
            "invalid_request",
            "message.ack needs id and ack",
        ),
        (
            '{"event": "message.ack", "payload": {"id": "x", "ack": "2"}}',
            "invalid_request",
            "message.ack needs id and ack",
        ),
        (
            '{"event": "message.ack", "payload": "x"}',
            "invalid_request",
            "message.ack needs id and ack",
        ),
        ('{"event": "message.ack"}', "invalid_request", "message.ack needs id and ack"),
        (
            '{"event": "session.status", "payload": {}}',
            "invalid_request",
            "session.status needs state",
        ),
        (
            '{"event": "session.status", "payload": {"state": 1}}',
            "invalid_request",
            "session.status needs state",
        ),
        (
            '{"event": "session.qr", "payload": {"qr": ""}}',
            "invalid_request",
            "session.qr needs qr",
        ),
        ('{"event": "session.qr", "payload": null}', "invalid_request", "session.qr needs qr"),
    ],
)
async def test_each_malformed_event_is_told_what_was_expected(
    core: Core, body: str | bytes, code: str, message: str
) -> None:
    assert await post(core, body) == (400, {"error": {"code": code, "message": message}})


async def test_a_session_state_outside_the_contract_is_refused(
    core: Core, notifier: RecordingNotifier
) -> None:
    status, answer = await post(
        core, '{"event": "session.status", "payload": {"state": "SLEEPING", "me": null}}'
    )
    assert status == 400
    assert answer["error"] == {"code": "invalid_request", "message": "session.status needs state"}
    # An early sidecar named it `status`.
    status, _ = await post(core, '{"event": "session.status", "payload": {"status": "FAILED"}}')
    assert status == 200
    await eventually(lambda: notifier.sessions == [("FAILED", None)], what="the session event")


async def test_session_events_reach_the_notifier(core: Core, notifier: RecordingNotifier) -> None:
    status, _ = await post(core, '{"event": "session.qr", "payload": {"qr": "2@abc"}}')
    assert status == 200
    status, _ = await post(
        core, '{"event": "session.status", "payload": {"state": "SCAN_QR_CODE", "me": null}}'
    )
    assert status == 200
    await eventually(lambda: notifier.qrs == ["2@abc"], what="qr_available")
    await eventually(lambda: ("SCAN_QR_CODE", None) in notifier.sessions, what="session")
    assert core.sender.paused


async def test_an_ack_for_an_unknown_message_is_accepted(core: Core) -> None:
    status, answer = await post(core, '{"event": "message.ack", "payload": {"id": "x", "ack": 2}}')
    assert status == 200 and answer == {"ok": True, "known": False}


async def test_healthz_is_200_when_all_are_well_and_503_when_the_sidecar_is_down(
    core: Core, sidecar: FakeSidecar
) -> None:
    status, answer = await get(core, "/healthz")
    assert status == 200
    assert answer["ok"] is True
    assert answer["database"] == {"ok": True, "store": "ok"}
    assert answer["store"] == "ok"
    assert answer["scheduler"]["running"] is True
    assert answer["scheduler"]["jobs"] in (0, 1)
    assert answer["sidecar"]["state"] == "WORKING"

    await sidecar.go_down()
    status, answer = await get(core, "/healthz")
    assert status == 503
    assert answer["sidecar"]["reachable"] is False


async def test_healthz_is_503_while_whatsapp_is_not_linked(
    start_core: CoreFactory, sidecar: FakeSidecar
) -> None:
    sidecar.state = "SCAN_QR_CODE"
    core = await start_core()
    status, answer = await get(core, "/healthz")
    assert status == 503 and answer["sidecar"]["state"] == "SCAN_QR_CODE"


async def test_metrics_are_served_on_the_same_server(core: Core) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{core.url}/metrics") as response,
    ):
        assert response.status == 200
        assert "wasched_deliveries" in await response.text()
