"""What the bot keeps across restarts through core: small values by key (which Telegram
message shows which run, whether WhatsApp was linked before) and whether a message ever went
out. It is the `KeyValues` the bot's notifier needs, so the bot never holds the store."""

from __future__ import annotations

from core.adapters.store import Store
from core.domain.models import Delivery, DeliveryFilter


class Memory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get_value(self, key: str) -> str | None:
        return await self._store.get_value(key)

    async def set_value(self, key: str, value: str | None) -> None:
        await self._store.set_value(key, value)

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        return await self._store.list_deliveries(query)
