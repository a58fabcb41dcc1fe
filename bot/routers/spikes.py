"""The buttons under the message about a run cut short by a failure spike: Resume (the held
rest goes out and the schedule runs again) and Show failures."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, User

from bot import ui
from bot.callbacks import SpikeAction, SpikeCb
from core.services import Runs

router = Router(name=__name__)


@router.callback_query(SpikeCb.filter())
async def spike_button(
    query: CallbackQuery,
    callback_data: SpikeCb,
    runs: Runs,
    event_from_user: User,
    bot: Bot,
) -> None:
    owner_id = event_from_user.id
    if callback_data.action is SpikeAction.resume:
        schedule, released = await runs.resume_cut_short(owner_id, callback_data.id)
        run, _ = await runs.get_run(owner_id, callback_data.id)
        text = ui.spike_resumed(schedule, run, released)
        await query.answer(text if released == 0 else None, show_alert=released == 0)
        if released:
            await bot.send_message(owner_id, text)
    else:
        schedule, run, failed = await runs.failures(owner_id, callback_data.id)
        await query.answer()
        await bot.send_message(owner_id, ui.spike_failures(schedule, run, failed))
