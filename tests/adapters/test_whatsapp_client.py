"""The sidecar client translates the contract's answers into typed results and errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from core.adapters.sidecar_contract import SIDECAR_EVENT
from core.adapters.whatsapp import WhatsAppClient
from core.domain.errors import (
    NotOnWhatsApp,
    WhatsAppError,
    WhatsAppNotReady,
    WhatsAppReachOutLimited,
    WhatsAppRequestRejected,
    WhatsAppSendFailed,
    WhatsAppUnavailable,
)
from core.domain.models import Media
from core.domain.session import SessionFailure
from tests.fakes.sidecar import FakeSidecar, Script, free_port, scripted_sidecar


@contextlib.asynccontextmanager
async def client(
    handler: Script,
    api_key: str = "",
    timeout: float = 30.0,  # noqa: ASYNC109
) -> AsyncIterator[WhatsAppClient]:
    """The real client against a sidecar over HTTP that answers what `handler` says."""
    async with scripted_sidecar(handler) as url:
        wa = WhatsAppClient(url + "/", api_key, timeout=timeout)
        try:
            yield wa
        finally:
            await wa.aclose()


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": f"said {code}"}})


async def test_send_posts_the_contract_body_with_key_and_api_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={
                "id": "true_1@c.us_A",
                "to": "+15550001",
                "timestamp": "2025-11-28T08:53:20.000Z",
                "duplicate": False,
            },
        )

    media = Media(mimetype="image/png", filename="a.png", data_base64="AAA=")
    async with client(handler, api_key="k3y") as wa:
        sent = await wa.send("+15550001", "hi", idempotency_key="run1:+15550001", media=media)

    assert sent.id == "true_1@c.us_A"
    assert sent.duplicate is False
    assert sent.timestamp is not None and sent.timestamp.year == 2025
    request = seen[0]
    assert request.method == "POST" and request.url.path == "/messages"
    assert request.headers["X-Api-Key"] == "k3y"
    assert json.loads(request.content) == {
        "to": "+15550001",
        "text": "hi",
        "idempotency_key": "run1:+15550001",
        "media": {"mimetype": "image/png", "filename": "a.png", "data_base64": "AAA="},
    }


async def test_send_reports_a_duplicate_key() -> None:
    async with client(
        lambda r: httpx.Response(
            201,
            json={"id": "m1", "to": "+1", "timestamp": "2026-11-28T10:00:00Z", "duplicate": True},
        )
    ) as wa:
        sent = await wa.send("+1", "x", idempotency_key="k")
    assert sent.duplicate is True
    assert sent.timestamp is not None and sent.timestamp.hour == 10


async def test_no_api_key_header_when_none_is_set() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "status": "ok",
                "engine": "fake",
                "state": "WORKING",
                "me": {"id": "1@c.us", "name": "Me"},
            },
        )

    async with client(handler) as wa:
        health = await wa.health()
    assert "X-Api-Key" not in seen[0].headers
    assert (
        health.working and health.engine == "fake" and health.me == {"id": "1@c.us", "name": "Me"}
    )


@pytest.mark.parametrize(
    ("response", "kind", "code", "transient"),
    [
        (error(409, "not_ready"), WhatsAppNotReady, "not_ready", True),
        (error(404, "not_on_whatsapp"), NotOnWhatsApp, "not_on_whatsapp", False),
        (error(403, "reachout_limited"), WhatsAppReachOutLimited, "reachout_limited", False),
        (error(400, "invalid_request"), WhatsAppRequestRejected, "invalid_request", False),
        (error(401, "unauthorized"), WhatsAppRequestRejected, "unauthorized", False),
        (error(502, "send_failed"), WhatsAppSendFailed, "send_failed", True),
        (error(503, "whatever"), WhatsAppUnavailable, "unavailable", True),
        (httpx.Response(500, text="boom"), WhatsAppUnavailable, "unavailable", True),
        (httpx.Response(502, text="bad gateway"), WhatsAppUnavailable, "unavailable", True),
    ],
)
async def test_send_errors_are_translated_by_status_and_code(
    response: httpx.Response, kind: type[WhatsAppError], code: str, transient: bool
) -> None:
    async with client(lambda r: response) as wa:
        with pytest.raises(kind) as caught:
            await wa.send("+15550001", "hi", idempotency_key="k")
    assert caught.value.code == code
    assert caught.value.transient is transient
    assert str(caught.value)


async def test_connection_refused_and_timeout_are_unavailable() -> None:
    nobody = WhatsAppClient(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(WhatsAppUnavailable) as refused:
        await nobody.send("+1", "x", idempotency_key="k")
    await nobody.aclose()
    assert refused.value.transient and "cannot be reached" in str(refused.value)

    never = asyncio.Event()

    async def silent(request: httpx.Request) -> httpx.Response:
        await never.wait()  # no answer before the client gives up
        return httpx.Response(500)

    async with client(silent, timeout=0.2) as wa:
        with pytest.raises(WhatsAppUnavailable) as slow:
            await wa.send("+1", "x", idempotency_key="k")
        never.set()
    assert slow.value.transient and "did not answer in time" in str(slow.value)


async def test_session_routes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/session/qr":
            return httpx.Response(200, json={"qr": "2@raw", "png_base64": "iVBO"})
        if path == "/session/pairing-code":
            assert json.loads(request.content) == {"phone": "15550001"}
            return httpx.Response(200, json={"code": "ABCD-1234"})
        if path == "/session/logout":
            return httpx.Response(204)
        if path == "/messages/m1":
            return httpx.Response(200, json={"id": "m1", "ack": 3})
        if path == "/contacts":
            return httpx.Response(200, json=[{"id": "1@c.us", "name": "Ada", "number": "1"}])
        if path == "/groups":
            return httpx.Response(
                200, json=[{"id": "9@g.us", "name": "Fam", "participants": ["1@c.us"]}]
            )
        return error(404, "not_found")

    async with client(handler) as wa:
        assert (await wa.qr()).qr == "2@raw"
        assert await wa.pairing_code("15550001") == "ABCD-1234"
        await wa.logout()
        assert await wa.message_ack("m1") == 3
        assert (await wa.contacts())[0].number == "1"
        assert (await wa.groups())[0].participants == ("1@c.us",)
        with pytest.raises(WhatsAppRequestRejected):
            await wa.message_ack("nope")


async def test_message_acks_asks_many_in_one_request_and_an_older_sidecar_says_not_found() -> None:
    asked: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/messages/acks")
        asked.append(json.loads(request.content))
        acks = [
            {"id": "m1", "ack": 3},
            {"id": "m2", "ack": None},
            {"id": "m3", "ack": True},  # not an ack: unknown
            {"ack": 2},
        ]
        return httpx.Response(200, json={"acks": acks})

    async with client(handler) as wa:
        assert await wa.message_acks(["m1", "m2", "m3"]) == {"m1": 3, "m2": None, "m3": None}
    assert asked == [{"ids": ["m1", "m2", "m3"]}]

    async with client(lambda request: error(404, "not_found")) as older:
        with pytest.raises(WhatsAppRequestRejected) as refused:
            await older.message_acks(["m1"])
    assert refused.value.code == "not_found"


async def test_health_carries_why_the_session_does_not_work() -> None:
    answers = iter(
        [
            {
                "status": "ok",
                "engine": "wwebjs",
                "state": "FAILED",
                "me": None,
                "failure": {
                    "code": "whatsapp_web_unreachable",
                    "message": "net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/",
                    "since": "2026-12-01T20:00:00.000Z",
                },
            },
            {
                "status": "ok",
                "engine": "wwebjs",
                "state": "WORKING",
                "me": {"id": "1@c.us", "name": "Ada"},
                "failure": None,
            },
            # A sidecar from before `failure` existed.
            {"status": "ok", "engine": "fake", "state": "STARTING", "me": None},
        ]
    )
    async with client(lambda request: httpx.Response(200, json=next(answers))) as wa:
        failing = await wa.health()
        assert failing.failure == SessionFailure(
            code="whatsapp_web_unreachable",
            message="net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/",
            since=datetime(2026, 12, 1, 20, 0, tzinfo=UTC),
        )
        assert (await wa.health()).failure is None
        assert (await wa.health()).failure is None


async def test_qr_outside_scan_state_is_not_ready() -> None:
    async with client(lambda r: error(409, "not_scanning")) as wa:
        with pytest.raises(WhatsAppNotReady):
            await wa.qr()


async def test_the_default_transport_speaks_to_a_real_server_and_times_out() -> None:
    sidecar = FakeSidecar(api_key="k", send_delay_s=1.0)
    await sidecar.start()
    wa = WhatsAppClient(sidecar.url, "k")
    impatient = WhatsAppClient(sidecar.url, "k", timeout=0.2)  # for the slow send only
    try:
        health = await wa.health()
        assert health.state == "WORKING" and health.engine == "fake"
        assert (await wa.groups())[0].name == "Family"
        with pytest.raises(WhatsAppUnavailable) as caught:
            await impatient.send("+15550001", "slow", idempotency_key="k1")
        assert "did not answer in time" in str(caught.value)
        stranger = WhatsAppClient(sidecar.url, "wrong")
        with pytest.raises(WhatsAppRequestRejected) as rejected:
            await stranger.contacts()
        await stranger.aclose()
        assert rejected.value.code == "unauthorized"
        await sidecar.go_down()
        with pytest.raises(WhatsAppUnavailable) as down:
            await wa.health()
        assert "cannot be reached" in str(down.value)
    finally:
        await wa.aclose()
        await impatient.aclose()
        await sidecar.close()


async def test_a_null_field_of_me_in_health_is_left_out_not_shown_as_none() -> None:
    answer = {
        "status": "ok",
        "engine": "wwebjs",
        "state": "WORKING",
        "me": {"id": "4915112345678@c.us", "name": None},
        "failure": None,
    }
    async with client(lambda request: httpx.Response(200, json=answer)) as wa:
        health = await wa.health()
    assert health.me == {"id": "4915112345678@c.us"}


@pytest.mark.parametrize(
    ("route", "answer"),
    [
        ("health", {"status": "ok", "engine": "fake", "state": "SLEEPING", "me": None}),
        ("health", {"status": "ok", "engine": "fake", "me": None}),
        ("groups", [{"name": "no id"}]),
        ("contacts", {"contacts": "not a list"}),
    ],
)
async def test_an_answer_outside_the_contract_is_the_sidecars_failure(
    route: str, answer: object
) -> None:
    async with client(lambda request: httpx.Response(200, json=answer)) as wa:
        with pytest.raises(WhatsAppUnavailable) as caught:
            await getattr(wa, route)()
    assert caught.value.transient
    assert f"answered GET /{route} with something wasched does not understand" in str(caught.value)


async def test_the_fake_sidecar_writes_times_as_the_real_one_does() -> None:
    """ISO 8601 (`Date.toISOString()`) in a send's answer and in an event, which the contract
    reads; a duplicate answers the first send's time, as the sidecar's ledger does."""
    posted: list[object] = []

    def events(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200, json={"ok": True})

    async with scripted_sidecar(events) as core_url:
        sidecar = FakeSidecar(api_key="k", events_url=f"{core_url}/whatsapp/events")
        await sidecar.start()
        wa = WhatsAppClient(sidecar.url, "k")
        try:
            sent = await wa.send("+15550001", "hi", idempotency_key="run1:+15550001")
            again = await wa.send("+15550001", "hi", idempotency_key="run1:+15550001")
            assert await sidecar.post_event("message.ack", {"id": sent.id, "ack": 2}) == 200
        finally:
            await wa.aclose()
            await sidecar.close()

    assert sent.timestamp is not None and sent.timestamp.tzinfo is not None
    assert again.duplicate and again.timestamp == sent.timestamp
    event = SIDECAR_EVENT.validate_python(posted[0])
    assert event.event == "message.ack" and event.timestamp is not None


async def test_check_numbers_asks_the_sidecar_once_for_all_and_reads_each_answer() -> None:
    sidecar = FakeSidecar(not_on_whatsapp={"+15550009999"})
    await sidecar.start()
    wa = WhatsAppClient(sidecar.url)
    try:
        checks = await wa.check_numbers(["+15550001111", "+15550009999"])
        sidecar.state = "SCAN_QR_CODE"
        with pytest.raises(WhatsAppNotReady):
            await wa.check_numbers(["+15550001111"])
        sidecar.state, sidecar.check_fails = "WORKING", True
        with pytest.raises(WhatsAppSendFailed) as failed:
            await wa.check_numbers(["+15550001111"])
    finally:
        await wa.aclose()
        await sidecar.close()
    assert [(c.number, c.on_whatsapp, c.whatsapp_id) for c in checks] == [
        ("+15550001111", True, "15550001111@c.us"),
        ("+15550009999", False, None),
    ]
    assert sidecar.checks == [["+15550001111", "+15550009999"], ["+15550001111"]]
    assert failed.value.transient


async def test_check_numbers_refused_by_an_older_sidecar_or_answered_oddly() -> None:
    async with client(lambda request: error(404, "not_found")) as older:
        with pytest.raises(WhatsAppRequestRejected) as refused:
            await older.check_numbers(["+15550001111"])
    assert refused.value.code == "not_found"
    odd = httpx.Response(200, json={"numbers": [{"number": "+1555"}]})
    async with client(lambda request: odd) as wa:
        with pytest.raises(WhatsAppUnavailable):
            await wa.check_numbers(["+15550001111"])
