"""/status: WhatsApp, scheduler, database, counts, version."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message, User

from bot import ui
from core.adapters.health import StoreHealth
from core.services import Users, WhatsApp

router = Router(name=__name__)


@router.message(Command("status"))
async def status(
    message: Message,
    users: Users,
    whatsapp: WhatsApp,
    event_from_user: User,
    store_health: StoreHealth | None = None,
) -> None:
    timezone = await users.timezone_of(event_from_user.id)
    text = ui.status_text(await whatsapp.status(), timezone)
    if store_health is not None:
        state = await store_health.check()
        text += "\n" + ui.database_line(state.value, store_health.reason)
    await message.answer(text)
