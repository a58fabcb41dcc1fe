"""`wasched status`: are wasched and the sidecar running, is WhatsApp linked, what runs next.

`deploy/start.sh` keeps pid files and logs in the data directory (`WASCHED_DATA_DIR`, default
`data/` in the repo): `wasched.pid`, `whatsapp.pid`, `wasched.log`, `whatsapp.log`. Processes
run by systemd or compose have no pid file; their health endpoints still answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError

from core.adapters.sidecar_contract import SessionHealth
from core.adapters.store import open_store
from core.config import REPO_ROOT, Settings, load_settings
from core.domain.errors import ConfigError, WaschedError
from core.domain.models import DeliveryStatus, Schedule, ScheduleState
from core.domain.session import UNREACHABLE, explain

HTTP_TIMEOUT_S = 3.0


def data_dir() -> Path:
    """Where start.sh keeps pid and log files: WASCHED_DATA_DIR from the environment or .env
    (the settings' one meaning), else `data/` in the repo."""
    try:
        return Path(load_settings().WASCHED_DATA_DIR)
    except ConfigError:
        configured = os.environ.get("WASCHED_DATA_DIR", "")
        path = Path(configured) if configured else REPO_ROOT / "data"
        return path if path.is_absolute() else REPO_ROOT / path


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int | None
    running: bool
    answers: bool
    detail: str
    # Lines printed under it: why WhatsApp does not work and what to do.
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        if self.running and self.pid is not None:
            head = f"running (pid {self.pid})"
        elif self.answers:
            head = "running (not started by deploy/start.sh)"
        elif self.pid is not None:
            head = f"not running (stale pid file, pid {self.pid})"
        else:
            head = "not running"
        return f"{head}; {self.detail}" if self.detail else head


async def _get_json(client: httpx.AsyncClient, url: str) -> tuple[bool, object]:
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return False, None
    try:
        return True, response.json()
    except ValueError:
        return True, None


async def sidecar_status(settings: Settings, client: httpx.AsyncClient) -> ProcessStatus:
    pid = read_pid(data_dir() / "whatsapp.pid")
    answers, body = await _get_json(client, f"{settings.WHATSAPP_URL}/health")
    notes: tuple[str, ...] = ()
    health: SessionHealth | None = None
    if answers and body is not None:
        try:
            health = SessionHealth.model_validate(body)
        except ValidationError:
            health = None
    if not answers:
        detail = f"{settings.WHATSAPP_URL} does not answer"
        notes = (f"fix: {explain(UNREACHABLE).fix}",)
    elif health is not None:
        words = explain(health.state, health.failure)
        detail = f"WhatsApp {health.state}"
        if words.working and health.me is not None:
            detail += f" as {health.me.get('name') or health.me.get('id') or '?'}"
        detail += f" ({health.engine} engine)"
        if not words.working:
            why = f"{words.reason} ({words.detail})" if words.detail else words.reason
            notes = (f"why: {why}", f"fix: {words.fix}")
    elif body is None:
        detail = "answers, but not with JSON"
    else:
        detail = "answers, but not as the WhatsApp service does (check WHATSAPP_URL)"
    running = pid is not None and pid_alive(pid)
    return ProcessStatus("whatsapp", pid, running, answers, detail, notes)


async def core_status(settings: Settings, client: httpx.AsyncClient) -> ProcessStatus:
    pid = read_pid(data_dir() / "wasched.pid")
    url = f"http://{settings.HTTP_HOST}:{settings.HTTP_PORT}/healthz"
    answers, health = await _get_json(client, url)
    detail = f"{url} answers" if answers else f"{url} does not answer"
    running = pid is not None and pid_alive(pid)
    return ProcessStatus("wasched", pid, running, answers, detail, database_notes(health))


def database_notes(health: object) -> tuple[str, ...]:
    """What core's /healthz says of a database that is busy or does not take writes."""
    if not isinstance(health, dict):
        return ()
    database = health.get("database")
    error = database.get("error") if isinstance(database, dict) else None
    if health.get("store") == "busy":
        return ("database: busy (another process holds its lock); due runs wait, none is lost",)
    if health.get("store") == "failing":
        return (f"database: does not take writes: {error or 'see the log'}",)
    return ()


def next_run_line(schedules: Sequence[Schedule], now: datetime) -> str:
    due = [s for s in schedules if s.state is ScheduleState.active and s.next_run_at]
    if not due:
        return "nothing scheduled"
    first = min(due, key=lambda s: (s.next_run_at or now, s.id))
    assert first.next_run_at is not None
    local = first.next_run_at.astimezone(ZoneInfo(first.rule.timezone))
    minutes = int((first.next_run_at - now).total_seconds() // 60)
    if minutes < 0:
        when = "due now"
    elif minutes < 120:
        when = f"in {minutes} min"
    else:
        when = f"in {minutes // 60} h"
    return f"#{first.id} at {local:%Y-%m-%d %H:%M} {first.rule.timezone} ({when})"


async def store_lines(settings: Settings, now: datetime) -> list[tuple[str, str]]:
    try:
        store = await asyncio.wait_for(open_store(settings.DATABASE_URL), 10)
    except (WaschedError, TimeoutError) as exc:
        return [("database", f"cannot be read: {exc or 'no answer'}")]
    try:
        schedules = await store.list_schedules()
        deliveries = await store.count_deliveries()
    except WaschedError as exc:
        return [("database", f"cannot be read: {exc}")]
    finally:
        await store.close()
    counts = {state: 0 for state in ScheduleState}
    for schedule in schedules:
        counts[schedule.state] += 1
    waiting = [
        f"{deliveries.get(status, 0)} {status.value}"
        for status in (DeliveryStatus.queued, DeliveryStatus.sending, DeliveryStatus.held)
        if deliveries.get(status, 0)
    ]
    return [
        ("next run", next_run_line(schedules, now)),
        ("schedules", ", ".join(f"{n} {state.value}" for state, n in counts.items())),
        ("deliveries", ", ".join(waiting) if waiting else "none waiting"),
    ]


async def status_command(now: datetime | None = None) -> int:
    """Print the status; exit code 0 when both processes answer, 3 when one does not."""
    # httpx logs every request at INFO, and a Bot API URL carries the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from core.domain.clock import SystemClock

    settings = load_settings()
    now = now or SystemClock().now()
    headers = {"X-Api-Key": settings.WHATSAPP_API_KEY} if settings.WHATSAPP_API_KEY else {}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, headers=headers) as client:
        core, sidecar = await asyncio.gather(
            core_status(settings, client), sidecar_status(settings, client)
        )
    rows = [("wasched", core.line())]
    rows += [("", note) for note in core.notes]
    rows += [("whatsapp", sidecar.line())]
    rows += [("", note) for note in sidecar.notes]
    rows += await store_lines(settings, now)
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0 if core.answers and sidecar.answers else 3
