"""Answers to the question asked before an ask-first run (Send now, Send at the time,
Snooze, Skip this one, Edit)."""

from __future__ import annotations

import contextlib

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message, User

from bot import ui
from bot.callbacks import AskAnswer, AskCb
from bot.routers.schedules import block
from core.domain.models import AskChoice
from core.services import Services

router = Router(name=__name__)

CHOICES: dict[AskAnswer, tuple[AskChoice, str | None]] = {
    AskAnswer.send_now: (AskChoice.send_now, None),
    AskAnswer.at_time: (AskChoice.at_time, None),
    AskAnswer.skip: (AskChoice.skip, None),
    **{answer: (AskChoice.snooze, name) for answer, name in ui.SNOOZE_NAMES.items()},
}


@router.callback_query(AskCb.filter())
async def answer(
    query: CallbackQuery,
    callback_data: AskCb,
    services: Services,
    event_from_user: User,
    bot: Bot,
) -> None:
    user = event_from_user
    if callback_data.answer is AskAnswer.edit:
        _ask, schedule = await services.asks.get(user.id, callback_data.id)
        await query.answer()
        chat_id = query.message.chat.id if query.message is not None else user.id
        await bot.send_message(
            chat_id,
            ui.what_to_change(schedule.id, await block(services, schedule)),
            reply_markup=ui.edit_choices(schedule.id),
        )
        return
    choice, snooze = CHOICES[callback_data.answer]
    answered = await services.asks.answer(user.id, callback_data.id, choice, snooze)
    outcome = ui.ask_outcome(answered, user.id)
    await query.answer(outcome, show_alert=not answered.fresh)
    message = query.message
    if isinstance(message, Message) and message.reply_markup is not None:
        # Answered (now, or before: a press on a question still showing its buttons).
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_text(ui.question_answered(message.html_text, outcome))
