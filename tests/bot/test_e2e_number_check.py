"""End to end: numbers checked with WhatsApp, through the real `wasched run` process, the fake
Telegram server and the sidecar's fake engine (its numbers without WhatsApp set over HTTP),
counting the sidecar's requests (`GET /fake/requests`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.adapters.whatsapp import WhatsAppClient
from core.domain.errors import WhatsAppNotReady
from tests.bot.test_e2e import ADMIN, API_KEY, World, needs_node, running

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GOOD = "+4915123456789"
GONE = "+4915199999999"
LATER = "+4915187654321"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running(tmp_path, admin_ids=str(ADMIN)) as started:
        yield started


async def requests(world: World) -> dict[str, int]:
    counts: dict[str, Any] = await world.sidecar("GET", "/fake/requests")
    by_route: dict[str, int] = counts["by_route"]
    return by_route


async def list_text(world: World) -> str:
    return (await world.say("/list")).text


@needs_node
async def test_e2e_a_number_without_whatsapp_is_refused_at_save_and_a_good_one_asked_once(
    tmp_path: Path,
) -> None:
    async with running(
        tmp_path, admin_ids=str(ADMIN), sidecar_settings={"WHATSAPP_FAKE_NOT_ON_WHATSAPP": GONE}
    ) as world:
        refused = await world.say(f"/schedule {GONE} | tomorrow 9:00 | Hi", "Not saved")
        assert f"{GONE} has no WhatsApp account" in refused.text
        assert "Fix the number" in refused.text
        assert "no schedules" in await list_text(world)
        assert (await requests(world)).get("POST /contacts/check") == 1

        saved = await world.say(f"/schedule {GOOD} | tomorrow 9:00 | Hi", "Saved")
        assert "⚠️" not in saved.text
        await world.say(f"/schedule {GOOD}, {GONE} | tomorrow 10:00 | Hi", "Not saved")
        await world.say(f"/schedule {GOOD} | tomorrow 11:00 | Hi again", "Saved")
        listing = await list_text(world)
        assert "#1" in listing and "#2" in listing and "#3" not in listing
        counts = await requests(world)
        # One lookup each for GONE and GOOD; their answers remembered for the later saves.
        assert counts.get("POST /contacts/check") == 2
        assert "POST /messages" not in counts
        assert await world.outbox() == []


@needs_node
async def test_e2e_saved_while_unlinked_then_the_run_fails_the_bad_number_and_sends_the_good(
    world: World,
) -> None:
    await world.sidecar("POST", "/fake/numbers", {"not_on_whatsapp": [GONE]})
    since = world.telegram.cursor()
    await world.sidecar("POST", "/fake/state", {"state": "SCAN_QR_CODE"})
    await world.telegram.reply(ADMIN, "not linked", since=since, within=15)

    saved = await world.say(f"/schedule {GOOD}, {GONE} | in 8 seconds | Hello", "Saved")
    assert "⚠️ WhatsApp could not be asked now whether" in saved.text
    assert GOOD in saved.text and GONE in saved.text
    assert "checked before the first send" in saved.text
    since = world.telegram.cursor()
    await world.sidecar("POST", "/fake/state", {"state": "WORKING"})
    await world.telegram.reply(ADMIN, "working again", since=since, within=15)

    report = await world.telegram.reply(ADMIN, "read", within=30)
    assert "#1" in report.text
    assert [(m["text"], m["to"]) for m in await world.outbox()] == [
        ("Hello", "4915123456789@c.us")
    ]
    counts = await requests(world)
    assert counts.get("POST /messages") == 1  # none for GONE
    logs = await world.say("/logs", "Latest deliveries")
    assert "no WhatsApp account" in logs.text


@needs_node
async def test_e2e_the_client_reads_the_real_sidecars_number_check(world: World) -> None:
    """The contract both sides keep: the real sidecar's answer read by the real client."""
    await world.sidecar("POST", "/fake/numbers", {"not_on_whatsapp": [GONE]})
    client = WhatsAppClient(world.sidecar_url, API_KEY)
    try:
        checks = await client.check_numbers([GOOD, GONE, LATER])
        await world.sidecar("POST", "/fake/state", {"state": "SCAN_QR_CODE"})
        with pytest.raises(WhatsAppNotReady):
            await client.check_numbers([GOOD])
    finally:
        await client.aclose()
    assert [(c.number, c.on_whatsapp, c.whatsapp_id) for c in checks] == [
        (GOOD, True, "4915123456789@c.us"),
        (GONE, False, None),
        (LATER, True, "4915187654321@c.us"),
    ]
