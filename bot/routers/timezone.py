"""/tz: the person's time zone for parsing and showing times."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, User

from core.service import Scheduling

router = Router(name=__name__)


@router.message(Command("tz"))
async def timezone(
    message: Message, command: CommandObject, service: Scheduling, event_from_user: User
) -> None:
    if not command.args:
        zone = await service.timezone_of(event_from_user.id)
        await message.answer(
            f"Your time zone is {escape(zone)}. Change it with "
            "<code>/tz Europe/Berlin</code> (any Area/City name)."
        )
        return
    zone = await service.set_timezone(event_from_user.id, command.args)
    await message.answer(
        f"Your time zone is now {escape(zone)}. New times are read and shown in it; "
        "existing schedules keep the zone they were made in."
    )
