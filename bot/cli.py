"""The `wasched` command: run the bot and core, and the admin subcommands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from logging.handlers import RotatingFileHandler

from core import __version__
from core.domain.errors import ConfigError, StoreError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# `wasched run --log-file FILE`: FILE rotates at this size; FILE.1 ... FILE.3 are kept.
LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
LOG_FILES_KEPT = 3


class LogFile(RotatingFileHandler):
    """The log file of `wasched run --log-file`, rotated by size. stdout and stderr follow it,
    so what is printed outside logging (a traceback, the one-line start-up error) lands in the
    current file rather than in one already rotated away."""

    def __init__(
        self, path: str, max_bytes: int = LOG_FILE_MAX_BYTES, kept: int = LOG_FILES_KEPT
    ) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=kept, encoding="utf-8")
        self._take_output()

    def doRollover(self) -> None:
        super().doRollover()
        self._take_output()

    def _take_output(self) -> None:
        if self.stream is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            os.dup2(self.stream.fileno(), fd)


def configure_logging(log_file: str | None = None) -> None:
    """INFO to stderr, or to a rotating log file when one is given."""
    handlers: list[logging.Handler] | None = [LogFile(log_file)] if log_file else None
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasched", description="Schedule WhatsApp messages from a Telegram chat."
    )
    parser.add_argument("--version", action="version", version=f"wasched {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the Telegram bot and the scheduler (one process)")
    run.add_argument(
        "--log-file",
        metavar="FILE",
        help="log (and stdout, stderr) into FILE, rotated at 10 MB with 3 old files kept",
    )
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
    # What wasched creates (database, log files, directories) is private however it was
    # started (systemd, compose, by hand): the messages and the numbers are in there.
    os.umask(0o077)
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    configure_logging(getattr(args, "log_file", None))
    # httpx (wasched check, status) logs every request at INFO; APScheduler a line per
    # wake-up. Their warnings and errors still show.
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "status":
            from core.commands.status import status_command

            return asyncio.run(status_command())
        if args.command == "check":
            from core.commands.check import check_command

            return asyncio.run(check_command())
        if args.command == "migrate":
            from core.commands.migrate import migrate_command

            return asyncio.run(migrate_command(args.to))
        if args.command == "import-legacy":
            from core.commands.legacy import import_legacy_command

            return asyncio.run(
                import_legacy_command(
                    args.url, database=args.db, owner=args.owner, timezone=args.timezone
                )
            )
        if args.command == "run":
            from core.config import load_settings

            settings = load_settings()
            settings.require_bot_token()
            settings.require_api_key()
            from bot.app import run

            asyncio.run(run(settings))
    except ConfigError as exc:
        print(f"wasched: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # a database that cannot be opened or written: one line
        print(f"wasched: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
