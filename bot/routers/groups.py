"""/groups: WhatsApp groups to schedule to."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot import ui
from core.services import WhatsApp

router = Router(name=__name__)


@router.message(Command("groups"))
async def groups(message: Message, whatsapp: WhatsApp) -> None:
    await message.answer(ui.groups_text(await whatsapp.groups()))
