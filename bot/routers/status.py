"""/status: WhatsApp, scheduler, counts, version."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message, User

from bot import ui
from core.service import Scheduling

router = Router(name=__name__)


@router.message(Command("status"))
async def status(message: Message, service: Scheduling, event_from_user: User) -> None:
    timezone = await service.timezone_of(event_from_user.id)
    await message.answer(ui.status_text(await service.status(), timezone))
