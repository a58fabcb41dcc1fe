"""Last: unknown commands, free text outside a wizard, and buttons nobody handles."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot import ui

router = Router(name=__name__)

# Telegram's own commands have at most 32 characters.
COMMAND_ECHO_LIMIT = 40


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message) -> None:
    # Shortened: a command can be any length, and the reply must fit one message.
    command = ui.shorten((message.text or "").split()[0], COMMAND_ECHO_LIMIT)
    await message.answer(ui.unknown_command(command))


@router.message()
async def anything_else(message: Message, state: FSMContext) -> None:
    if await state.get_state() is not None:
        await message.answer(ui.NOT_THIS_STEP)
        return
    await message.answer(ui.WHAT_TO_SEND)


@router.callback_query()
async def unknown_button(query: CallbackQuery) -> None:
    await query.answer(ui.BUTTON_GONE, show_alert=True)
