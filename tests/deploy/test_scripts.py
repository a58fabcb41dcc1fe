"""deploy/ scripts on their own: the first run's questions, a stop that has to force."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.test_process import REPO, repo_files
from tests.fakes.sidecar import free_port

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuv"


@pytest.fixture
def bare_copy(tmp_path: Path) -> Path:
    """The repo's deploy scripts and .env.example, without an install or a .env."""
    root = tmp_path / "wasched"
    for name in repo_files():
        if name.startswith("deploy/") or name == ".env.example":
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / name).read_bytes())
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without wasched's settings, on free ports (start.sh refuses taken
    ones, and the defaults may be held by whatever else runs on this machine)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "WHATSAPP_", "HTTP_", "DATABASE_", "WASCHED_"))
    }
    env.update(HTTP_PORT=str(free_port()), WHATSAPP_PORT=str(free_port()))
    env.update(extra)
    return env


def test_start_without_a_terminal_or_token_stops_with_one_clear_line(bare_copy: Path) -> None:
    (bare_copy / ".venv" / "bin").mkdir(parents=True)
    (bare_copy / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (bare_copy / "whatsapp-service" / "node_modules").mkdir(parents=True)

    result = subprocess.run(
        ["bash", "deploy/start.sh"],
        cwd=bare_copy,
        env=clean_env(WASCHED_SKIP_INSTALL="1", WHATSAPP_ENGINE="fake"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert errors == [
        "wasched: TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather "
        f"(https://t.me/BotFather) and put TELEGRAM_BOT_TOKEN=... in {bare_copy}/.env, "
        "or run this in a terminal"
    ]
    assert (bare_copy / ".env").stat().st_mode & 0o777 == 0o600
    assert not list((bare_copy / "data").glob("*.pid"))


def read_until(fd: int, marker: bytes, within: float = 30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + within
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} in {seen.decode(errors='replace')!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the script ended
                break
            if not chunk:
                break
            seen += chunk
    return seen


def echo_turned_off(fd: int, within: float = 30.0) -> None:
    """Wait until the terminal no longer echoes: bash prints read's prompt before it turns
    echo off, so typing right after the prompt could still be shown."""
    deadline = time.monotonic() + within
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            raise AssertionError("the terminal still echoes what is typed")
        time.sleep(0.01)


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    main, other = pty.openpty()
    yield main, other
    for fd in (main, other):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_first_start_in_a_terminal_asks_for_the_token_and_keeps_it_private(
    bare_copy: Path, terminal: tuple[int, int]
) -> None:
    """The prompt refuses what is no token, saves a real one in .env (mode 600) and
    generates WHATSAPP_API_KEY. The copy holds no sidecar code, so the start ends right after
    the questions, when node cannot find it."""
    main, other = terminal
    (bare_copy / "whatsapp-service" / "node_modules").mkdir(parents=True)
    (bare_copy / ".venv" / "bin").mkdir(parents=True)
    (bare_copy / ".venv" / "bin" / "python").symlink_to(sys.executable)
    env = clean_env(
        WASCHED_SKIP_INSTALL="1",
        WHATSAPP_ENGINE="fake",
        WHATSAPP_PORT="1",
        WASCHED_START_TIMEOUT_S="5",
    )
    process = subprocess.Popen(
        ["bash", "deploy/start.sh"],
        cwd=bare_copy,
        env=env,
        stdin=other,
        stdout=other,
        stderr=other,
    )
    try:
        read_until(main, b"Bot token: ")
        echo_turned_off(other)
        os.write(main, b"not-a-token\n")
        shown = read_until(main, b"does not look like a bot token")
        echo_turned_off(other)
        os.write(main, TOKEN.encode() + b"\n")
        shown += read_until(main, b"saved the token")
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)

    env_file = (bare_copy / ".env").read_text()
    assert f"TELEGRAM_BOT_TOKEN={TOKEN}\n" in env_file
    # What is pasted is read without echo: neither the token nor the refused text is shown.
    assert b"not-a-token" not in shown and TOKEN.encode() not in shown, shown
    assert env_file.count("TELEGRAM_BOT_TOKEN=") == 1
    key_lines = [line for line in env_file.splitlines() if line.startswith("WHATSAPP_API_KEY=")]
    assert len(key_lines) == 1 and len(key_lines[0]) > len("WHATSAPP_API_KEY=") + 30
    assert (bare_copy / ".env").stat().st_mode & 0o777 == 0o600


def test_stop_kills_only_as_a_last_resort_and_says_so(bare_copy: Path) -> None:
    data = bare_copy / "data"
    data.mkdir()
    # A "sidecar" that ignores SIGTERM (its command line names src/server.js like the real one).
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
            "src/server.js",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    (data / "whatsapp.pid").write_text(f"{stubborn.pid}\n")
    (data / "wasched.pid").write_text("999999\n")  # stale: no such process
    try:
        assert stubborn.stdout is not None
        assert stubborn.stdout.readline() == "ready\n"  # the handler is installed
        result = subprocess.run(
            ["bash", "deploy/stop.sh"],
            cwd=bare_copy,
            env=clean_env(WASCHED_STOP_TIMEOUT_S="1"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()
        assert stubborn.stdout is not None
        stubborn.stdout.close()

    assert result.returncode == 1
    assert "wasched: the bot and scheduler process is not running" in result.stdout
    assert "did not exit within 1 s after SIGTERM: sending SIGKILL" in result.stderr
    assert not list(data.glob("*.pid"))


def test_stop_never_signals_a_process_that_merely_reuses_a_recorded_pid(
    bare_copy: Path,
) -> None:
    data = bare_copy / "data"
    data.mkdir()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    (data / "wasched.pid").write_text(f"{bystander.pid}\n")
    try:
        result = subprocess.run(
            ["bash", "deploy/stop.sh"],
            cwd=bare_copy,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert result.returncode == 0
    assert "wasched: the bot and scheduler process is not running" in result.stdout


def test_the_sidecar_log_writer_rotates_by_size_and_keeps_the_newest_lines(
    tmp_path: Path,
) -> None:
    log = tmp_path / "whatsapp.log"
    lines = [f'{{"level":30,"n":{n:04d},"msg":"{"x" * 30}"}}\n' for n in range(200)]
    result = subprocess.run(
        [sys.executable, "deploy/log_writer.py", str(log), "--max-bytes", "1000", "--keep", "3"],
        cwd=REPO,
        input="".join(lines),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "whatsapp.log",
        "whatsapp.log.1",
        "whatsapp.log.2",
        "whatsapp.log.3",
    ]
    kept = [log.with_name(f"whatsapp.log.{n}") for n in (3, 2, 1)] + [log]
    assert all(0 < p.stat().st_size <= 1000 for p in kept)
    # Oldest to newest, whole lines, none lost between the files, the last line last.
    text = "".join(p.read_text() for p in kept)
    assert text == "".join(lines[-len(text.splitlines()) :])
    assert len(text.splitlines()) >= 3 * (1000 // len(lines[0]))


def test_wasched_log_file_rotates_by_size_and_takes_stderr_along(tmp_path: Path) -> None:
    """start.sh points wasched's stdout and stderr at the log too: after a rotation what is
    printed outside logging (a traceback) must land in the current file, not a rotated one."""
    log = tmp_path / "wasched.log"
    program = (
        "import logging, sys\n"
        "from bot.cli import LogFile, LOG_FORMAT\n"
        f"handler = LogFile({str(log)!r}, max_bytes=2000, kept=3)\n"
        "logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=[handler])\n"
        "for n in range(200):\n"
        "    logging.getLogger('core.delivery.engine').info('line %04d', n)\n"
        "print('printed after the rotations', file=sys.stderr)\n"
    )
    with log.open("ab") as output:  # as start.sh launches it: >>wasched.log 2>&1
        result = subprocess.run(
            [sys.executable, "-c", program],
            cwd=REPO,
            stdout=output,
            stderr=output,
            timeout=30,
        )

    assert result.returncode == 0, log.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "wasched.log",
        "wasched.log.1",
        "wasched.log.2",
        "wasched.log.3",
    ]
    current = log.read_text().splitlines()
    assert current[-1] == "printed after the rotations"
    assert current[-2].endswith("INFO core.delivery.engine: line 0199")
    for rotated in (log.with_name(f"wasched.log.{n}") for n in (1, 2, 3)):
        assert rotated.stat().st_size <= 2000
        assert "printed after" not in rotated.read_text()
