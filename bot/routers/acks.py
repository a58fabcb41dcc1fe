"""The buttons under the alert about messages not on the recipient's phone: Check again, and
Send again (a second copy, after a confirmation, because it may arrive twice)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message, User

from bot import ui
from bot.callbacks import UnackedAction, UnackedCb
from core.services import Runs

router = Router(name=__name__)


@router.callback_query(UnackedCb.filter())
async def unacked_button(
    query: CallbackQuery,
    callback_data: UnackedCb,
    runs: Runs,
    event_from_user: User,
    bot: Bot,
) -> None:
    owner_id = event_from_user.id
    run, _ = await runs.get_run(owner_id, callback_data.id)
    action = callback_data.action
    message = query.message if isinstance(query.message, Message) else None
    if action is UnackedAction.check:
        result = await runs.check_unacked(owner_id, run.id)
        await query.answer(ui.recheck_text(result), show_alert=True)
    elif action is UnackedAction.resend:
        _, again = await runs.unacked(owner_id, run.id)
        if not again:
            await query.answer(ui.NOTHING_TO_SEND_AGAIN, show_alert=True)
            return
        await query.answer()
        text, markup = ui.confirm_send_again(run, again)
        await bot.send_message(event_from_user.id, text, reply_markup=markup)
    elif action is UnackedAction.resend_ok:
        copy, deliveries = await runs.send_unacked_again(owner_id, run.id)
        text = ui.sent_again_text(run, copy, deliveries)
        await query.answer(ui.sending_copy(copy.id))
        if message is not None:
            await message.edit_text(text)
    elif action is UnackedAction.keep:
        await query.answer(ui.NOT_SENT_AGAIN)
        if message is not None:
            await message.edit_text(ui.not_sent_again(run.id))
