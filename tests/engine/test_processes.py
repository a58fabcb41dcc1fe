"""Several `wasched run` processes on one database: a burst due at once, one process killed
mid-burst, and every recipient gets each message exactly once (the sidecar's fake outbox).

Real processes: the sidecar in its fake engine (node), two `wasched run`, each with its own fake
Telegram bot (Telegram lets one process poll a token; see the README's "Larger installs"), one
shared store: a SQLite file, or a fresh database on the real MongoDB server. WhatsApp is not
linked while both start, so the burst waits `held` until both are up; then the session works
and both senders race for it, the sidecar letting their sends out a few at a time
(`POST /fake/hold`), and one of them is killed once it has sent some: the burst cannot end
before the kill, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from core.adapters.store import open_store
from core.domain.models import DeliveryFilter, DeliveryStatus
from tests.bot.test_e2e import API_KEY, REPO, SIDECAR, free_port, needs_node, stop, wait_until_up
from tests.engine.conftest import eventually
from tests.engine.processes import address, all_final, seed_burst, start_python
from tests.fakes.telegram import FakeTelegram
from tests.store.conftest import (
    FERRETDB_NOT_ATOMIC,
    SHARED_DATABASES,
    database_url_of,
    is_ferretdb,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEDULES = 10
RECIPIENTS = 8  # 80 messages due at once
OWNER = 4242
STEP = 4  # sends the sidecar lets out at a time until the kill
# What the sidecar logs when it answers a send of a key it has seen (its src/sender.js).
DUPLICATE_ANSWERS = (
    "duplicate send answered from the ledger",
    "same key already being sent; sharing its outcome",
    "an earlier attempt was found in the chat",
)


def chat(phone: str) -> str:
    """How the sidecar's fake engine records a send to `phone`."""
    return f"{phone.removeprefix('+')}@c.us"


@pytest.fixture(params=SHARED_DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url_of(request.param, tmp_path) as url:
        yield url


async def hold(http: aiohttp.ClientSession, sidecar_url: str, sends: int | None) -> None:
    """Let `sends` more sends out of the sidecar, holding the rest in flight (None: all)."""
    async with http.post(
        f"{sidecar_url}/fake/hold", json={"sends": sends}, headers={"X-Api-Key": API_KEY}
    ) as response:
        assert response.status == 200, await response.text()


async def outbox(http: aiohttp.ClientSession, sidecar_url: str) -> list[dict[str, Any]]:
    async with http.get(f"{sidecar_url}/fake/outbox", headers={"X-Api-Key": API_KEY}) as response:
        assert response.status == 200, await response.text()
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages


@needs_node
async def test_two_processes_kill_one_mid_burst_each_recipient_gets_each_message_once(
    tmp_path: Path, database_url: str
) -> None:
    await seed_burst(
        database_url, schedules=SCHEDULES, recipients=RECIPIENTS, owner_id=OWNER, text="burst"
    )

    sidecar_port = free_port()
    core_ports = [free_port(), free_port()]
    sidecar_url = f"http://127.0.0.1:{sidecar_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATS"))}
    sidecar_log = tmp_path / "sidecar.log"
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        out = stack.enter_context(sidecar_log.open("wb"))
        sidecar = await asyncio.create_subprocess_exec(
            "node",
            "src/server.js",
            cwd=SIDECAR,
            env=base_env
            | {
                "WHATSAPP_ENGINE": "fake",
                "WHATSAPP_HOST": "127.0.0.1",
                "WHATSAPP_PORT": str(sidecar_port),
                "WHATSAPP_DATA_DIR": str(tmp_path / "whatsapp"),
                # Acks go to the second process; a killed one misses them (sent is final).
                "WHATSAPP_EVENTS_URL": f"http://127.0.0.1:{core_ports[1]}/whatsapp/events",
                "WHATSAPP_API_KEY": API_KEY,
                "WHATSAPP_ENV_FILE": str(tmp_path / "no.env"),
                # Info: the sidecar logs each send it answers as a duplicate of a key.
                "WHATSAPP_LOG_LEVEL": "info",
                "WHATSAPP_FAKE_START_STATE": "SCAN_QR_CODE",
            },
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        stack.push_async_callback(stop, sidecar, sidecar_log)
        await wait_until_up(http, f"{sidecar_url}/health", sidecar, sidecar_log)

        processes: list[Any] = []
        logs: list[Path] = []
        for n, port in enumerate(core_ports):
            telegram = await stack.enter_async_context(FakeTelegram())
            telegram.add_user(OWNER)
            log = tmp_path / f"wasched-{n}.log"
            logs.append(log)
            process = await start_python(
                "-m",
                "bot",
                "run",
                cwd=tmp_path,
                env=base_env
                | {
                    "PYTHONPATH": str(REPO),
                    "TELEGRAM_BOT_TOKEN": telegram.token,
                    "TELEGRAM_API_URL": telegram.base_url,
                    "TELEGRAM_ADMIN_IDS": str(OWNER),
                    "DATABASE_URL": database_url,
                    "DEFAULT_TIMEZONE": "UTC",
                    "HTTP_HOST": "127.0.0.1",
                    "HTTP_PORT": str(port),
                    "WHATSAPP_URL": sidecar_url,
                    "WHATSAPP_API_KEY": API_KEY,
                    "SEND_GAP_MIN_S": "0",
                    "SEND_GAP_MAX_S": "0",
                    "SEND_HOURLY_CAP": "100000",
                    "SEND_DAILY_CAP": "100000",
                    "MISFIRE_GRACE_S": "3600",
                    "WHATSAPP_PROBE_EVERY_S": "0.2",
                },
                log=log,
            )
            processes.append(process)
            stack.push_async_callback(stop, process, log)
            await telegram.wait_for(polling(telegram), within=120)

        async def sent() -> int:
            return len(await outbox(http, sidecar_url))

        def sends_by(log: Path) -> int:
            return log.read_text(errors="replace").count(") sent\n")

        # Bounds, not measures: FerretDB takes about a second a send on a busy machine.
        store = await open_store(database_url)
        try:

            async def all_waiting() -> bool:
                found = await store.list_deliveries(DeliveryFilter())
                return len(found) == SCHEDULES * RECIPIENTS and all(
                    d.status in (DeliveryStatus.queued, DeliveryStatus.held) for d in found
                )

            await eventually(all_waiting, within_s=300, what="the burst to wait for WhatsApp")
        finally:
            await store.close()
        # The sidecar lets the sends out a few at a time: the rest wait in flight, so the
        # burst is still going when the kill lands.
        await hold(http, sidecar_url, 0)
        async with http.post(
            f"{sidecar_url}/fake/state", json={"state": "WORKING"}, headers={"X-Api-Key": API_KEY}
        ) as response:
            assert response.status < 300, await response.text()
        let_out = 0
        # A process records a window of sends once every one of them was answered, and one
        # process may claim window after window before the other starts (each claims up to
        # 16 ahead): let sends out until both have sent some, or until one has and half the
        # burst is out; then kill the one that sent most, so the kill lands on sends in flight.
        while not (
            min(map(sends_by, logs)) >= 3
            or (max(map(sends_by, logs)) >= 3 and let_out >= SCHEDULES * RECIPIENTS // 2)
        ):
            assert let_out + STEP < SCHEDULES * RECIPIENTS, "no process recorded a send"
            let_out += STEP
            await hold(http, sidecar_url, STEP)

            async def all_let_out() -> bool:
                return await sent() == let_out  # noqa: B023

            await eventually(all_let_out, within_s=300, what=f"{let_out} sends to go out")
        killed = 0 if sends_by(logs[0]) >= sends_by(logs[1]) else 1
        lives = 1 - killed
        doomed, survivor = processes[killed], processes[lives]
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
        assert await sent() < SCHEDULES * RECIPIENTS, "the kill came too late to prove much"
        # What the killed process held: the only deliveries the sidecar may be asked for twice
        # (sent, but not yet recorded, when it died).
        store = await open_store(database_url)
        try:
            held_by_doomed = [
                d
                for d in await store.list_deliveries(
                    DeliveryFilter(statuses=[DeliveryStatus.sending])
                )
                if d.lease_owner == f"{socket.gethostname()}:{core_ports[killed]}"
            ]
        finally:
            await store.close()
        await hold(http, sidecar_url, None)

        # The survivor sends the rest, and what the killed one held once its lease ends.
        store = await open_store(database_url)
        try:
            await eventually(
                lambda: all_final(store, SCHEDULES * RECIPIENTS),
                within_s=900,
                what="every delivery to end",
            )
            runs = await store.list_runs(limit=1000)
        finally:
            await store.close()
        messages = await outbox(http, sidecar_url)
        assert await stop(survivor, logs[lives]) == 0, logs[lives].read_text()[-3000:]

    received = Counter((m["to"], m["text"]) for m in messages)
    expected = {
        (chat(address(n, r)), f"burst {n}") for n in range(SCHEDULES) for r in range(RECIPIENTS)
    }
    assert set(received) == expected
    assert [pair for pair, count in received.items() if count > 1] == []
    assert len(runs) == SCHEDULES  # one run per occurrence, whichever process fired it

    # Each claim went to one process: the sidecar answered a key as a duplicate only for what
    # the killed process held (two senders holding one delivery would both ask for it).
    sidecar_lines = sidecar_log.read_text(errors="replace")
    duplicates = sum(sidecar_lines.count(line) for line in DUPLICATE_ANSWERS)
    if duplicates > len(held_by_doomed) and await on_ferretdb(database_url):
        pytest.xfail(FERRETDB_NOT_ATOMIC)  # every message still went out once (above)
    assert duplicates <= len(held_by_doomed), (duplicates, len(held_by_doomed))


async def on_ferretdb(database_url: str) -> bool:
    if not database_url.startswith("mongodb"):
        return False
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url)
    try:
        return await is_ferretdb(client)
    finally:
        await client.close()


def polling(telegram: FakeTelegram) -> Callable[[], bool | None]:
    """A `wait_for` probe: true once the bot of that fake Telegram polls for updates."""
    return lambda: True if telegram.calls_of("getupdates") else None
