"""The Python fake sidecar (tests/fakes/sidecar.py) answers what the real one (node, fake
engine, started by test_e2e's harness) answers: the same requests, the same status and error
code from each."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.bot.test_e2e import API_KEY, World, needs_node, world
from tests.fakes.sidecar import FakeSidecar

__all__ = ["world"]  # the fixture these tests use

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHECKS = {
    "+4915123456789": 200,
    "+0151234567": 400,  # no country code starts with 0
    "+12345": 400,  # too short
    "+1234567890123456": 400,  # too long
    "4915123456789": 400,  # no +
}


async def ask(http: aiohttp.ClientSession, url: str, path: str, body: Any) -> tuple[int, str]:
    """The status and error code (or "" on success) of POST `path`."""
    async with http.post(url + path, json=body, headers={"X-Api-Key": API_KEY}) as response:
        answer = await response.json()
        return response.status, answer.get("error", {}).get(
            "code", ""
        ) if response.status >= 300 else ""


async def answers(http: aiohttp.ClientSession, url: str) -> list[tuple[int, str]]:
    said = [await ask(http, url, "/contacts/check", {"numbers": [n]}) for n in CHECKS]
    # An injected failure while WhatsApp is not working: which comes first.
    said.append(await ask(http, url, "/fake/state", {"state": "SCAN_QR_CODE"}))
    said.append(await ask(http, url, "/fake/fail", {"code": "send_failed", "count": 1}))
    send = {"to": "+4915123456789", "text": "hi", "idempotency_key": "parity-1"}
    said.append(await ask(http, url, "/messages", send))
    said.append(await ask(http, url, "/messages", send | {"idempotency_key": "parity-2"}))
    said.append(await ask(http, url, "/fake/state", {"state": "WORKING"}))
    said.append(await ask(http, url, "/messages", send | {"idempotency_key": "parity-3"}))
    return said


@needs_node
async def test_the_python_fake_answers_as_the_real_sidecar(world: World) -> None:
    real = await answers(world.http, world.sidecar_url)
    assert [status for status, _ in real[: len(CHECKS)]] == list(CHECKS.values())
    # The session is looked at before the injected failure, kept for when it works again.
    assert [said for said in real[-5:] if said[0] != 200] == [
        (409, "not_ready"),
        (409, "not_ready"),
        (502, "send_failed"),
    ]
    fake = FakeSidecar(api_key=API_KEY)
    await fake.start()
    try:
        assert await answers(world.http, fake.url) == real
    finally:
        await fake.close()
