"""Receipts converge across SIGKILLs, with the real processes: `python -m core` and the sidecar
(`node src/server.js`, fake engine, or the in-process fake where a send must be held).

Acks that reach a killed core are not lost for good: when core comes back, the store ends at
what `GET /messages/{id}` says, whether the sidecar kept the events (its queue is bounded),
was killed too before core came back, or the ack beat core's own record of the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.adapters.store.sqlite import SQLiteStore
from core.domain.models import (
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
)
from tests.engine.conftest import eventually
from tests.engine.processes import REPO, Process, seed_burst, start_python
from tests.fakes.sidecar import FakeSidecar, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIDECAR = REPO / "whatsapp-service"
API_KEY = "receipts-crash-key"
RECIPIENTS = 6

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (SIDECAR / "node_modules").is_dir(),
    reason="needs node and `npm ci` in whatsapp-service",
)


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "WHATSAPP_", "ACK_", "SEND_", "HTTP_", "DATABASE_"))
    }


class World:
    """Ports, files and processes of one test; every process is ended at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.database_url = f"sqlite:///{tmp_path / 'receipts.db'}"
        self.sidecar_port = free_port()
        self.core_port = free_port()
        while self.core_port == self.sidecar_port:
            self.core_port = free_port()
        self.sidecar_url = f"http://127.0.0.1:{self.sidecar_port}"
        self.events_url = f"http://127.0.0.1:{self.core_port}/whatsapp/events"
        self.processes: list[Process] = []
        self.http = aiohttp.ClientSession(headers={"X-Api-Key": API_KEY})

    async def start_sidecar(self, **settings: str) -> Process:
        env = clean_env() | {
            "WHATSAPP_ENGINE": "fake",
            "WHATSAPP_HOST": "127.0.0.1",
            "WHATSAPP_PORT": str(self.sidecar_port),
            "WHATSAPP_DATA_DIR": str(self.tmp / "whatsapp"),
            "WHATSAPP_EVENTS_URL": self.events_url,
            "WHATSAPP_API_KEY": API_KEY,
            "WHATSAPP_ENV_FILE": str(self.tmp / "no.env"),
            "WHATSAPP_EVENTS_RETRY_MIN_MS": "100",
            "WHATSAPP_EVENTS_RETRY_MAX_MS": "500",
            "WHATSAPP_FAKE_START_DELAY_MS": "0",
            "WHATSAPP_LOG_LEVEL": "info",
        }
        with (self.tmp / "sidecar.log").open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                "node", "src/server.js", cwd=SIDECAR, env=env | settings, stdout=out, stderr=out
            )
        self.processes.append(process)

        async def working() -> bool:
            assert process.returncode is None, self.tail("sidecar.log")
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"{self.sidecar_url}/health") as answer:
                    return answer.status == 200 and (await answer.json())["state"] == "WORKING"
            return False

        await eventually(working, within_s=30, what="the sidecar to work")
        return process

    async def start_core(self, whatsapp_url: str | None = None) -> Process:
        env = clean_env() | {
            "DATABASE_URL": self.database_url,
            "WHATSAPP_URL": whatsapp_url or self.sidecar_url,
            "WHATSAPP_API_KEY": API_KEY,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.core_port),
            "SEND_GAP_MIN_S": "0",
            "SEND_GAP_MAX_S": "0",
            "MISFIRE_GRACE_S": "3600",
        }
        process = await start_python("-m", "core", env=env, log=self.tmp / "core.log")
        self.processes.append(process)
        return process

    async def sidecar(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sidecar_url + path, json=body) as answer:
            assert answer.status < 300, await answer.text()
            return await answer.json()

    def tail(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")[-3000:]

    async def close(self) -> None:
        for process in reversed(self.processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        await self.http.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    started = World(tmp_path)
    try:
        yield started
    finally:
        await started.close()


async def kill(process: Process) -> None:
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def stored(database_url: str) -> list[Delivery]:
    store = await SQLiteStore.open(database_url)
    try:
        return await store.list_deliveries(DeliveryFilter(order="oldest"))
    finally:
        await store.close()


async def until_all(database_url: str, status: DeliveryStatus, count: int, log: str) -> None:
    async def reached() -> bool:
        found = await stored(database_url)
        return len(found) == count and all(d.status is status for d in found)

    try:
        await eventually(reached, within_s=60, what=f"every delivery {status.value}")
    except AssertionError:
        found = await stored(database_url)
        raise AssertionError(f"{[d.status.value for d in found]}\n{log}") from None


async def sent_then_core_killed(world: World) -> Process:
    """Core sends to every recipient (the phones do not ack yet), then is SIGKILLed; the
    phones then read them all while core is down. Returns the sidecar process."""
    await world.sidecar("POST", "/fake/acks", {"mode": "stop_at_1"})
    await seed_burst(world.database_url, schedules=1, recipients=RECIPIENTS, text="receipt")
    core = await world.start_core()
    await until_all(world.database_url, DeliveryStatus.sent, RECIPIENTS, world.tail("core.log"))
    await kill(core)
    caught = await world.sidecar("POST", "/fake/acks/catch-up", {"ack": 3})
    assert caught["moved"] == RECIPIENTS
    for delivery in await stored(world.database_url):
        assert delivery.status is DeliveryStatus.sent  # nobody heard the acks
        asked = await world.sidecar("GET", f"/messages/{delivery.whatsapp_id}")
        assert asked["ack"] == 3
    return world.processes[0]


@needs_node
async def test_acks_while_core_is_killed_and_beyond_the_sidecars_queue_converge(
    world: World,
) -> None:
    # The sidecar keeps two events while core is down: the other acks are dropped, as with
    # a core down longer than a full queue (WHATSAPP_EVENTS_MAX_QUEUE, 1000 by default).
    await world.start_sidecar(WHATSAPP_EVENTS_MAX_QUEUE="2")
    await sent_then_core_killed(world)

    await world.start_core()
    await until_all(world.database_url, DeliveryStatus.read, RECIPIENTS, world.tail("core.log"))
    outbox = (await world.sidecar("GET", "/fake/outbox"))["messages"]
    assert len(outbox) == RECIPIENTS  # nothing was sent again


@needs_node
async def test_acks_survive_core_and_then_the_sidecar_killed_before_core_returns(
    world: World,
) -> None:
    sidecar = await world.start_sidecar()
    await sent_then_core_killed(world)
    # The acks wait in the sidecar's queue for core; the sidecar is killed with them.
    await kill(sidecar)
    await world.start_sidecar()

    await world.start_core()
    await until_all(world.database_url, DeliveryStatus.read, RECIPIENTS, world.tail("core.log"))
    outbox = (await world.sidecar("GET", "/fake/outbox"))["messages"]
    assert len(outbox) == RECIPIENTS


async def test_an_ack_that_beat_the_record_of_its_send_survives_core_killed_in_between(
    world: World,
) -> None:
    # The in-process fake holds the send in flight (recorded by "WhatsApp", not yet answered)
    # while its read ack reaches core, which cannot know the message id yet.
    fake = FakeSidecar(api_key=API_KEY, auto_ack=False, events_url=world.events_url)
    fake.send_gate = asyncio.Event()
    await fake.start()
    try:
        await seed_burst(world.database_url, schedules=1, recipients=1, text="receipt")
        core = await world.start_core(fake.url)
        await eventually(lambda: len(fake.outbox) == 1, within_s=30, what="the send in flight")
        [record] = fake.outbox
        record.ack = 3
        assert await fake.post_event("message.ack", {"id": record.id, "ack": 3}) == 200
        await kill(core)
        fake.send_gate.set()
        fake.send_gate = None
        [delivery] = await stored(world.database_url)
        assert delivery.status is DeliveryStatus.sending  # the send was never recorded

        await world.start_core(fake.url)
        await until_all(world.database_url, DeliveryStatus.read, 1, world.tail("core.log"))
        [delivery] = await stored(world.database_url)
        assert delivery.whatsapp_id == record.id
        assert len(fake.outbox) == 1  # the resend after the crash was answered as a duplicate
    finally:
        await world.close()
        await fake.close()
