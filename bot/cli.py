"""The `wasched` command: run the bot and core, and the admin subcommands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from core import __version__
from core.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasched", description="Schedule WhatsApp messages from a Telegram chat."
    )
    parser.add_argument("--version", action="version", version=f"wasched {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the Telegram bot and the scheduler (one process)")
    commands.add_parser("status", help="both processes, WhatsApp's state and the next run")
    commands.add_parser("check", help="check settings, database, sidecar and bot token")
    migrate = commands.add_parser("migrate", help="copy every record to another database")
    migrate.add_argument("--to", required=True, metavar="DATABASE_URL", help="an empty database")
    legacy = commands.add_parser(
        "import-legacy", help="import the old scheduler's MongoDB database"
    )
    legacy.add_argument("url", metavar="MONGODB_URL", help="e.g. mongodb://localhost:27017")
    legacy.add_argument("--db", default="whatsapp_scheduler", help="its database name")
    legacy.add_argument("--owner", type=int, help="Telegram user id the schedules belong to")
    legacy.add_argument("--timezone", help="zone of times without one (DEFAULT_TIMEZONE)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO (a line per sidecar probe and send); APScheduler a line
    # per wake-up. Their warnings and errors still show.
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "status":
            from core.status import status_command

            return asyncio.run(status_command())
        if args.command == "check":
            from core.check import check_command

            return asyncio.run(check_command())
        if args.command == "migrate":
            from core.migrate import migrate_command

            return asyncio.run(migrate_command(args.to))
        if args.command == "import-legacy":
            from core.legacy import import_legacy_command

            return asyncio.run(
                import_legacy_command(
                    args.url, database=args.db, owner=args.owner, timezone=args.timezone
                )
            )
        if args.command == "run":
            from core.config import load_settings

            settings = load_settings()
            settings.require_bot_token()
            from bot.app import run

            asyncio.run(run(settings))
    except ConfigError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
