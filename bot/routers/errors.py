"""Every refusal from core becomes one clear sentence; anything else is logged and admitted."""

from __future__ import annotations

import contextlib
import logging
from html import escape

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import ExceptionMessageFilter, ExceptionTypeFilter
from aiogram.types import ErrorEvent, Update

from bot import ui
from core.domain.errors import WaschedError

logger = logging.getLogger(__name__)
router = Router(name=__name__)

ALERT_LIMIT = 200


@router.errors(ExceptionTypeFilter(WaschedError))
async def refused(event: ErrorEvent, bot: Bot) -> None:
    await tell(bot, event.update, str(event.exception))


@router.errors(ExceptionMessageFilter(r".*message is not modified"))
async def not_modified(event: ErrorEvent) -> None:
    """A button pressed twice redraws the same text: Telegram refuses, nothing is wrong."""
    query = event.update.callback_query
    if query is not None:
        with contextlib.suppress(TelegramBadRequest):
            await query.answer()


@router.errors()
async def failed(event: ErrorEvent, bot: Bot) -> None:
    logger.error("handler failed on update %s", event.update.update_id, exc_info=event.exception)
    await tell(bot, event.update, ui.SOMETHING_WENT_WRONG)


async def tell(bot: Bot, update: Update, sentence: str) -> None:
    """Answer where the person is: a message in the chat, or an alert on the button."""
    query = update.callback_query
    if query is not None:
        if len(sentence) <= ALERT_LIMIT:
            try:
                await query.answer(sentence, show_alert=True)
                return
            except TelegramBadRequest:
                pass  # answered already or too old: say it in the chat instead
        else:
            with contextlib.suppress(TelegramBadRequest):
                await query.answer()
        if query.message is not None:
            await bot.send_message(query.message.chat.id, ui.cap(escape(sentence)))
        return
    message = update.message
    if message is not None:
        await bot.send_message(message.chat.id, ui.cap(escape(sentence)))
