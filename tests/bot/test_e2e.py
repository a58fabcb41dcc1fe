"""End to end: the real `wasched run` process (python -m bot run) against the fake Telegram
server in this test and the sidecar in its fake engine, driven as a person would.

Each test starts its own sidecar and wasched on free ports with a fresh database, and stops
them with SIGTERM, which must end wasched cleanly (exit code 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.services import PREVIEW_COUNT
from tests.engine.processes import start_python
from tests.fakes.telegram import ChatMessage, FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SIDECAR = REPO / "whatsapp-service"
ADMIN = 4242
STRANGER = 777
API_KEY = "e2e-test-key-0123456789"
NUMBER = "+4915123456789"
CHAT = "4915123456789@c.us"  # how the sidecar's fake engine records a send to NUMBER

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (SIDECAR / "node_modules").is_dir(),
    reason="needs node and `npm ci` in whatsapp-service",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class World:
    telegram: FakeTelegram
    sidecar_url: str
    http: aiohttp.ClientSession
    log: Path
    # The sidecar's process (asyncio.subprocess.Process), for tests that kill it.
    sidecar_process: Any = None
    # wasched's process, and how `running` starts it (again).
    wasched_process: Any = None
    start_wasched: Callable[[], Awaitable[None]] | None = None

    async def say(self, text: str, contains: str = "", user: int = ADMIN) -> ChatMessage:
        since = self.telegram.cursor()
        await self.telegram.send(user, text)
        return await self.telegram.reply(user, contains, since=since, within=15)

    async def press(self, message: ChatMessage, button: str, contains: str = "") -> ChatMessage:
        since = self.telegram.cursor()
        await self.telegram.press(ADMIN, message, button)
        return await self.telegram.reply(ADMIN, contains, since=since, within=15)

    async def sidecar(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"X-Api-Key": API_KEY}
        async with self.http.request(
            method, self.sidecar_url + path, json=body, headers=headers
        ) as response:
            assert response.status < 300, await response.text()
            return await response.json()

    async def outbox(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = (await self.sidecar("GET", "/fake/outbox"))["messages"]
        return messages

    async def crash_and_restart(self) -> None:
        """SIGKILL wasched, then start it again on the same database, Telegram and sidecar."""
        assert self.start_wasched is not None and self.wasched_process is not None
        self.wasched_process.send_signal(signal.SIGKILL)
        await self.wasched_process.wait()
        await self.start_wasched()


def tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:]


async def wait_until_up(http: aiohttp.ClientSession, url: str, process: Any, log: Path) -> None:
    for _ in range(200):
        if process.returncode is not None:
            raise AssertionError(f"{url} exited early:\n{tail(log)}")
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not come up:\n{tail(log)}")


async def stop(process: Any, log: Path) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"did not stop on SIGTERM:\n{tail(log)}") from None
    return int(process.returncode)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running(tmp_path, admin_ids=str(ADMIN)) as started:
        yield started


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    admin_ids: str,
    sidecar_settings: dict[str, str] | None = None,
    wasched_settings: dict[str, str] | None = None,
) -> AsyncIterator[World]:
    """The sidecar (fake engine) and `wasched run`, both stopped with SIGTERM at the end;
    `*_settings` add to or replace each one's environment."""
    sidecar_port, core_port = free_port(), free_port()
    sidecar_log, wasched_log = tmp_path / "sidecar.log", tmp_path / "wasched.log"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WHATS"))}
    sidecar_env = (
        base_env
        | {
            "WHATSAPP_ENGINE": "fake",
            "WHATSAPP_HOST": "127.0.0.1",
            "WHATSAPP_PORT": str(sidecar_port),
            "WHATSAPP_DATA_DIR": str(tmp_path / "whatsapp"),
            "WHATSAPP_EVENTS_URL": f"http://127.0.0.1:{core_port}/whatsapp/events",
            "WHATSAPP_API_KEY": API_KEY,
            "WHATSAPP_ENV_FILE": str(tmp_path / "no.env"),
            "WHATSAPP_EVENTS_RETRY_MIN_MS": "100",
            "WHATSAPP_EVENTS_RETRY_MAX_MS": "500",
            "WHATSAPP_LOG_LEVEL": "warn",
        }
        | (sidecar_settings or {})
    )
    async with FakeTelegram() as telegram, aiohttp.ClientSession() as http:
        telegram.add_user(ADMIN)
        telegram.add_user(STRANGER)
        with sidecar_log.open("wb") as sidecar_out:
            sidecar = await asyncio.create_subprocess_exec(
                "node",
                "src/server.js",
                cwd=SIDECAR,
                env=sidecar_env,
                stdout=sidecar_out,
                stderr=asyncio.subprocess.STDOUT,
            )
        wasched_env = (
            base_env
            | {
                "PYTHONPATH": str(REPO),
                "TELEGRAM_BOT_TOKEN": telegram.token,
                "TELEGRAM_API_URL": telegram.base_url,
                "TELEGRAM_ADMIN_IDS": admin_ids,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'wasched.db'}",
                "DEFAULT_TIMEZONE": "UTC",
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(core_port),
                "WHATSAPP_URL": f"http://127.0.0.1:{sidecar_port}",
                "WHATSAPP_API_KEY": API_KEY,
                "SEND_GAP_MIN_S": "0",
                "SEND_GAP_MAX_S": "0",
            }
            | (wasched_settings or {})
        )
        wasched_log.write_bytes(b"")
        world = World(telegram, f"http://127.0.0.1:{sidecar_port}", http, wasched_log, sidecar)

        async def start_wasched() -> None:
            polls = len(telegram.calls_of("getupdates"))
            world.wasched_process = await start_python(
                "-m", "bot", "run", cwd=tmp_path, env=wasched_env, log=wasched_log
            )
            try:
                await telegram.wait_for(
                    lambda: True if len(telegram.calls_of("getupdates")) > polls else None,
                    within=30,
                )
            except TimeoutError:
                raise AssertionError(
                    f"wasched did not start polling:\n{tail(wasched_log)}"
                ) from None

        world.start_wasched = start_wasched
        try:
            await wait_until_up(
                http, f"http://127.0.0.1:{sidecar_port}/health", sidecar, sidecar_log
            )
            await start_wasched()
            yield world
        finally:
            codes = []
            # The sidecar first, while wasched still takes its last events.
            await stop(sidecar, sidecar_log)
            if world.wasched_process is not None:
                codes.append(await stop(world.wasched_process, wasched_log))
            print("--- wasched log ---\n" + tail(wasched_log, 6000))
        assert codes in ([], [0]), f"wasched exited with {codes} on SIGTERM"


@needs_node
async def test_e2e_commands_menu_and_unknown_user(world: World) -> None:
    names = {c["command"] for c in world.telegram.commands}
    assert {"schedule", "list", "runnow", "logs", "export", "link", "tz", "cancel"} <= names
    refused = await world.say("/list", str(STRANGER), user=STRANGER)
    assert "private" in refused.text and refused.reply_markup is None
    assert len(world.telegram.bot_messages(STRANGER)) == 1


@needs_node
async def test_e2e_one_shot_fires_and_its_report_is_edited_with_acks(world: World) -> None:
    saved = await world.say(f"/schedule {NUMBER} | in 5 seconds | Hello from e2e", "Saved")
    assert "#1" in saved.text
    report = await world.telegram.reply(ADMIN, "read", within=30)
    assert "#1" in report.text and "👀" in report.text
    assert report.edits >= 1  # one message edited as acks came, not one per ack
    reports = [m for m in world.telegram.bot_messages(ADMIN) if "📨" in m.text]
    assert len(reports) == 1
    assert [(m["text"], m["to"]) for m in await world.outbox()] == [("Hello from e2e", CHAT)]


@needs_node
async def test_e2e_bad_input_is_explained_and_nothing_is_saved(world: World) -> None:
    # Each answer names what it could not read and shows what works.
    bad_time = await world.say(f"/schedule {NUMBER} | tomorrow at noonish | hi")
    assert bad_time.text.startswith("I don't know the word 'noonish'")
    assert "; try 'tomorrow 9:00'" in bad_time.text
    bad_number = await world.say("/schedule 12 | tomorrow 9:00 | hi")
    assert bad_number.text.startswith("'12' has no country code")
    assert "for example +49 151 23456789" in bad_number.text
    assert "no schedules" in (await world.say("/list")).text
    assert await world.outbox() == []


@needs_node
async def test_e2e_wizard_then_run_now_button_then_logs_and_export(world: World) -> None:
    await world.say("/addcontact Anna " + NUMBER, "Saved Anna")
    step1 = await world.say("/schedule", "Who gets it")
    await world.telegram.press(ADMIN, step1, "Anna")
    await world.press(step1, "Done", "What should it say")
    step3 = await world.say("Hi {first_name}!", "When?")
    preview = await world.press(step3, "every day at 9:00", "Preview")
    assert "Hi Anna!" in preview.text
    [next_runs] = [line for line in preview.text.split("\n") if line.startswith("Next: ")]
    times = next_runs.removeprefix("Next: ").split("; ")
    assert len(times) == len(set(times)) == PREVIEW_COUNT
    assert all(t.endswith(" 09:00") for t in times)
    await world.press(preview, "Save", "Saved")

    listing = await world.say("/list", "Your schedules")
    since = world.telegram.cursor()
    await world.telegram.press(ADMIN, listing, "Run")
    report = await world.telegram.reply(ADMIN, "read", since=since, within=30)
    assert "sent now on request" in report.text and "Anna" in report.text
    assert [m["text"] for m in await world.outbox()] == ["Hi Anna!"]

    logs = await world.say("/logs", "Latest deliveries")
    assert "👀" in logs.text and "Anna" in logs.text
    since = world.telegram.cursor()
    await world.telegram.send(ADMIN, "/export")
    document = await world.telegram.reply(ADMIN, "1 delivery", since=since, within=15)
    assert document.file is not None
    rows = list(csv.DictReader(io.StringIO(document.file.data.decode("utf-8-sig"))))
    assert [(row["recipient name"], row["message"], row["status"]) for row in rows] == [
        ("Anna", "Hi Anna!", "read")
    ]


@needs_node
async def test_e2e_pause_resume_delete(world: World) -> None:
    # Twelve hours away, so nothing can fall due while the test pauses and deletes it.
    hour = (datetime.now(UTC).hour + 12) % 24
    await world.say(f"/schedule {NUMBER} | every day at {hour}:00 | daily hello", "Saved")
    await world.say("/pause 1", "Paused")
    listing = await world.say("/list", "paused")
    await world.press(listing, "Resume", "active")
    await world.say("/delete 1", "Delete this schedule?")
    confirm = world.telegram.bot_messages(ADMIN)[-1]
    await world.press(confirm, "Yes", "Deleted")
    assert "no schedules" in (await world.say("/list")).text
    assert await world.outbox() == []


@needs_node
async def test_e2e_link_flow_with_qr_photo_and_one_alert(world: World) -> None:
    since = world.telegram.cursor()
    await world.sidecar("POST", "/fake/state", {"state": "SCAN_QR_CODE"})
    alert = await world.telegram.reply(ADMIN, "not linked", since=since, within=15)
    assert "/link" in alert.text

    since = world.telegram.cursor()
    await world.telegram.send(ADMIN, "/link")
    photo = await world.telegram.reply(ADMIN, "Scan this", since=since, within=15)
    assert photo.kind == "photo" and photo.file is not None
    assert photo.file.data.startswith(b"\x89PNG")

    # WhatsApp rotates the QR: the photo is replaced, and no second alert comes.
    since = world.telegram.cursor()
    await world.sidecar("POST", "/fake/state", {"state": "SCAN_QR_CODE"})
    fresh = await world.telegram.reply(ADMIN, "Scan this", since=since, within=15)
    assert fresh.message_id != photo.message_id
    assert fresh.file is not None and fresh.file.data != photo.file.data

    since = world.telegram.cursor()
    await world.sidecar("POST", "/fake/state", {"state": "WORKING"})
    await world.telegram.reply(ADMIN, "working again", since=since, within=15)
    await world.telegram.wait_for(lambda: True if fresh.deleted else None, within=10)
    texts = [m.text for m in world.telegram.bot_messages(ADMIN)]
    assert sum("⚠️" in t for t in texts) == 1
    status = await world.say("/status", "wasched status")
    assert "WORKING" in status.text


@needs_node
async def test_e2e_no_network_is_named_with_its_fix_and_link_promises_no_qr(
    world: World,
) -> None:
    """The real sidecar's failure (its fake engine) reaches the alert, /link and /status."""
    since = world.telegram.cursor()
    failure = {"code": "whatsapp_web_unreachable"}
    await world.sidecar("POST", "/fake/state", {"state": "FAILED", "failure": failure})
    alert = await world.telegram.reply(ADMIN, "⚠️", since=since, within=15)
    assert "cannot reach WhatsApp Web" in alert.text and "/link" not in alert.text

    link = await world.say("/link", "No QR code can come now")
    assert "Check the server's internet connection" in link.text
    status = await world.say("/status", "wasched status")
    assert "WhatsApp: FAILED" in status.text
    assert "Why: This server cannot reach WhatsApp Web" in status.text
    assert "ERR_NAME_NOT_RESOLVED" in status.text  # the sidecar's own detail

    # The same reason again (the sidecar retrying) is no second alert.
    await world.sidecar("POST", "/fake/state", {"state": "STARTING"})
    await world.sidecar("POST", "/fake/state", {"state": "FAILED"})
    since = world.telegram.cursor()
    await world.sidecar("POST", "/fake/state", {"state": "WORKING"})
    await world.telegram.reply(ADMIN, "working again", since=since, within=15)
    texts = [m.text for m in world.telegram.bot_messages(ADMIN)]
    assert sum(t.startswith("⚠️") for t in texts) == 1
    assert not any(m.kind == "photo" for m in world.telegram.bot_messages(ADMIN))


@needs_node
async def test_e2e_first_run_without_admins_makes_the_code_sender_owner(tmp_path: Path) -> None:
    async with running(tmp_path, admin_ids="") as world:
        found = re.search(r"send /start (\d+) to the bot", tail(world.log, 100_000))
        assert found, "the one-time code is in the log"
        code = found[1]
        refused = await world.say(f"/start {int(code) + 1}", "not the one-time code", STRANGER)
        assert str(STRANGER) in refused.text and "deploy/start.sh" in refused.text
        owner = await world.say(f"/start {code}", "owner", user=STRANGER)
        assert "/link" in owner.text and "Your time zone is" in owner.text
        assert "no schedules" in (await world.say("/list", user=STRANGER)).text
        again = await world.say(f"/start {code}", "private", user=ADMIN)
        assert str(ADMIN) in again.text


@needs_node
async def test_e2e_a_group_by_the_start_of_its_name_asked_which_then_sent_to_it(
    world: World,
) -> None:
    # The fake engine's account is in "Fake Family" and "Fake Team".
    question = await world.say("/schedule fake | in 5 seconds | Hello group", "which one")
    assert [b["text"] for b in question.buttons()] == [
        "Fake Family (group)",
        "Fake Team (group)",
        "Cancel",
    ]
    assert "no schedules" in (await world.say("/list")).text  # nothing before the pick
    saved = await world.press(question, "Fake Team", "Saved")
    assert "to Fake Team (group)" in saved.text and "@g.us" not in saved.text
    report = await world.telegram.reply(ADMIN, "Fake Team (group): read", within=30)
    assert "@g.us" not in report.text
    assert [(m["text"], m["to"]) for m in await world.outbox()] == [
        ("Hello group", "120363000000000002@g.us")
    ]
