"""deploy/start.sh and stop.sh for real: a copy of the repo, the sidecar in its fake engine,
the fake Telegram Bot API, free ports. A person's schedule survives a stop and a start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.sidecar import free_port
from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
USER_ID = 5150
API_KEY = "process-test-key-0123456789abcdef"
NUMBER = "+4915112345678"
CHAT = "4915112345678@c.us"  # how the sidecar's fake engine records a send to NUMBER
TEXT = "Hello from before the restart"
LATER = "Made after the first one went out"
# Delivery statuses that can still change: waiting to go out, going out, or waiting for acks
# (the fake engine acks every send up to read).
UNSETTLED = frozenset({"queued", "sending", "held", "sent", "delivered"})


def repo_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [name for name in listed if (REPO / name).is_file()]


def exited(pid: int) -> bool:
    """True when pid is gone, or exited and waits only to be reaped by init."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # reaped in between
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def repo_copy(tmp_path: Path) -> Iterator[Path]:
    """The repo's files in tmp_path, sharing the installed .venv and node_modules."""
    venv, modules = REPO / ".venv", REPO / "whatsapp-service" / "node_modules"
    if not (venv / "bin" / "python").exists() or not modules.is_dir():
        pytest.skip("needs .venv and whatsapp-service/node_modules (bash scripts/test installs)")
    root = tmp_path / "wasched"
    for name in repo_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)  # keeps mtimes: start.sh sees nothing to install
    (root / ".venv").symlink_to(venv)
    (root / "whatsapp-service" / "node_modules").symlink_to(modules)
    yield root
    for name in ("wasched", "whatsapp"):  # never leave a process behind a failed test
        pid_file = root / "data" / f"{name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        fake.add_user(USER_ID)
        yield fake


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]

    @property
    def core_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    @property
    def sidecar_url(self) -> str:
        return f"http://127.0.0.1:{self.env['WHATSAPP_PORT']}"

    async def script(self, name: str) -> tuple[int, str]:
        """Run deploy/<name> with no terminal, as CI would; return exit code and output."""
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(self.root / "deploy" / name),
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
        assert process.returncode is not None
        return process.returncode, out.decode()

    def pid(self, name: str) -> int:
        return int((self.root / "data" / f"{name}.pid").read_text())

    async def outbox(self) -> list[dict[str, object]]:
        async with httpx.AsyncClient(headers={"X-Api-Key": API_KEY}) as client:
            response = await client.get(f"{self.sidecar_url}/fake/outbox")
            response.raise_for_status()
            body = response.json()
        sent: list[dict[str, object]] = body["messages"]
        return sent

    async def store_counts(self) -> tuple[dict[str, float], dict[str, float]]:
        """Deliveries by status and schedules by state in wasched's store, as GET /metrics
        reads them, zeros left out."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.core_url}/metrics")
            response.raise_for_status()
        counts: dict[str, dict[str, float]] = {"wasched_deliveries": {}, "wasched_schedules": {}}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name in counts and sample.value:
                    label = sample.labels.get("status") or sample.labels["state"]
                    counts[sample.name][label] = sample.value
        return counts["wasched_deliveries"], counts["wasched_schedules"]

    async def settled(self, within: float) -> tuple[dict[str, float], dict[str, float]]:
        """Wait until no schedule is active (each has fired its one occurrence, and a done
        schedule never fires again) and no delivery can still change; return the counts."""
        deliveries: dict[str, float] = {}
        schedules: dict[str, float] = {}
        for _ in range(int(within / 0.5)):
            deliveries, schedules = await self.store_counts()
            if "active" not in schedules and deliveries and not UNSETTLED & deliveries.keys():
                return deliveries, schedules
            await asyncio.sleep(0.5)
        log = (self.root / "data" / "wasched.log").read_text()[-3000:]
        raise AssertionError(
            f"wasched did not settle: deliveries {deliveries}, schedules {schedules}\n{log}"
        )


@pytest.fixture
def deployment(repo_copy: Path, telegram: FakeTelegram) -> Deployment:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "WHATSAPP_", "HTTP_", "DATABASE_", "WASCHED_"))
    }
    env.update(
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_URL=telegram.base_url,
        TELEGRAM_ADMIN_IDS=str(USER_ID),
        HTTP_PORT=str(free_port()),
        WHATSAPP_PORT=str(free_port()),
        WHATSAPP_ENGINE="fake",
        WHATSAPP_API_KEY=API_KEY,
        WASCHED_SKIP_INSTALL="1",
        SEND_GAP_MIN_S="0",
        SEND_GAP_MAX_S="0",
        DEFAULT_TIMEZONE="UTC",
    )
    return Deployment(repo_copy, env)


async def test_start_stop_start_keeps_a_schedule_that_fires_after_the_restart(
    deployment: Deployment, telegram: FakeTelegram
) -> None:
    code, out = await deployment.script("start.sh")
    assert code == 0, out
    assert "wasched is up" in out and "@wasched_test_bot" in out
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{deployment.sidecar_url}/health")).json()
        assert health["state"] == "WORKING" and health["engine"] == "fake"
        assert (await client.get(f"{deployment.core_url}/healthz")).status_code == 200
        metrics = (await client.get(f"{deployment.core_url}/metrics")).text
    families = {family.name for family in text_string_to_metric_families(metrics)}
    assert {"wasched_deliveries", "wasched_whatsapp_session_state"} <= families
    pids = (deployment.pid("wasched"), deployment.pid("whatsapp"))

    code, out = await deployment.script("status.sh")
    assert code == 0, out
    assert f"running (pid {pids[0]})" in out and f"running (pid {pids[1]})" in out
    assert "WhatsApp WORKING" in out and "nothing scheduled" in out

    code, out = await deployment.script("start.sh")
    assert code == 0, out
    assert "running already" in out
    assert (deployment.pid("wasched"), deployment.pid("whatsapp")) == pids

    await telegram.send(USER_ID, f"/schedule {NUMBER} | in 1 minute | {TEXT}")
    saved = await telegram.reply(USER_ID, "Saved", within=30)
    # Saved as typed: schedule #1, once, to the number, with the text.
    lines = saved.text.split("\n")
    assert len(lines) == 6 and lines[:2] == ["Saved.", ""], saved.text
    heading, recipient, when, quoted = lines[2:]
    assert heading.startswith("#1 ▶️ active · once on ") and when.startswith("next: ")
    assert (recipient, quoted) == (f"to {NUMBER}", f"“{TEXT}”")

    assert not [m for m in await deployment.outbox() if m.get("text") == TEXT]

    code, out = await deployment.script("stop.sh")
    assert code == 0, out
    assert "SIGKILL" not in out
    # The fake engine keeps its outbox on disk: nothing went out before or during the stop.
    outbox_file = deployment.root / "data" / "whatsapp" / "fake-outbox.json"
    assert TEXT not in (outbox_file.read_text() if outbox_file.exists() else "")
    assert "wasched stopped" in out and "the WhatsApp sidecar stopped" in out
    assert all(exited(pid) for pid in pids)
    assert not list((deployment.root / "data").glob("*.pid"))
    assert "stopped cleanly" in (deployment.root / "data" / "whatsapp.log").read_text()

    code, out = await deployment.script("start.sh")
    assert code == 0, out

    # The schedule is due about a minute after it was made. Settled: it is done and its
    # delivery has had every ack, so it has gone out as often as it ever will.
    assert await deployment.settled(within=120) == ({"read": 1}, {"done": 1})
    # And a later pass: a second one-shot made now goes out only when the engine looks again.
    # Once that one has settled too, a late second send of the first would be in the outbox.
    since = telegram.cursor()
    await telegram.send(USER_ID, f"/schedule {NUMBER} | in 5 seconds | {LATER}")
    assert "#2 ▶️ active" in (await telegram.reply(USER_ID, "Saved", since=since, within=30)).text
    assert await deployment.settled(within=60) == ({"read": 2}, {"done": 2})
    sent = [(m["text"], m["to"]) for m in await deployment.outbox()]
    assert sent == [(TEXT, CHAT), (LATER, CHAT)]

    code, out = await deployment.script("stop.sh")
    assert code == 0 and "SIGKILL" not in out, out
