"""/list with its buttons, and /runnow, /pause, /resume, /delete, /edit, /preview."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InaccessibleMessage, Message, User

from bot import ui
from bot.callbacks import EditCb, EditField, ListPageCb, ScheduleAction, ScheduleCb, SkipCb
from core.domain.errors import InvalidInput, NotFound
from core.domain.models import Schedule, ScheduleState
from core.services import MAX_ID, Services, is_id

router = Router(name=__name__)

NOT_COMMAND = F.text & ~F.text.startswith("/")


class EditForm(StatesGroup):
    value = State()


# ASCII digits only: str.isdigit() takes superscripts such as ² that int() refuses.
_SCHEDULE_ID = re.compile(r"[0-9]+")


def schedule_id_arg(command: CommandObject) -> int:
    """The `<id>` of `/command <id>`; `#12` works too. An id no schedule can have is refused
    here, before it reaches the store."""
    raw = (command.args or "").split(maxsplit=1)[0] if command.args else ""
    raw = raw.removeprefix("#")
    if not _SCHEDULE_ID.fullmatch(raw):
        raise InvalidInput(ui.which_schedule(command.command))
    # Length first: int() refuses more than 4300 digits, and no id has more than 19.
    if len(raw.lstrip("0")) > len(str(MAX_ID)) or not is_id(int(raw)):
        raise NotFound(ui.no_such_schedule(raw))
    return int(raw)


async def page_of(services: Services, user_id: int, schedule_id: int) -> int:
    schedules = await services.schedules.list_schedules(user_id)
    ids = [s.id for s in schedules]
    return ids.index(schedule_id) // ui.PAGE_SIZE if schedule_id in ids else 0


async def template_names(services: Services) -> dict[int, str]:
    return {t.id: t.name for t in await services.templates.list_templates()}


async def template_name(services: Services, schedule: Schedule) -> str | None:
    if schedule.template_id is None:
        return None
    return (await template_names(services)).get(schedule.template_id)


async def block(services: Services, schedule: Schedule) -> str:
    """The schedule's lines, naming the template it sends."""
    return ui.schedule_block(schedule, await template_name(services, schedule))


# --- /list and paging --------------------------------------------------------------------


@router.message(Command("list"))
async def list_(message: Message, services: Services, event_from_user: User) -> None:
    text, markup = ui.list_page(
        await services.schedules.list_schedules(event_from_user.id),
        0,
        await template_names(services),
        await services.runs.waiting_for_cap(event_from_user.id),
    )
    await message.answer(text, reply_markup=markup)


@router.callback_query(ListPageCb.filter())
async def list_page(
    query: CallbackQuery, callback_data: ListPageCb, services: Services, event_from_user: User
) -> None:
    await refresh_list(query, services, event_from_user, callback_data.page)
    await query.answer()


async def refresh_list(query: CallbackQuery, services: Services, user: User, page: int) -> None:
    """Redraw the /list message the button sits on."""
    if query.message is None or isinstance(query.message, InaccessibleMessage):
        return
    text, markup = ui.list_page(
        await services.schedules.list_schedules(user.id),
        page,
        await template_names(services),
        await services.runs.waiting_for_cap(user.id),
    )
    if query.message.text != text or query.message.reply_markup != markup:
        await query.message.edit_text(text, reply_markup=markup)


# --- actions, typed or tapped ------------------------------------------------------------


async def run_now(services: Services, user: User, schedule_id: int) -> str:
    _run, deliveries = await services.runs.run_now(user.id, schedule_id)
    return ui.sending_now(schedule_id, len(deliveries))


@router.message(Command("runnow"))
async def runnow_command(
    message: Message, command: CommandObject, services: Services, event_from_user: User
) -> None:
    await message.answer(await run_now(services, event_from_user, schedule_id_arg(command)))


@router.message(Command("pause"))
async def pause_command(
    message: Message, command: CommandObject, services: Services, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command)
    schedule = await services.schedules.pause(event_from_user.id, schedule_id)
    await message.answer(ui.paused_until_resume(schedule.id))


@router.message(Command("resume"))
async def resume_command(
    message: Message, command: CommandObject, services: Services, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command)
    resumed = await services.schedules.resume_held(event_from_user.id, schedule_id)
    await message.answer(ui.resumed(await block(services, resumed.schedule), resumed))


@router.message(Command("delete"))
async def delete_command(
    message: Message, command: CommandObject, services: Services, event_from_user: User
) -> None:
    schedule = await services.schedules.get_schedule(event_from_user.id, schedule_id_arg(command))
    text, markup = ui.confirm_delete(schedule, await template_name(services, schedule))
    await message.answer(text, reply_markup=markup)


@router.message(Command("preview"))
async def preview_command(
    message: Message, command: CommandObject, services: Services, event_from_user: User
) -> None:
    schedule_id = schedule_id_arg(command)
    await message.answer(
        ui.preview_text(await services.schedules.preview(event_from_user.id, schedule_id))
    )


@router.message(Command("edit"))
async def edit_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    services: Services,
    event_from_user: User,
) -> None:
    schedule = await services.schedules.get_schedule(event_from_user.id, schedule_id_arg(command))
    rest = (command.args or "").split(maxsplit=2)[1:]
    fields = {"text": EditField.text, "when": EditField.when, "recipients": EditField.recipients}
    if len(rest) == 2 and rest[0].lower() in fields:
        # One-shot: /edit 12 when tomorrow 10:00
        updated = await apply_edit(
            services, event_from_user, schedule.id, fields[rest[0].lower()], rest[1]
        )
        note = ui.end_dropped(schedule, updated, rest[1])
        await message.answer(await changed_text(services, updated, note))
        return
    await message.answer(
        ui.what_to_change(schedule.id, await block(services, schedule)),
        reply_markup=ui.edit_choices(schedule.id),
    )


async def changed_text(services: Services, updated: Schedule, note: str = "") -> str:
    """ "Changed" (with `note`) and the schedule, and a warning when WhatsApp could not check
    its numbers."""
    unchecked = await services.schedules.unchecked_numbers(updated)
    return ui.with_unchecked(ui.changed(await block(services, updated), note), unchecked)


async def apply_edit(
    services: Services, user: User, schedule_id: int, field: EditField, value: str
) -> Schedule:
    if field is EditField.text:
        return await services.schedules.edit_schedule(user.id, schedule_id, text=value)
    if field is EditField.when:
        return await services.schedules.edit_schedule(user.id, schedule_id, when=value)
    return await services.schedules.edit_schedule(user.id, schedule_id, recipients=value)


@router.callback_query(ScheduleCb.filter())
async def schedule_button(
    query: CallbackQuery,
    callback_data: ScheduleCb,
    services: Services,
    event_from_user: User,
    bot: Bot,
) -> None:
    user = event_from_user
    schedule = await services.schedules.get_schedule(user.id, callback_data.id)
    action = callback_data.action
    chat_id = query.message.chat.id if query.message is not None else user.id
    if action is ScheduleAction.run:
        await query.answer(await run_now(services, user, schedule.id))
    elif action in (ScheduleAction.pause, ScheduleAction.resume):
        if action is ScheduleAction.pause:
            await services.schedules.pause(user.id, schedule.id)
            await query.answer(ui.done_alert(action, schedule.id))
        else:
            resumed = await services.schedules.resume(user.id, schedule.id)
            if resumed.state is ScheduleState.done:
                await query.answer(ui.nothing_left(resumed), show_alert=True)
            else:
                await query.answer(ui.done_alert(action, schedule.id))
        await refresh_list(query, services, user, await page_of(services, user.id, schedule.id))
    elif action is ScheduleAction.edit:
        await query.answer()
        await bot.send_message(
            chat_id,
            ui.what_to_change(schedule.id, await block(services, schedule)),
            reply_markup=ui.edit_choices(schedule.id),
        )
    elif action is ScheduleAction.delete:
        await query.answer()
        text, markup = ui.confirm_delete(schedule, await template_name(services, schedule))
        await bot.send_message(chat_id, text, reply_markup=markup)
    elif action is ScheduleAction.confirm_delete:
        await services.schedules.delete(user.id, schedule.id)
        await query.answer(ui.done_alert(action, schedule.id))
        if isinstance(query.message, Message):
            await query.message.edit_text(ui.done_card(action, schedule.id))
    elif action is ScheduleAction.keep:
        await query.answer(ui.done_alert(action, schedule.id))
        if isinstance(query.message, Message):
            await query.message.edit_text(ui.done_card(action, schedule.id))
    else:
        await query.answer()
        preview = await services.schedules.preview(user.id, schedule.id)
        await bot.send_message(chat_id, ui.preview_text(preview))


@router.callback_query(SkipCb.filter())
async def skip_button(
    query: CallbackQuery, callback_data: SkipCb, services: Services, event_from_user: User
) -> None:
    """Skip next: the occurrence the card showed is skipped, once; the card shows the next."""
    occurrence = datetime.fromtimestamp(callback_data.at, UTC)
    skipped = await services.schedules.skip_next(event_from_user.id, callback_data.id, occurrence)
    await query.answer(ui.skipped_alert(skipped.schedule, skipped.occurrence), show_alert=True)
    page = await page_of(services, event_from_user.id, callback_data.id)
    await refresh_list(query, services, event_from_user, page)


@router.callback_query(EditCb.filter())
async def edit_button(
    query: CallbackQuery,
    callback_data: EditCb,
    state: FSMContext,
    services: Services,
    event_from_user: User,
    bot: Bot,
) -> None:
    schedule = await services.schedules.get_schedule(event_from_user.id, callback_data.id)
    if callback_data.field is EditField.ask:
        # Not a value to type: each press moves the setting on (off, send, skip if no answer).
        updated = await services.asks.toggle(event_from_user.id, schedule.id)
        await query.answer(ui.ask_turned(updated), show_alert=True)
        return
    await state.set_state(EditForm.value)
    await state.update_data(edit_id=schedule.id, edit_field=callback_data.field.value)
    await query.answer()
    chat_id = query.message.chat.id if query.message is not None else event_from_user.id
    await bot.send_message(chat_id, ui.edit_prompt(callback_data.field))


@router.message(EditForm.value, NOT_COMMAND)
async def edit_value(
    message: Message, state: FSMContext, services: Services, event_from_user: User
) -> None:
    data = await state.get_data()
    schedule = await services.schedules.get_schedule(event_from_user.id, int(data["edit_id"]))
    updated = await apply_edit(
        services, event_from_user, schedule.id, EditField(data["edit_field"]), message.text or ""
    )
    await state.clear()
    note = ui.end_dropped(schedule, updated, message.text or "")
    await message.answer(await changed_text(services, updated, note))
