"""`python -m core`: core alone (no bot), until SIGTERM or SIGINT; notifications go to the log."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from core.app import open_core
from core.config import Settings, load_settings
from core.delivery.notifier import LoggingNotifier
from core.domain.errors import ConfigError, StoreError

logger = logging.getLogger("core")


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_core(settings, notifier=LoggingNotifier()) as core:
        logger.info("wasched core running (%s); stop with SIGTERM or Ctrl-C", core.url)
        await stop.wait()
        logger.info("stopping: draining the send in flight")
    logger.info("stopped cleanly")


def main() -> int:
    # What this process creates (the database, its -wal and -shm, directories) is private,
    # however it was started (systemd, compose, by hand).
    os.umask(0o077)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(load_settings()))
    except ConfigError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
