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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
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
