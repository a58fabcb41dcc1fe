"""Copy the WhatsApp sidecar's output (stdin) into a log file that rotates by size.

pino has no rotation of its own, so start.sh pipes the sidecar through this: FILE grows to
--max-bytes, then becomes FILE.1 (FILE.1 becomes FILE.2, ...), and --keep old files are kept.
It ends when the sidecar closes its output, so it never outlives the sidecar; Ctrl-C and a
closed terminal do not stop it early (the sidecar would lose its log). Standard library only.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from logging.handlers import RotatingFileHandler
from typing import TextIO

MAX_BYTES = 10 * 1024 * 1024
KEEP = 3
# A line longer than this is written in pieces, so one huge line cannot fill the memory.
LONGEST_LINE = 64 * 1024


def open_log(path: str, max_bytes: int, keep: int) -> RotatingFileHandler:
    """A handler that writes each line as it came and rotates before the file passes max_bytes."""
    handler = RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8", errors="replace"
    )
    handler.terminator = ""  # lines keep their own newline
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def copy_lines(source: TextIO, handler: RotatingFileHandler) -> None:
    """Write every line of source to handler until source ends."""
    while line := source.readline(LONGEST_LINE):
        handler.emit(logging.makeLogRecord({"msg": line}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    parser.add_argument("--keep", type=int, default=KEEP)
    args = parser.parse_args(argv)
    for terminal_signal in (signal.SIGINT, signal.SIGHUP):
        signal.signal(terminal_signal, signal.SIG_IGN)
    handler = open_log(args.file, args.max_bytes, args.keep)
    try:
        with open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False) as source:
            copy_lines(source, handler)
    finally:
        handler.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
