"""A database file SQLite really cannot write, and a disk that really is full.

Tests run as root, where `chmod 0444` does not stop a write: as root the file is bind-mounted
read-only over itself (SQLite then opens it read-only and refuses the first write with
SQLITE_READONLY, as it does for another user's 0444 file), and a full disk is a small tmpfs
filled up (SQLite answers SQLITE_FULL "database or disk is full" when the WAL cannot grow).
Without the right to mount, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        pytest.skip(f"needs mount (root with CAP_SYS_ADMIN): {detail}")


def _umount(path: Path) -> None:
    """Unmount; lazily when something still holds it open, so no mount outlives the test
    (pytest removes old temporary directories, and cannot remove a mount point)."""
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """While the block runs, the file at `path` cannot be written by this user (its
    directory can, so SQLite opens it read-only with its -wal and -shm files beside it)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield
    finally:
        _umount(path)


@contextlib.contextmanager
def small_disk(directory: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` (created) while the block runs."""
    if os.geteuid() != 0:
        pytest.skip("needs a small disk of its own: mount a tmpfs as root")
    directory.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    try:
        yield directory
    finally:
        _umount(directory)


def fill(directory: Path) -> Path:
    """Fill the disk holding `directory` to the last byte; delete the file to free it."""
    filler = directory / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # The last partial block: write byte by byte until nothing more fits.
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0")
    return filler
