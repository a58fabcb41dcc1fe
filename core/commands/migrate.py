"""`wasched migrate --to URL`: copy every record from one store to another, ids intact."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack

from core.adapters.store import Store, open_store
from core.domain.errors import ConfigError, TargetNotEmpty, WaschedError


async def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copy everything from `source` into the empty `target`; return counts per collection.

    Refuses (`TargetNotEmpty`) a target holding any record, so nothing is ever merged or
    overwritten by accident.
    """
    if not await target.is_empty():
        raise TargetNotEmpty(
            "The target database already holds data: migrate into a new, empty database "
            "(or empty this one yourself first)."
        )
    data = await source.export_all()
    await target.import_all(data)
    return {name: len(rows) for name, rows in data.items()}


async def migrate(source_url: str, target_url: str) -> dict[str, int]:
    """Open both stores by URL, copy, close both."""
    if _same_database(source_url, target_url):
        raise ConfigError(
            "--to names the database wasched uses now (DATABASE_URL): give another URL."
        )
    async with AsyncExitStack() as stack:
        source = await open_store(source_url)
        stack.push_async_callback(source.close)
        target = await open_store(target_url)
        stack.push_async_callback(target.close)
        return await copy_store(source, target)


def _same_database(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def summary(counts: dict[str, int], target_url: str) -> str:
    """What was copied, for the command line; never shows a password in the URL."""
    lines = [f"Copied to {redact_url(target_url)}:"]
    # "counters" are the id sequences, not records.
    lines += [f"  {name}: {n}" for name, n in sorted(counts.items()) if name != "counters"]
    lines.append(
        "Set DATABASE_URL to the new URL in .env and restart (bash deploy/stop.sh; "
        "bash deploy/start.sh) to use it."
    )
    return "\n".join(lines)


def redact_url(url: str) -> str:
    """`mongodb://user:secret@host/db` -> `mongodb://user:***@host/db`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


async def migrate_command(target_url: str) -> int:
    """`wasched migrate --to URL`: copy the store of DATABASE_URL to `target_url`."""
    from core.commands.status import data_dir, pid_alive, read_pid
    from core.config import load_settings

    settings = load_settings()
    pid = read_pid(data_dir() / "wasched.pid")
    if pid is not None and pid_alive(pid):
        print(
            f"wasched: the bot and scheduler process is running (pid {pid}): stop it first "
            "(bash deploy/stop.sh), so nothing changes during the copy",
            file=sys.stderr,
        )
        return 1
    try:
        counts = await migrate(settings.DATABASE_URL, target_url)
    except WaschedError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 1
    print(summary(counts, target_url))
    return 0
