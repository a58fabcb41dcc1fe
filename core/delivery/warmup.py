"""Warm-up: a newly linked WhatsApp number starts with a lower daily cap that grows each day.

WhatsApp is quicker to restrict a number that starts sending many messages at once. For
`days` days from the day a number was first linked (day 1 is its first 24 hours), the daily
cap is `ceil(daily_cap * day / (days + 1))`: with 7 days and a cap of 400 that is 50, 100,
... 350, then 400 from day 8 on. The day a number was first seen working is kept in the store
(one key per number), so a restart, or linking the same number again, does not start over.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.adapters.store import Store
    from core.domain.clock import Clock

logger = logging.getLogger(__name__)

# When a number (WhatsApp's id for the account, e.g. 4915...@c.us) first worked here.
LINKED_SINCE_KEY = "whatsapp_linked_since:{}"

DAY = timedelta(days=1)


def warmup_cap(daily_cap: int, days: int, day: int) -> int:
    """The daily cap on warm-up `day` (1 = the first 24 hours) of `days`; `daily_cap` once
    warm-up is over or off."""
    if days <= 0 or day > days:
        return daily_cap
    return max(1, min(daily_cap, math.ceil(daily_cap * max(1, day) / (days + 1))))


@dataclass(frozen=True)
class WarmUpDay:
    """Where the current number is in its warm-up: day `day` of `days`, with `cap` sends a
    day, until `ends_at`."""

    day: int
    days: int
    cap: int
    ends_at: datetime


class WarmUp:
    """The warm-up of the number the session works with (told by the sender)."""

    def __init__(self, store: Store, clock: Clock, *, days: int, daily_cap: int) -> None:
        self.store = store
        self.clock = clock
        self.days = days
        self.daily_cap = daily_cap
        self.number: str | None = None
        self.since: datetime | None = None

    async def linked(self, number: str) -> None:
        """The session works with `number`: remember the first time it did."""
        if number == self.number and self.since is not None:
            return
        key = LINKED_SINCE_KEY.format(number)
        now = self.clock.now()
        if await self.store.claim_value(key, now.isoformat()):
            logger.info("a WhatsApp number not seen before is linked; its warm-up starts")
        value = await self.store.get_value(key)
        self.number = number
        self.since = datetime.fromisoformat(value) if value is not None else now

    def today(self, now: datetime) -> WarmUpDay | None:
        """The warm-up day at `now`; None when warm-up is off, over, or no number is known."""
        if self.days <= 0 or self.since is None:
            return None
        day = int((now - self.since) / DAY) + 1
        if day > self.days:
            return None
        cap = warmup_cap(self.daily_cap, self.days, day)
        return WarmUpDay(day, self.days, cap, self.since + day * DAY)

    def cap(self, now: datetime) -> int:
        """The daily cap at `now`."""
        today = self.today(now)
        return today.cap if today is not None else self.daily_cap
