"""/stats: how an owner's messages did, per day in their time zone over the last days.

Counted from the store's projection of each delivery's times (`Store.delivery_times`): a
message counts as sent, delivered and read on the day it was sent (so a day's read rate is the
share of that day's messages read so far), and as failed on the day it failed.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.adapters.store import DeliveryTimes, Store
from core.domain.clock import Clock
from core.domain.errors import InvalidInput
from core.domain.models import DeliveryStatus
from core.services.users import Users

DEFAULT_STATS_DAYS = 30
MAX_STATS_DAYS = 365
# How many of the schedules with the most failures the figures name.
TOP_FAILING = 3


@dataclass(frozen=True)
class DayFigures:
    """One day in the owner's time zone."""

    day: date
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0

    @property
    def read_rate(self) -> float | None:
        """Read / sent, None on a day nothing was sent."""
        return self.read / self.sent if self.sent else None


@dataclass(frozen=True)
class Figures:
    """What /stats shows for one owner over `days` days ending today (oldest day first)."""

    timezone: str
    days: tuple[DayFigures, ...]
    # Median seconds from sent to delivered, and to read; None when no message got there.
    median_to_delivered_s: float | None
    median_to_read_s: float | None
    # (schedule id, failures), most failures first, at most TOP_FAILING.
    top_failing: tuple[tuple[int, int], ...]

    def total(self, name: str) -> int:
        """The sum over the days of `sent`, `delivered`, `read` or `failed`."""
        return sum(int(getattr(day, name)) for day in self.days)

    @property
    def read_rate(self) -> float | None:
        sent = self.total("sent")
        return self.total("read") / sent if sent else None

    @property
    def empty(self) -> bool:
        """Nothing was sent and nothing failed in the period."""
        return not (self.total("sent") or self.total("failed"))


def stats_days(arg: str | None) -> int:
    """The number of days a person typed after /stats (none: the default), or `InvalidInput`
    saying what to type."""
    text = (arg or "").strip()
    if not text:
        return DEFAULT_STATS_DAYS
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= MAX_STATS_DAYS:
        raise InvalidInput(
            f"Give a number of days from 1 to {MAX_STATS_DAYS}, for example /stats 7 "
            f"(/stats alone shows the last {DEFAULT_STATS_DAYS} days)."
        )
    return int(text)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of `day` in `zone` (where a DST change skips midnight, the instant the
    wall clock would have shown it with the day's earlier offset)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def figures_of(times: list[DeliveryTimes], *, days: int, today: date, timezone: str) -> Figures:
    """Count `times` into the `days` days ending `today` in `timezone`."""
    zone = ZoneInfo(timezone)
    first = today - timedelta(days=days - 1)
    counts: dict[date, Counter[str]] = {first + timedelta(n): Counter() for n in range(days)}
    to_delivered: list[float] = []
    to_read: list[float] = []
    failures: Counter[int] = Counter()

    def count(at: datetime, name: str) -> bool:
        day = at.astimezone(zone).date()
        if day not in counts:
            return False
        counts[day][name] += 1
        return True

    for delivery in times:
        failed_at = delivery.failed_at if delivery.status is DeliveryStatus.failed else None
        if failed_at is not None and count(failed_at, "failed"):
            failures[delivery.schedule_id] += 1
        sent = delivery.sent_at
        if sent is None or not count(sent, "sent"):
            continue
        if delivery.delivered_at is not None:
            count(sent, "delivered")
            to_delivered.append((delivery.delivered_at - sent).total_seconds())
        if delivery.read_at is not None:
            count(sent, "read")
            to_read.append((delivery.read_at - sent).total_seconds())
    ranked = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:TOP_FAILING]
    return Figures(
        timezone=timezone,
        days=tuple(
            DayFigures(day, c["sent"], c["delivered"], c["read"], c["failed"])
            for day, c in counts.items()
        ),
        median_to_delivered_s=statistics.median(to_delivered) if to_delivered else None,
        median_to_read_s=statistics.median(to_read) if to_read else None,
        top_failing=tuple(ranked),
    )


class Stats:
    """An owner's figures, read in their time zone; nobody sees another owner's."""

    def __init__(self, store: Store, clock: Clock, users: Users) -> None:
        self._store, self._clock, self._users = store, clock, users

    async def figures(self, owner_id: int, days: int = DEFAULT_STATS_DAYS) -> Figures:
        """The owner's figures for `days` days ending today, in their time zone."""
        if not 1 <= days <= MAX_STATS_DAYS:
            raise InvalidInput(f"Give a number of days from 1 to {MAX_STATS_DAYS}.")
        timezone = await self._users.timezone_of(owner_id)
        zone = ZoneInfo(timezone)
        today = self._clock.now().astimezone(zone).date()
        times = await self._store.delivery_times(
            since=midnight(today - timedelta(days=days - 1), zone),
            until=midnight(today + timedelta(days=1), zone),
            owner_id=owner_id,
        )
        return figures_of(times, days=days, today=today, timezone=timezone)
