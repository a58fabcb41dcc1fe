"""/start, /help and /cancel."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message, User

from bot import ui
from bot.routers.timezone import ask_zone
from core.services import Services

router = Router(name=__name__)


@router.message(CommandStart())
async def start(
    message: Message,
    state: FSMContext,
    services: Services,
    event_from_user: User,
    just_claimed: bool = False,
) -> None:
    """Hello and what I can do; on the person's first /start (and right after the owner
    claimed the bot), ask for their time zone."""
    await state.clear()
    user_id = event_from_user.id
    if just_claimed:
        await ask_zone(message, state, services, user_id, first=True, intro=ui.OWNER_WELCOME)
    elif not await services.users.timezone_asked(user_id):
        await ask_zone(message, state, services, user_id, first=True, intro=ui.hello())
    else:
        await message.answer(ui.hello())


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(ui.help_text())


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext) -> None:
    current = await state.get_state()
    if current is None:
        await message.answer(ui.NOTHING_TO_CANCEL)
        return
    await state.clear()
    await message.answer(ui.cancelled(current))
