"""What the tests that run wasched as real processes share: a burst due at once in the store,
starting `python -m core` (or `python -m bot run`) with its output in a log, and waiting for
every delivery to end."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from core.adapters.store import Store, open_store
from core.domain.clock import SystemClock
from core.domain.models import (
    FINAL_STATUSES,
    DeliveryFilter,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
)

REPO = Path(__file__).resolve().parents[2]

Process = asyncio.subprocess.Process


def address(schedule: int, recipient: int) -> str:
    """The number of the burst's `recipient` of `schedule`."""
    return f"+4915100{schedule:03d}{recipient:03d}"


async def seed_burst(
    database_url: str, *, schedules: int, recipients: int, owner_id: int = 1, text: str = "burst"
) -> None:
    """`schedules` one-shot schedules due five seconds ago, each to `recipients` numbers;
    schedule n says "`text` n" (just `text` where there is one schedule)."""
    store = await open_store(database_url)
    try:
        at = SystemClock().now() - timedelta(seconds=5)
        for n in range(schedules):
            await store.add_schedule(
                owner_id=owner_id,
                recipients=[
                    Recipient(kind=RecipientKind.phone, address=address(n, r))
                    for r in range(recipients)
                ],
                rule=Rule(kind=RuleKind.once, timezone="UTC", at=at),
                next_run_at=at,
                text=f"{text} {n}" if schedules > 1 else text,
            )
    finally:
        await store.close()


async def start_python(*args: str, env: dict[str, str], log: Path, cwd: Path = REPO) -> Process:
    """`python *args` (`-m core`, `-m bot run`) with `env`, its output appended to `log`."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=cwd, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )


async def all_final(store: Store, count: int) -> bool:
    """The store holds `count` deliveries and every one has ended."""
    found = await store.list_deliveries(DeliveryFilter())
    return len(found) == count and all(d.status in FINAL_STATUSES for d in found)
