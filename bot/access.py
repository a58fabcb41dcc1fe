"""Who may use the bot: the admins from TELEGRAM_ADMIN_IDS and the stored owner, nobody else.

On a first run without admins and without an owner, a one-time code is logged; the first person
who sends `/start CODE` becomes the owner, and the code is used up.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update, User

from bot import ui
from core.services import OWNER_CODE_KEY, Users

logger = logging.getLogger(__name__)

__all__ = ["OWNER_CODE_KEY", "Access", "AccessMiddleware"]


class Access:
    def __init__(self, admin_ids: Iterable[int], users: Users) -> None:
        self.admin_ids = frozenset(admin_ids)
        self._users = users
        self._owners: set[int] = set()

    async def prepare(self) -> str | None:
        """Load the owner; on a first run without anyone, make (or reuse) the one-time code."""
        self._owners = await self._users.owner_ids()
        if self.admin_ids or self._owners:
            return None
        code = await self._users.owner_code()
        if not code:
            code = f"{secrets.randbelow(10**8):08d}"
            await self._users.set_owner_code(code)
        logger.warning(
            "first run: no TELEGRAM_ADMIN_IDS and no owner yet; send /start %s to the bot "
            "to become its owner (the code works once)",
            code,
        )
        return code

    def allows(self, user_id: int) -> bool:
        return user_id in self.admin_ids or user_id in self._owners

    async def members(self) -> set[int]:
        return set(self.admin_ids | self._owners)

    async def claim(self, user_id: int, text: str) -> bool:
        """Make `user_id` the owner when `text` is `/start <the one-time code>`."""
        parts = text.split()
        if len(parts) != 2 or parts[0].split("@")[0] != "/start":
            return False
        code = await self._users.owner_code()
        if not code or self.admin_ids or self._owners:
            return False
        if not secrets.compare_digest(parts[1], code):
            return False
        await self._users.make_owner(user_id)
        self._owners.add(user_id)
        logger.info("user %s is now the owner", user_id)
        return True

    def unclaimed(self) -> bool:
        """No admin and no owner yet: the one-time code waits for its sender."""
        return not self.admin_ids and not self._owners


class AccessMiddleware(BaseMiddleware):
    """Outer middleware on updates: anyone not allowed gets one line and nothing else."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return None
        if self.access.allows(user.id):
            return await handler(event, data)
        bot: Bot = data["bot"]
        if not isinstance(event, Update):
            return None
        if event.message is not None:
            text = event.message.text or ""
            if await self.access.claim(user.id, text):
                # On to /start, which welcomes the owner and asks for their time zone.
                data["just_claimed"] = True
                return await handler(event, data)
            if event.message.chat.type == "private":
                if self.access.unclaimed():
                    tried = len(text.split()) > 1 and text.split()[0].startswith("/start")
                    answer = ui.claim_hint(user.id, tried=tried)
                else:
                    answer = ui.not_allowed(user.id)
                await bot.send_message(event.message.chat.id, answer)
        elif event.callback_query is not None:
            await bot.answer_callback_query(
                event.callback_query.id, ui.not_allowed(user.id), show_alert=True
            )
        return None
