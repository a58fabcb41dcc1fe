"""/start, /help and /cancel."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot import ui

router = Router(name=__name__)


@router.message(CommandStart())
async def start(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("Hello! " + ui.help_text())


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(ui.help_text())


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext) -> None:
    current = await state.get_state()
    if current is None:
        await message.answer("Nothing to cancel. /help lists what I can do.")
        return
    await state.clear()
    await message.answer(ui.cancelled(current))
