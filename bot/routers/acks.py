"""The buttons under the alert about messages not on the recipient's phone: Check again, and
Send again (a second copy, after a confirmation, because it may arrive twice)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message, User

from bot import ui
from bot.callbacks import UnackedAction, UnackedCb
from core.domain.errors import NotFound
from core.domain.models import Run
from core.services.scheduling import Scheduling

router = Router(name=__name__)


async def owned_run(service: Scheduling, run_id: int, user: User) -> Run:
    run = await service.store.get_run(run_id)
    if run is None or run.owner_id != user.id:
        raise NotFound(ui.no_run_of_yours(run_id))
    return run


@router.callback_query(UnackedCb.filter())
async def unacked_button(
    query: CallbackQuery,
    callback_data: UnackedCb,
    service: Scheduling,
    event_from_user: User,
    bot: Bot,
) -> None:
    run = await owned_run(service, callback_data.id, event_from_user)
    action = callback_data.action
    message = query.message if isinstance(query.message, Message) else None
    if action is UnackedAction.check:
        result = await service.check_unacked(run.id)
        await query.answer(ui.recheck_text(result), show_alert=True)
    elif action is UnackedAction.resend:
        _, deliveries = await service.get_run(run.id)
        again = service.unacked.unacked(deliveries) if service.unacked is not None else []
        if not again:
            await query.answer(ui.NOTHING_TO_SEND_AGAIN, show_alert=True)
            return
        await query.answer()
        text, markup = ui.confirm_send_again(run, again)
        await bot.send_message(event_from_user.id, text, reply_markup=markup)
    elif action is UnackedAction.resend_ok:
        copy, deliveries = await service.send_unacked_again(run.id)
        text = ui.sent_again_text(run, copy, deliveries)
        await query.answer(ui.sending_copy(copy.id))
        if message is not None:
            await message.edit_text(text)
    elif action is UnackedAction.keep:
        await query.answer(ui.NOT_SENT_AGAIN)
        if message is not None:
            await message.edit_text(ui.not_sent_again(run.id))
