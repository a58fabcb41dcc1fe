"""The people who use wasched: their time zone, whether they were asked for it, and who owns
this wasched (the owner and the one-time code that makes the first person the owner)."""

from __future__ import annotations

from core.adapters.store import Store
from core.domain import when as when_lang

# Set once the person was asked for their time zone (on their first /start).
TIMEZONE_ASKED_KEY = "timezone_asked:{}"
# The one-time code that makes the first person who sends it the owner.
OWNER_CODE_KEY = "owner_code"


class Users:
    """Time zones and ownership, as the bot asks for them."""

    def __init__(self, store: Store, *, default_timezone: str) -> None:
        self._store = store
        self.default_timezone = default_timezone

    async def timezone_of(self, user_id: int) -> str:
        """The user's time zone, or the default one when they never set theirs."""
        user = await self._store.get_user(user_id)
        if user is not None and user.timezone:
            return user.timezone
        return self.default_timezone

    async def set_timezone(self, user_id: int, name: str) -> str:
        """Store the user's zone for parsing and display; existing schedules keep theirs."""
        zone = when_lang.validate_timezone(name.strip())
        await self._store.upsert_user(user_id, timezone=zone)
        return zone

    async def timezone_asked(self, user_id: int) -> bool:
        """Whether the person was asked for their zone (or set one) already."""
        user = await self._store.get_user(user_id)
        if user is not None and user.timezone:
            return True
        return await self._store.get_value(TIMEZONE_ASKED_KEY.format(user_id)) is not None

    async def mark_timezone_asked(self, user_id: int) -> None:
        await self._store.set_value(TIMEZONE_ASKED_KEY.format(user_id), "1")

    async def owner_ids(self) -> set[int]:
        """Who was made the owner (by the one-time code)."""
        return {u.telegram_id for u in await self._store.list_users() if u.is_owner}

    async def owner_code(self) -> str | None:
        """The one-time code waiting for its sender, if any."""
        return await self._store.get_value(OWNER_CODE_KEY)

    async def set_owner_code(self, code: str) -> None:
        await self._store.set_value(OWNER_CODE_KEY, code)

    async def make_owner(self, user_id: int) -> None:
        """Use up the one-time code and make `user_id` the owner."""
        await self._store.set_value(OWNER_CODE_KEY, None)
        await self._store.upsert_user(user_id, is_owner=True)
