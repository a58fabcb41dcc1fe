"""wasched started the way systemd, compose or a person would (no start.sh, umask 022, another
working directory): what it creates is private, and its data lands in WASCHED_DATA_DIR."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.sidecar import free_port

REPO = Path(__file__).resolve().parents[2]
API_KEY = "private-files-key-0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def environment(data_dir: Path, **values: str) -> dict[str, str]:
    """Only what a unit file's EnvironmentFile would give, plus PATH; no repo .env is read
    for what is set here (the environment wins over .env)."""
    env = {
        "PATH": os.environ["PATH"],
        "WASCHED_DATA_DIR": str(data_dir),
        "DATABASE_URL": "",
        "WHATSAPP_API_KEY": API_KEY,
        "WHATSAPP_URL": f"http://127.0.0.1:{free_port()}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
    }
    env.update(values)
    return env


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """`args` under umask 022, systemd's default, from `cwd`."""
    return subprocess.Popen(
        ["/bin/sh", "-c", 'umask 022 && exec "$@"', "sh", sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the repo."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


@pytest.fixture
def core_process(tmp_path: Path, elsewhere: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    data_dir = tmp_path / "state" / "wasched"  # neither exists yet
    env = environment(data_dir)
    process = start(["-m", "core"], env, elsewhere)
    url = f"http://127.0.0.1:{env['HTTP_PORT']}/healthz"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(f"core exited: {process.communicate()[0]}")
            try:
                httpx.get(url, timeout=1)  # 503 is fine: the sidecar is not there
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("core never answered")
        yield process, data_dir
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.communicate()


@pytest.mark.slow
def test_core_started_like_systemd_keeps_its_data_dir_and_database_private(
    core_process: tuple[subprocess.Popen[str], Path], elsewhere: Path
) -> None:
    _, data_dir = core_process
    database = data_dir / "wasched.db"
    assert database.is_file()
    assert list(elsewhere.iterdir()) == [], "nothing lands in the working directory"
    assert mode(data_dir) == 0o700
    assert mode(data_dir.parent) == 0o700  # created for it too
    assert mode(database) == 0o600
    for suffix in ("-wal", "-shm"):
        side = data_dir / f"wasched.db{suffix}"
        assert side.exists(), side
        assert mode(side) == 0o600, side


def test_wasched_run_log_file_is_private(tmp_path: Path, elsewhere: Path) -> None:
    """The log file is created before the settings are read; a missing token ends the run."""
    log = tmp_path / "logs" / "wasched.log"
    log.parent.mkdir()
    env = environment(tmp_path / "data", TELEGRAM_BOT_TOKEN="")
    done = start(["-m", "bot", "run", "--log-file", str(log)], env, elsewhere)
    done.communicate(timeout=60)
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is missing" in log.read_text()
    assert mode(log) == 0o600


@pytest.mark.parametrize("command", [["-m", "core"], ["-m", "bot", "run"]])
def test_without_an_api_key_neither_entry_point_starts(
    tmp_path: Path, elsewhere: Path, command: list[str]
) -> None:
    env = environment(
        tmp_path / "data",
        WHATSAPP_API_KEY=" ",
        TELEGRAM_BOT_TOKEN="123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
    )
    process = start(command, env, elsewhere)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert output.splitlines() == [
        "wasched: WHATSAPP_API_KEY is missing: put WHATSAPP_API_KEY=<a long random string> in "
        ".env (the sidecar reads the same one); make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    ]
    assert not (tmp_path / "data").exists(), "nothing was created"
