"""deploy/start.sh and stop.sh for real: a copy of the repo, the sidecar in its fake engine,
the fake Telegram Bot API, free ports. A person's schedule survives a stop and a start; a
failed start leaves nothing running; the last lines say what WhatsApp needs; a second copy
is refused before it installs anything."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
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


def copy_repo(root: Path) -> Path:
    """The repo's files (no .venv, no node_modules) in root, another checkout."""
    for name in repo_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)  # keeps mtimes: start.sh sees nothing to install
    return root


def kill_leftovers(root: Path) -> None:
    """Never leave a process behind a failed test."""
    for name in ("wasched", "whatsapp"):
        pid_file = root / "data" / f"{name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Iterator[Path]:
    """The repo's files in tmp_path, sharing the installed .venv and node_modules."""
    venv, modules = REPO / ".venv", REPO / "whatsapp-service" / "node_modules"
    if not (venv / "bin" / "python").exists() or not modules.is_dir():
        pytest.skip("needs .venv and whatsapp-service/node_modules (bash scripts/test installs)")
    root = copy_repo(tmp_path / "wasched")
    (root / ".venv").symlink_to(venv)
    (root / "whatsapp-service" / "node_modules").symlink_to(modules)
    yield root
    kill_leftovers(root)


def pids_in(root: Path) -> dict[str, int]:
    """The pid files under root/data and the pids they hold."""
    return {
        path.stem: int(path.read_text())
        for path in (root / "data").glob("*.pid")
        if path.read_text().strip().isdigit()
    }


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


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

    async def script(self, name: str, root: Path | None = None, **env: str) -> tuple[int, str]:
        """Run deploy/<name> with no terminal, as CI would; return exit code and output.
        root: another checkout to run it in; env: settings on top of the deployment's."""
        root = root or self.root
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(root / "deploy" / name),
            cwd=root,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
        assert process.returncode is not None
        text = out.decode()
        doubled = [line for line in text.splitlines() if line.startswith("wasched: wasched")]
        assert not doubled, text  # every message starts with "wasched: " once
        return process.returncode, text

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
    assert "wasched: running, and WhatsApp is linked as wasched fake" in out
    assert "@wasched_test_bot" in out
    assert "/link" not in out and "QR" not in out, out  # linked already: no link advice
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
    assert out.count("SIGKILL") == 0, out
    session = deployment.root / "data" / "whatsapp"
    assert (
        f"the WhatsApp session is kept in {session} (linked as wasched fake): "
        "the next start needs no new QR code"
    ) in out
    # The fake engine keeps its outbox on disk: nothing went out before or during the stop.
    outbox_file = deployment.root / "data" / "whatsapp" / "fake-outbox.json"
    assert TEXT not in (outbox_file.read_text() if outbox_file.exists() else "")
    assert "wasched: the bot and scheduler process stopped" in out
    assert "the WhatsApp sidecar stopped" in out
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


async def test_a_start_whose_wasched_cannot_start_leaves_nothing_running(
    deployment: Deployment,
) -> None:
    # The database path runs through a file, so wasched cannot create its directory.
    (deployment.root / "blocker").write_text("not a directory\n")
    database = f"sqlite:///{deployment.root}/blocker/wasched.db"

    code, out = await deployment.script("start.sh", DATABASE_URL=database)

    assert code == 1, out
    sidecar = re.search(r"WhatsApp sidecar started \(pid (\d+)", out)
    assert sidecar, out  # it was started, and then stopped again, cleanly:
    assert exited(int(sidecar.group(1))), out
    assert all(exited(pid) for pid in pids_in(deployment.root).values())
    assert not answers(f"{deployment.sidecar_url}/health")
    assert "stopped cleanly" in (deployment.root / "data" / "whatsapp.log").read_text()
    lines = out.splitlines()
    assert "wasched: the bot and scheduler process could not start:" in lines, out
    error = lines[lines.index("wasched: the bot and scheduler process could not start:") + 1]
    # wasched's own one line (no traceback), as start.sh shows it.
    assert error.startswith("  Cannot create the directory of "), out
    assert "Traceback" not in (deployment.root / "data" / "wasched.log").read_text()
    assert f"{deployment.root}/blocker/wasched.db" in error
    assert "wasched: the WhatsApp sidecar stopped" in lines, out
    assert "wasched: nothing this start launched is left running" in lines, out
    assert "wasched: running" not in out


@pytest.mark.parametrize(
    ("state", "failure", "expected"),
    [
        (
            "SCAN_QR_CODE",
            "",
            "  2. send /link and scan the QR code with WhatsApp (Settings > Linked devices)",
        ),
        (
            "FAILED",
            "whatsapp_web_unreachable:net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/",
            "net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/",
        ),
    ],
    ids=["waiting_for_a_link", "failing"],
)
async def test_start_ends_with_what_whatsapp_needs(
    deployment: Deployment, state: str, failure: str, expected: str
) -> None:
    code, out = await deployment.script(
        "start.sh", WHATSAPP_FAKE_START_STATE=state, WHATSAPP_FAKE_FAILURE=failure
    )

    assert code == 0, out
    steps = out[out.index("wasched: running") :]
    assert expected in steps, out
    assert "linked as" not in steps
    if state == "FAILED":
        assert steps.startswith("wasched: running, but WhatsApp is not working"), out
        assert "scan the QR code" not in steps and "\n  fix: " in steps, out
    else:
        assert "not working" not in steps and "fix:" not in steps, out

    code, out = await deployment.script("stop.sh")
    assert code == 0 and out.count("SIGKILL") == 0, out
    session = deployment.root / "data" / "whatsapp"
    if state == "FAILED":
        assert (
            f"the WhatsApp session in {session} is kept; WhatsApp was not working "
            "(state FAILED, whatsapp_web_unreachable)"
        ) in out, out
    else:
        assert f"the WhatsApp session folder {session} is kept, but WhatsApp was not linked" in out
        assert "after the next start, send /link to the bot" in out


async def test_the_first_start_says_the_owner_code_while_telegram_does_not_answer_yet(
    deployment: Deployment,
) -> None:
    """No admin ids, and Telegram not reached within the wait: the one-time code is still in
    start.sh's output (the bot's /start hint says it is there)."""
    code, out = await deployment.script(
        "start.sh",
        TELEGRAM_ADMIN_IDS="",
        TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens
        WASCHED_BOT_WAIT_S="1",
    )
    try:
        assert code == 0, out
        assert "wasched: warning: the bot has not reached Telegram yet" in out, out
        logged = re.findall(
            r"send /start (\d+)", (deployment.root / "data" / "wasched.log").read_text()
        )
        assert logged, out
        assert f"send /start {logged[-1]} (this one-time code makes you the bot's owner)" in out
    finally:
        code, stopped = await deployment.script("stop.sh")
        assert code == 0, stopped


async def test_a_second_copy_is_refused_before_it_installs_anything(
    deployment: Deployment, tmp_path: Path
) -> None:
    code, out = await deployment.script("start.sh")
    assert code == 0, out
    running = pids_in(deployment.root)
    other = copy_repo(tmp_path / "other-checkout")  # nothing installed there
    try:
        code, out = await deployment.script("start.sh", root=other, WASCHED_SKIP_INSTALL="")
    finally:
        kill_leftovers(other)

    assert code == 1, out
    assert not (other / ".venv").exists()
    assert not (other / "whatsapp-service" / "node_modules").exists()
    stop = f"stop it with bash {deployment.root}/deploy/stop.sh"
    core, sidecar = running["wasched"], running["whatsapp"]
    assert (
        f"wasched: HTTP_PORT {deployment.env['HTTP_PORT']} is taken: wasched from "
        f"{deployment.root} (pid {core}) holds it: {stop}"
    ) in out.splitlines(), out
    assert (
        f"wasched: WHATSAPP_PORT {deployment.env['WHATSAPP_PORT']} is taken: wasched from "
        f"{deployment.root} (pid {sidecar}) holds it: {stop}"
    ) in out.splitlines(), out
    assert not [line for line in out.splitlines() if "installing" in line or "creating" in line]
    assert "sidecar started" not in out and "process started" not in out
    assert not list((other / "data").glob("*.pid"))
    assert pids_in(deployment.root) == running and not any(map(exited, running.values()))

    code, out = await deployment.script("stop.sh")
    assert code == 0 and out.count("SIGKILL") == 0, out
