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
        what = f"#{schedule_id}" if schedule_id is not None else "your schedules"
        await message.answer(f"No deliveries for {what} yet. /runnow sends one at once.")
        return
    # Newest first by the time each line shows (ids follow creation, not the last change).
    deliveries.sort(key=lambda d: ui.delivery_time(d) or d.created_at, reverse=True)
    timezone = await users.timezone_of(event_from_user.id)
    heading = f"<b>Latest deliveries{f' of #{schedule_id}' if schedule_id else ''}</b>"
    lines = [heading] + [
        ui.delivery_line(d, timezone, with_schedule=schedule_id is None) for d in deliveries
    ]
    lines.append(f"Times in {timezone}. /export gives every delivery as CSV.")
    await message.answer(ui.cap("\n".join(lines)))


@router.message(Command("export"))
async def export(
    message: Message, command: CommandObject, logs: Logs, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command) if command.args else None
    data = await logs.export_csv(event_from_user.id, schedule_id=schedule_id)
    rows = max(0, data.count(b"\n") - 1)
    name = f"wasched-deliveries{f'-{schedule_id}' if schedule_id else ''}.csv"
    await message.answer_document(
        BufferedInputFile(data, filename=name),
        caption=f"{rows} deliver{'y' if rows == 1 else 'ies'}, oldest first.",
    )


@router.callback_query(RunCb.filter())
async def retry_run(
    query: CallbackQuery, callback_data: RunCb, runs: Runs, event_from_user: User
) -> None:
    """The Retry button under a run's report: queue its failed deliveries again."""
    retried = await runs.retry_run(event_from_user.id, callback_data.id)
    count = len(retried)
    await query.answer(f"Trying {count} deliver{'y' if count == 1 else 'ies'} again.")
