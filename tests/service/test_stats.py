"""/stats figures from a store seeded with known deliveries: days in the owner's time zone
(a zone half an hour off UTC, and a DST change), medians, the schedules with the most
failures, only the owner's, and the number of days a person may ask for."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.adapters.store import Store
from core.domain.clock import FakeClock
from core.domain.errors import InvalidInput
from core.domain.models import DeliveryStatus, Run
from core.services import DayFigures, Services, Stats, stats_days
from tests.service.conftest import OWNER
from tests.store.factories import add_delivery_at, add_run, add_schedule

S = timedelta(seconds=1)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def runs_of(store: Store, owner_id: int, count: int) -> list[Run]:
    """One run of each of `count` new schedules of `owner_id`."""
    return [
        await add_run(store, await add_schedule(store, owner_id=owner_id)) for _ in range(count)
    ]


async def test_days_are_the_owners_days_in_a_zone_half_an_hour_off_utc(
    service: Services, store: Store, clock: FakeClock
) -> None:
    # 10:00 UTC is 15:30 in Kolkata (UTC+5:30), 28 November; three days: 26, 27, 28 November.
    assert clock.now() == utc(2026, 11, 28, 10, 0)
    await service.users.set_timezone(OWNER, "Asia/Kolkata")
    one, two, three = await runs_of(store, OWNER, 3)
    sent, delivered, read, failed = (
        DeliveryStatus.sent,
        DeliveryStatus.delivered,
        DeliveryStatus.read,
        DeliveryStatus.failed,
    )
    # 23:59 on the 27th in Kolkata (18:29 UTC), then midnight of the 28th (18:30 UTC).
    last_of_27 = utc(2026, 11, 27, 18, 29)
    await add_delivery_at(
        store, one, "a", read, sent_at=last_of_27, delivered_at=last_of_27 + 60 * S,
        read_at=last_of_27 + 600 * S,
    )  # fmt: skip
    first_of_28 = utc(2026, 11, 27, 18, 30)
    await add_delivery_at(
        store, one, "b", delivered, sent_at=first_of_28, delivered_at=first_of_28 + 120 * S
    )
    # The first minute of the period counts; the one before it does not.
    first_of_26 = utc(2026, 11, 25, 18, 30)
    await add_delivery_at(
        store, two, "c", read, sent_at=first_of_26, delivered_at=first_of_26 + 30 * S,
        read_at=first_of_26 + 300 * S,
    )  # fmt: skip
    await add_delivery_at(store, two, "d", sent, sent_at=first_of_26 - 60 * S)
    await add_delivery_at(store, two, "e", failed, failed_at=utc(2026, 11, 28, 9, 0))
    await add_delivery_at(store, two, "f", failed, failed_at=utc(2026, 11, 26, 12, 0))
    await add_delivery_at(store, one, "g", failed, failed_at=utc(2026, 11, 27, 12, 0))
    # Failed before the period: not among the most failures.
    for key in ("h", "i", "j"):
        await add_delivery_at(store, three, key, failed, failed_at=utc(2026, 11, 25, 10, 0))
    # Someone else's message on the 28th: not counted.
    (theirs,) = await runs_of(store, OWNER + 1, 1)
    await add_delivery_at(store, theirs, "k", failed, failed_at=utc(2026, 11, 28, 9, 0))

    figures = await service.stats.figures(OWNER, 3)

    assert figures.timezone == "Asia/Kolkata"
    assert figures.days == (
        DayFigures(date(2026, 11, 26), sent=1, delivered=1, read=1, failed=1),
        DayFigures(date(2026, 11, 27), sent=1, delivered=1, read=1, failed=1),
        DayFigures(date(2026, 11, 28), sent=1, delivered=1, read=0, failed=1),
    )
    assert [day.read_rate for day in figures.days] == [1.0, 1.0, 0.0]
    assert figures.read_rate == pytest.approx(2 / 3)
    assert figures.median_to_delivered_s == 60.0  # of 60, 120 and 30 s
    assert figures.median_to_read_s == 450.0  # of 600 and 300 s
    assert figures.top_failing == ((two.schedule_id, 2), (one.schedule_id, 1))
    assert not figures.empty


async def test_days_follow_a_dst_change_in_the_owners_zone(
    service: Services, store: Store
) -> None:
    # Berlin leaves summer time on Sunday 25 October 2026 (03:00 CEST -> 02:00 CET): that day
    # runs from 22:00 UTC on the 24th to 23:00 UTC on the 25th, 25 hours.
    stats = Stats(store, FakeClock(utc(2026, 10, 26, 12, 0)), service.users)
    await service.users.set_timezone(OWNER, "Europe/Berlin")
    (run,) = await runs_of(store, OWNER, 1)
    sent = DeliveryStatus.sent
    await add_delivery_at(store, run, "before", sent, sent_at=utc(2026, 10, 24, 21, 59))
    await add_delivery_at(store, run, "first", sent, sent_at=utc(2026, 10, 24, 22, 0))
    # 23:30 CET on the 25th: a fixed summer-time offset would put it on the 26th.
    await add_delivery_at(store, run, "late", sent, sent_at=utc(2026, 10, 25, 22, 30))
    await add_delivery_at(store, run, "next", sent, sent_at=utc(2026, 10, 25, 23, 0))

    figures = await stats.figures(OWNER, 2)

    assert [(day.day, day.sent) for day in figures.days] == [
        (date(2026, 10, 25), 2),
        (date(2026, 10, 26), 1),
    ]
    assert (figures.median_to_delivered_s, figures.median_to_read_s) == (None, None)
    assert figures.top_failing == ()


async def test_a_period_with_nothing_sent_is_empty_with_a_day_for_each_day_asked(
    service: Services, store: Store
) -> None:
    (run,) = await runs_of(store, OWNER, 1)
    # Queued, never sent: nothing to count.
    await add_delivery_at(store, run, "q", DeliveryStatus.queued)
    figures = await service.stats.figures(OWNER, 30)
    assert figures.empty
    assert len(figures.days) == 30
    assert figures.days[-1].day == date(2026, 11, 28)  # today in Berlin, the default zone
    assert figures.read_rate is None


@pytest.mark.parametrize("typed", ["abc", "0", "366", "-1", "7.5", "7 days", "٣"])
def test_days_a_person_cannot_ask_for_say_what_to_type(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        stats_days(typed)
    assert "/stats 7" in str(refused.value)
    assert "1 to 365" in str(refused.value)


@pytest.mark.parametrize(("typed", "days"), [(None, 30), ("", 30), (" 7 ", 7), ("365", 365)])
def test_days_a_person_can_ask_for(typed: str | None, days: int) -> None:
    assert stats_days(typed) == days


async def test_the_service_refuses_days_out_of_range(service: Services) -> None:
    for days in (0, 366):
        with pytest.raises(InvalidInput):
            await service.stats.figures(OWNER, days)
