"""The background loop `Receipts` and `AckWatch` share: started once, stopped by cancelling,
woken early, asleep on the injected clock, and a failure logged once until passes work again.
Each subclass keeps its own logic in `_run`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from core.domain.clock import Clock


class Loop:
    """One task named `name` running `_run`, when `enabled`; logs to the subclass's `log`."""

    name = "loop"
    # Said at start-up when the loop is off (its setting is 0).
    off_text = "off"

    def __init__(self, clock: Clock, log: logging.Logger) -> None:
        self.clock = clock
        self.log = log
        self._wake = asyncio.Event()
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        # While the loop waits on the clock (between passes or pages): until when.
        self.waiting_until: datetime | None = None

    @property
    def enabled(self) -> bool:
        raise NotImplementedError

    async def _run(self) -> None:
        raise NotImplementedError

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if not self.enabled:
            self.log.info("%s", self.off_text)
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- waiting ---------------------------------------------------------------------
    def wake(self) -> None:
        """End the current `nap` now."""
        self._wake.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the clock for `seconds`; `wake()` does not cut it short."""
        self.waiting_until = self.clock.now() + timedelta(seconds=seconds)
        try:
            await self.clock.sleep(seconds)
        finally:
            self.waiting_until = None

    async def nap(self, seconds: float) -> None:
        """Sleep on the clock until `seconds` passed or `wake()` woke the loop."""
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        self.waiting_until = self.clock.now() + timedelta(seconds=seconds)
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting_until = None
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)
        self._wake.clear()

    # --- failures, logged once -------------------------------------------------------
    def failed(self, text: str, *args: object, traceback: bool = False) -> None:
        """A pass failed: say so the first time only (`traceback`: with the exception)."""
        if not self._failing:
            if traceback:
                self.log.exception(text, *args)
            else:
                self.log.info(text, *args)
        self._failing = True

    def worked(self, text: str) -> None:
        """A pass went through: say so once after failures."""
        if self._failing:
            self.log.info("%s", text)
        self._failing = False
