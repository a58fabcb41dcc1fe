"""Does the store take writes? One answer for `/healthz`, `/metrics`, the bot's `/status` and
the log, fed by a bounded write check and by the writes the engine makes.

A store that fails writes is logged once when it starts failing and once when it works again,
not with a traceback per failed write. A check that does not finish within `within_s` (another
process holds the database's write lock) answers "busy" at once and is left to finish; the
next check waits for that one rather than queueing another behind the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from datetime import datetime

from core.adapters.store import Store
from core.domain.clock import Clock
from core.domain.errors import StoreError

logger = logging.getLogger(__name__)

# How long a health check waits for the store's write check (Compose allows 5 s in all).
STORE_CHECK_WAIT_S = 1.5
# While writes fail, how often the store is tried again, so that it is reported healthy once
# writes work even when nothing else writes (nothing due, nobody asking /healthz).
STORE_RECHECK_S = 5.0


class StoreState(enum.StrEnum):
    ok = "ok"
    # The write check did not finish within the bound: another process holds the lock.
    busy = "busy"
    # Writes fail (read-only, disk full, server gone): `StoreHealth.reason` says why.
    failing = "failing"


class StoreHealth:
    """Whether the store takes writes, as the last write check or write saw it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        within_s: float = STORE_CHECK_WAIT_S,
        recheck_s: float = STORE_RECHECK_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.within_s = within_s
        self.recheck_s = recheck_s
        self._rechecking: asyncio.Task[None] | None = None
        self.state = StoreState.ok
        self.reason = ""
        self.failing_since: datetime | None = None
        self._check: asyncio.Task[None] | None = None

    @property
    def writable(self) -> bool:
        return self.state is not StoreState.failing

    def failed(self, error: StoreError) -> None:
        """A write failed: log it once, when the store turns failing."""
        self.reason = str(error)
        if self.state is StoreState.failing:
            return
        self.state = StoreState.failing
        self.failing_since = self.clock.now()
        logger.warning("the database does not take writes: %s", self.reason)
        if self._rechecking is None or self._rechecking.done():
            self._rechecking = asyncio.get_running_loop().create_task(
                self._recheck(), name="store-recheck"
            )

    async def _recheck(self) -> None:
        while self.state is StoreState.failing:
            await self.clock.sleep(self.recheck_s)
            if self.state is StoreState.failing:
                await self.check()

    def worked(self) -> None:
        """A write went through: log it once, when the store was failing."""
        if self.state is StoreState.failing and self.failing_since is not None:
            logger.info(
                "the database takes writes again (after %.0f s of failures)",
                (self.clock.now() - self.failing_since).total_seconds(),
            )
        self.state = StoreState.ok
        self.reason = ""
        self.failing_since = None

    @property
    def checking(self) -> bool:
        """A write check is still waiting for the store."""
        return self._check is not None and not self._check.done()

    async def check(self) -> StoreState:
        """Write once (or join the check in flight) and answer within `within_s`."""
        if not self.checking:
            self._check = asyncio.get_running_loop().create_task(
                self._write(), name="store-write-check"
            )
        assert self._check is not None
        done, _ = await asyncio.wait({self._check}, timeout=self.within_s)
        if not done:
            if self.state is StoreState.ok:
                self.state = StoreState.busy
            return self.state
        return self.state

    async def _write(self) -> None:
        try:
            await self.store.check_writes()
        except StoreError as error:
            self.failed(error)
        except Exception as error:  # not translated by the store: still a failed write
            self.failed(StoreError(f"the write check failed: {type(error).__name__}: {error}"))
        else:
            self.worked()

    async def aclose(self) -> None:
        """Stop trying again; let a check in flight end before the store closes, within the
        check's bound (a MongoDB server that is gone would hold it for its whole server
        selection timeout, past a service manager's stop grace)."""
        if self._rechecking is not None:
            self._rechecking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rechecking
        if self._check is not None and not self._check.done():
            await asyncio.wait({self._check}, timeout=self.within_s)
            self._check.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await self._check
