"""/logs [id] and /export."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, Message, User

from bot import ui
from bot.access import owned_schedule
from bot.callbacks import RunCb
from bot.routers.schedules import schedule_id_arg
from core.domain.errors import NotFound
from core.services.scheduling import Scheduling

router = Router(name=__name__)

LOG_LINES = 20


@router.message(Command("logs"))
async def logs(
    message: Message, command: CommandObject, service: Scheduling, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command) if command.args else None
    if schedule_id is not None:
        await owned_schedule(service, schedule_id, event_from_user.id)
    deliveries = await service.logs(
        schedule_id=schedule_id, owner_id=event_from_user.id, limit=LOG_LINES
    )
    if not deliveries:
        await message.answer(ui.no_deliveries(schedule_id))
        return
    # Newest first by the time each line shows (ids follow creation, not the last change).
    deliveries.sort(key=lambda d: ui.delivery_time(d) or d.created_at, reverse=True)
    timezone = await service.timezone_of(event_from_user.id)
    await message.answer(ui.logs_text(deliveries, timezone, schedule_id))


@router.message(Command("export"))
async def export(
    message: Message, command: CommandObject, service: Scheduling, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command) if command.args else None
    if schedule_id is not None:
        await owned_schedule(service, schedule_id, event_from_user.id)
    data = await service.export_csv(schedule_id=schedule_id, owner_id=event_from_user.id)
    rows = max(0, data.count(b"\n") - 1)
    await message.answer_document(
        BufferedInputFile(data, filename=ui.export_filename(schedule_id)),
        caption=ui.export_caption(rows),
    )


@router.callback_query(RunCb.filter())
async def retry_run(
    query: CallbackQuery, callback_data: RunCb, service: Scheduling, event_from_user: User
) -> None:
    """The Retry button under a run's report: queue its failed deliveries again."""
    run = await service.store.get_run(callback_data.id)
    if run is None or run.owner_id != event_from_user.id:
        raise NotFound(ui.no_such_run(callback_data.id))
    retried = await service.retry_run(run.id)
    count = len(retried)
    await query.answer(ui.retrying(count))
