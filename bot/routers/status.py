"""/status: WhatsApp, scheduler, database, counts, version."""

from __future__ import annotations

from collections.abc import Callable

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message, User

from bot import ui
from core.services import Caps, StoreHealth, Users, WhatsApp

router = Router(name=__name__)


@router.message(Command("status"))
async def status_command(
    message: Message,
    users: Users,
    whatsapp: WhatsApp,
    event_from_user: User,
    store_health: StoreHealth | None = None,
    sender_caps: Callable[[], Caps] | None = None,
) -> None:
    timezone = await users.timezone_of(event_from_user.id)
    report = await whatsapp.status()
    caps = sender_caps() if sender_caps is not None else None
    if store_health is None:
        await message.answer(ui.status_report(report, timezone, caps=caps))
        return
    store_state = await store_health.check()
    await message.answer(
        ui.status_report(report, timezone, store_state, store_health.reason, caps=caps)
    )
