"""/logs [id] and /export."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, Message, User

from bot import ui
from bot.callbacks import RunCb
from bot.routers.schedules import schedule_id_arg
from core.services import Logs, Runs, Users

router = Router(name=__name__)

LOG_LINES = 20


@router.message(Command("logs"))
async def logs(
    message: Message,
    command: CommandObject,
    logs: Logs,
    users: Users,
    event_from_user: User,
) -> None:
    schedule_id = schedule_id_arg(command) if command.args else None
    deliveries = await logs.logs(event_from_user.id, schedule_id=schedule_id, limit=LOG_LINES)
    if not deliveries:
        await message.answer(ui.no_deliveries(schedule_id))
        return
    # Newest first by the time each line shows (ids follow creation, not the last change).
    deliveries.sort(key=lambda d: ui.delivery_time(d) or d.created_at, reverse=True)
    timezone = await users.timezone_of(event_from_user.id)
    choices = await logs.choices(deliveries)
    await message.answer(ui.logs_text(deliveries, timezone, schedule_id, choices))


@router.message(Command("export"))
async def export(
    message: Message, command: CommandObject, logs: Logs, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command) if command.args else None
    data = await logs.export_csv(event_from_user.id, schedule_id=schedule_id)
    rows = max(0, data.count(b"\n") - 1)
    await message.answer_document(
        BufferedInputFile(data, filename=ui.export_filename(schedule_id)),
        caption=ui.export_caption(rows),
    )


@router.callback_query(RunCb.filter())
async def retry_run(
    query: CallbackQuery, callback_data: RunCb, runs: Runs, event_from_user: User
) -> None:
    """The Retry button under a run's report: queue its failed deliveries again."""
    retried = await runs.retry_run(event_from_user.id, callback_data.id)
    count = len(retried)
    await query.answer(ui.retrying(count))
