"""Delivery logs: the latest deliveries of an owner (or of one of their schedules), and every
one of them as a CSV file (`csv_export`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from core.adapters.store import Store
from core.domain import when as when_lang
from core.domain.errors import InvalidInput
from core.domain.models import Ask, Delivery, DeliveryFilter
from core.services._shared import is_id
from core.services.csv_export import deliveries_csv
from core.services.schedules import Schedules

MAX_LOG_LIMIT = 1000


class Logs:
    """What was delivered, newest first, or as CSV; a deleted schedule's deliveries stay."""

    def __init__(self, store: Store, schedules: Schedules) -> None:
        self._store = store
        self._schedules = schedules

    async def logs(
        self, owner_id: int | None, *, schedule_id: int | None = None, limit: int = 20
    ) -> list[Delivery]:
        """The latest deliveries, newest first, of the owner (every owner's for None), or of
        one of their schedules."""
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise InvalidInput(f"Ask for 1 to {MAX_LOG_LIMIT} deliveries, for example 20.")
        return await self._deliveries(owner_id, schedule_id, limit=limit, order="newest")

    async def choices(self, deliveries: Sequence[Delivery]) -> dict[int, Ask]:
        """What the owner (or, with no answer, the policy) chose before each run that asked
        first, by run id."""
        return await self._store.asks_of_runs([d.run_id for d in deliveries])

    async def export_csv(self, owner_id: int | None, *, schedule_id: int | None = None) -> bytes:
        """Every matching delivery as UTF-8 CSV, oldest first."""
        deliveries = await self._deliveries(owner_id, schedule_id, limit=None, order="oldest")
        whens: dict[int, str] = {}
        if deliveries:
            # One read for all: a deleted schedule is missing and its rows say so.
            if schedule_id is not None:
                one = await self._store.get_schedule(schedule_id)
                schedules = [] if one is None else [one]
            else:
                schedules = await self._store.list_schedules(owner_id=owner_id)
            wanted = {d.schedule_id for d in deliveries}
            whens = {s.id: when_lang.describe(s.rule) for s in schedules if s.id in wanted}
        return deliveries_csv(deliveries, whens, await self.choices(deliveries))

    async def _deliveries(
        self,
        owner_id: int | None,
        schedule_id: int | None,
        *,
        limit: int | None,
        order: Literal["newest", "oldest"],
    ) -> list[Delivery]:
        """The deliveries asked for. An owner asking for one schedule's gets `NotFound` unless
        it is theirs and still there; without an owner (every owner's logs) a deleted
        schedule's deliveries are listed too. An id beyond the store's range names nothing."""
        if schedule_id is not None and not is_id(schedule_id):
            return []
        if schedule_id is not None and owner_id is not None:
            await self._schedules.get_schedule(owner_id, schedule_id)
        return await self._store.list_deliveries(
            DeliveryFilter(schedule_id=schedule_id, owner_id=owner_id, limit=limit, order=order)
        )
