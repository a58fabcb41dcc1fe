"""/schedule: the wizard (recipients -> message -> when -> preview -> save) and the one-shot
form `/schedule <recipients> | <when> | <text>`.

Wizard state lives in aiogram's MemoryStorage: a wizard left half-way does not survive a
restart (the person starts again with /schedule).
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, User

from bot import ui
from bot.callbacks import PickCb, WizardAction, WizardCb
from core.domain.errors import InvalidInput, InvalidTemplate
from core.domain.models import Media, NoAnswer, Recipient, Schedule
from core.domain.recipients import Choice, contact_recipient, dedupe
from core.services import Draft, Services, next_ask, split_ask_option

router = Router(name=__name__)

NOT_COMMAND = F.text & ~F.text.startswith("/")
# WhatsApp takes images and videos up to 16 MB; bots may download up to 20 MB from Telegram.
MEDIA_LIMIT = 16 * 1024 * 1024


class Wizard(StatesGroup):
    recipients = State()
    message = State()
    when = State()
    confirm = State()


class OneShot(StatesGroup):
    """`/schedule <recipients> | <when> | <text>` waiting for a name that matches several."""

    pick = State()


# --- start -------------------------------------------------------------------------------


@router.message(Command("schedule"))
async def schedule(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    services: Services,
    event_from_user: User,
    bot: Bot,
) -> None:
    await state.clear()
    if command.args:
        await one_shot(message, command.args, services, event_from_user, state, bot)
        return
    await state.set_state(Wizard.recipients)
    await state.update_data(contacts=[], typed=[])
    text, markup = await recipients_step(services, [])
    await message.answer(text, reply_markup=markup)


async def one_shot(
    message: Message, args: str, services: Services, user: User, state: FSMContext, bot: Bot
) -> None:
    parts = [p.strip() for p in args.split("|", 2)]
    if len(parts) != 3 or not all(parts):
        raise InvalidInput(ui.ONE_SHOT_FORM)
    typed, when, text = parts
    text, ask, lead_s = split_ask_option(text)
    if not text:
        raise InvalidInput(ui.ONE_SHOT_FORM)
    resolved = await services.schedules.resolve_recipients(typed)
    if not any(isinstance(item, Choice) for item in resolved):
        created = await services.schedules.create_schedule(
            user.id, recipients=chosen(resolved), when=when, text=text
        )
        created = await ask_first(services, created, ask, lead_s)
        await message.answer(await saved_text(services, created))
        return
    # The time and text are refused now rather than after the question; only the variables
    # wait for the choice (a contact field may be had by one of the options only), and
    # draft_schedule checks them last. A lone brace is no error in a message (core.domain.render).
    first = [item.options[0] if isinstance(item, Choice) else item for item in resolved]
    with contextlib.suppress(InvalidTemplate):
        await services.schedules.draft_schedule(user.id, recipients=first, when=when, text=text)
    await state.set_state(OneShot.pick)
    await state.update_data(
        pending=pack(resolved),
        when=when,
        text=text,
        ask=None if ask is None else ask.value,
        ask_lead_s=lead_s,
    )
    await ask_next_choice(bot, message.chat.id, state)


async def ask_first(
    services: Services, schedule: Schedule, ask: NoAnswer | None, lead_s: int | None = None
) -> Schedule:
    """The schedule set to ask first (`| ask` in the one-line form), when `ask` says so,
    `lead_s` before each run (ASK_LEAD_S when None)."""
    if ask is None:
        return schedule
    return await services.asks.set_ask_first(
        schedule.owner_id, schedule.id, on=True, on_no_answer=ask, lead_s=lead_s
    )


# --- a typed name that matches several: ask, one name at a time --------------------------


def pack(items: list[Recipient | Choice]) -> list[dict[str, Any]]:
    """Resolved recipients and open choices as FSM data."""
    return [
        {"typed": item.typed, "options": [o.model_dump(mode="json") for o in item.options]}
        if isinstance(item, Choice)
        else {"recipient": item.model_dump(mode="json")}
        for item in items
    ]


def unpack(raw: list[dict[str, Any]]) -> list[Recipient | Choice]:
    return [
        Choice(
            typed=str(item["typed"]),
            options=tuple(Recipient.model_validate(o) for o in item["options"]),
        )
        if "typed" in item
        else Recipient.model_validate(item["recipient"])
        for item in raw
    ]


def chosen(items: list[Recipient | Choice]) -> list[Recipient]:
    return dedupe(item for item in items if isinstance(item, Recipient))


async def ask_next_choice(bot: Bot, chat_id: int, state: FSMContext) -> bool:
    """Ask about the first name still open; False when every name is settled."""
    items = unpack((await state.get_data()).get("pending") or [])
    for part, item in enumerate(items):
        if isinstance(item, Choice):
            text, markup = ui.recipient_choice(item, part)
            sent = await bot.send_message(chat_id, text, reply_markup=markup)
            # Only the latest question's buttons answer it (retyped names ask anew).
            await state.update_data(question=sent.message_id)
            return True
    return False


@router.callback_query(PickCb.filter())
async def pick(
    query: CallbackQuery,
    callback_data: PickCb,
    state: FSMContext,
    services: Services,
    bot: Bot,
    event_from_user: User,
) -> None:
    data = await state.get_data()
    current = await state.get_state()
    items = unpack(data.get("pending") or [])
    part = callback_data.part
    asked = items[part] if part < len(items) else None
    if (
        current not in (OneShot.pick.state, Wizard.recipients.state)
        or query.message is None
        or query.message.message_id != data.get("question")
        or not isinstance(asked, Choice)
        or callback_data.option >= len(asked.options)
    ):
        await query.answer(ui.QUESTION_OVER, show_alert=True)
        return
    choice = asked.options[callback_data.option]
    items[part] = choice
    await state.update_data(pending=pack(items))
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(ui.recipient_chosen(asked, choice))
    chat_id = query.message.chat.id if query.message is not None else event_from_user.id
    if await ask_next_choice(bot, chat_id, state):
        return
    recipients = chosen(items)
    if current == OneShot.pick.state:
        await state.clear()
        created = await services.schedules.create_schedule(
            event_from_user.id,
            recipients=recipients,
            when=str(data["when"]),
            text=str(data["text"]),
        )
        lead_s = data.get("ask_lead_s")
        created = await ask_first(
            services, created, asked_for(data), int(lead_s) if lead_s else None
        )
        await bot.send_message(chat_id, await saved_text(services, created))
        return
    await state.update_data(pending=None, typed=[r.model_dump(mode="json") for r in recipients])
    await after_recipients(bot, chat_id, state, services)


# --- step 1: recipients ------------------------------------------------------------------


async def recipients_step(services: Services, chosen: list[int]) -> tuple[str, Any]:
    contacts = await services.contacts.list_contacts()
    return ui.recipients_prompt(contacts, chosen)


@router.callback_query(Wizard.recipients, WizardCb.filter(F.action == WizardAction.contact))
async def toggle_contact(
    query: CallbackQuery, callback_data: WizardCb, state: FSMContext, services: Services
) -> None:
    chosen: list[int] = list((await state.get_data()).get("contacts", []))
    if callback_data.value in chosen:
        chosen.remove(callback_data.value)
    else:
        chosen.append(callback_data.value)
    await state.update_data(contacts=chosen)
    await query.answer()
    if isinstance(query.message, Message):
        text, markup = await recipients_step(services, chosen)
        await query.message.edit_text(text, reply_markup=markup)


@router.callback_query(
    Wizard.recipients, WizardCb.filter(F.action == WizardAction.recipients_done)
)
async def recipients_done(
    query: CallbackQuery, state: FSMContext, services: Services, bot: Bot, event_from_user: User
) -> None:
    data = await state.get_data()
    if data.get("pending"):
        await query.answer(ui.PICK_FIRST, show_alert=True)
        return
    if not data.get("contacts") and not data.get("typed"):
        has_contacts = bool(await services.contacts.list_contacts())
        await query.answer(ui.nobody_chosen(has_contacts=has_contacts), show_alert=True)
        return
    await query.answer()
    await after_recipients(bot, event_from_user.id, state, services)


@router.message(Wizard.recipients, NOT_COMMAND)
async def recipients_typed(
    message: Message, state: FSMContext, services: Services, bot: Bot, event_from_user: User
) -> None:
    # Refuses what cannot be used, with a reason; a name several match is asked about.
    resolved = await services.schedules.resolve_recipients(message.text or "")
    await state.update_data(pending=pack(resolved))
    if await ask_next_choice(bot, message.chat.id, state):
        return
    await state.update_data(
        pending=None, typed=[r.model_dump(mode="json") for r in chosen(resolved)]
    )
    await after_recipients(bot, message.chat.id, state, services)


async def recipients_of(state: FSMContext, services: Services) -> list[Recipient]:
    """The wizard's recipients: the contacts tapped (as they are now), then those typed."""
    data = await state.get_data()
    recipients: list[Recipient] = []
    if data.get("contacts"):
        by_id = {c.id: c for c in await services.contacts.list_contacts()}
        recipients = [contact_recipient(by_id[i]) for i in data["contacts"] if i in by_id]
    recipients += [Recipient.model_validate(r) for r in data.get("typed") or []]
    return recipients


async def after_recipients(bot: Bot, chat_id: int, state: FSMContext, services: Services) -> None:
    if await continue_to_preview(bot, chat_id, state, services):
        return
    await state.set_state(Wizard.message)
    text, markup = ui.message_prompt(await services.templates.list_templates())
    await bot.send_message(chat_id, text, reply_markup=markup)


# --- step 2: the message -----------------------------------------------------------------


@router.message(Wizard.message, NOT_COMMAND)
async def message_text(message: Message, state: FSMContext, services: Services, bot: Bot) -> None:
    # Refused here, the person retypes the text; refused at the preview, they would be asked
    # for a time again and again.
    await services.schedules.check_draft_message(
        recipients=await recipients_of(state, services), text=message.text
    )
    await state.update_data(text=message.text, template=None, media=None)
    await after_message(bot, message.chat.id, state, services)


@router.message(Wizard.message, F.photo | F.document)
async def message_media(message: Message, state: FSMContext, services: Services, bot: Bot) -> None:
    if message.photo:
        photo = message.photo[-1]
        file_id, size = photo.file_id, photo.file_size
        filename, mimetype = "photo.jpg", "image/jpeg"
    else:
        document = message.document
        assert document is not None
        file_id, size = document.file_id, document.file_size
        filename = document.file_name or "file"
        mimetype = document.mime_type or "application/octet-stream"
    if size is not None and size > MEDIA_LIMIT:
        raise InvalidInput(ui.file_too_big(size, MEDIA_LIMIT))
    buffer = await bot.download(file_id)
    assert buffer is not None
    data = buffer.read()
    if len(data) > MEDIA_LIMIT:
        raise InvalidInput(ui.file_too_big(len(data), MEDIA_LIMIT))
    media = Media(
        mimetype=mimetype, filename=filename, data_base64=base64.b64encode(data).decode()
    )
    await services.schedules.check_draft_message(
        recipients=await recipients_of(state, services), text=message.caption, media=media
    )
    await state.update_data(text=message.caption, template=None, media=media.model_dump())
    await after_message(bot, message.chat.id, state, services)


@router.callback_query(Wizard.message, WizardCb.filter(F.action == WizardAction.template))
async def message_template(
    query: CallbackQuery,
    callback_data: WizardCb,
    state: FSMContext,
    services: Services,
    bot: Bot,
    event_from_user: User,
) -> None:
    templates = {t.id: t for t in await services.templates.list_templates()}
    template = templates.get(callback_data.value)
    if template is None:
        await query.answer(ui.TEMPLATE_GONE)
        return
    await services.schedules.check_draft_message(
        recipients=await recipients_of(state, services), template=template.id
    )
    await query.answer(ui.template_picked(template.name))
    await state.update_data(text=None, template=template.id, media=None)
    await after_message(bot, event_from_user.id, state, services)


async def after_message(bot: Bot, chat_id: int, state: FSMContext, services: Services) -> None:
    if await continue_to_preview(bot, chat_id, state, services):
        return
    await state.set_state(Wizard.when)
    text, markup = ui.when_prompt(ui.WHEN_BUTTONS)
    await bot.send_message(chat_id, text, reply_markup=markup)


# --- step 3: when ------------------------------------------------------------------------


@router.message(Wizard.when, NOT_COMMAND)
async def when_typed(
    message: Message, state: FSMContext, services: Services, bot: Bot, event_from_user: User
) -> None:
    await show_preview(
        bot, message.chat.id, event_from_user.id, state, services, message.text or ""
    )


@router.callback_query(Wizard.when, WizardCb.filter(F.action == WizardAction.when))
async def when_example(
    query: CallbackQuery,
    callback_data: WizardCb,
    state: FSMContext,
    services: Services,
    bot: Bot,
    event_from_user: User,
) -> None:
    if not 0 <= callback_data.value < len(ui.WHEN_BUTTONS):
        await query.answer(ui.EXAMPLE_GONE, show_alert=True)
        return
    await query.answer()
    when = ui.WHEN_BUTTONS[callback_data.value]
    await show_preview(bot, event_from_user.id, event_from_user.id, state, services, when)


async def show_preview(
    bot: Bot, chat_id: int, owner_id: int, state: FSMContext, services: Services, when: str
) -> None:
    data = await state.get_data()
    media = Media.model_validate(data["media"]) if data.get("media") else None
    drafted = await services.schedules.draft_schedule(
        owner_id,
        recipients=await recipients_of(state, services),
        when=when,
        text=data.get("text"),
        template=data.get("template"),
        media=media,
    )
    await state.update_data(when=when, draft=approved(drafted.draft))
    await state.set_state(Wizard.confirm)
    await bot.send_message(
        chat_id,
        ui.preview_text(drafted.preview),
        reply_markup=ui.confirm_buttons(asked_for(data)),
    )


def asked_for(data: dict[str, Any]) -> NoAnswer | None:
    """The wizard's ask-me-first setting so far (None: off)."""
    return NoAnswer(data["ask"]) if data.get("ask") else None


def approved(draft: Draft) -> dict[str, Any]:
    """The previewed draft as FSM data, without its media: the media stays once, under
    `media`, and Save puts it back. The draft (small: no rendered preview) is kept because
    Save stores what the preview showed: its time was read when it was typed ('in 10
    minutes'), not at Save, and its recipients are those the preview listed."""
    return draft.model_dump(mode="json", exclude={"media"})


async def continue_to_preview(
    bot: Bot, chat_id: int, state: FSMContext, services: Services
) -> bool:
    """After an edit from the preview, go straight back to the preview."""
    data = await state.get_data()
    if not data.get("editing") or not data.get("when"):
        return False
    await state.update_data(editing=False)
    owner = int(data["draft"]["owner_id"])
    await show_preview(bot, chat_id, owner, state, services, str(data["when"]))
    return True


# --- step 4: preview -> save / edit / cancel ---------------------------------------------


@router.callback_query(Wizard.confirm, WizardCb.filter(F.action == WizardAction.save))
async def save(
    query: CallbackQuery, state: FSMContext, services: Services, event_from_user: User
) -> None:
    data = await state.get_data()
    draft = Draft.model_validate({**data["draft"], "media": data.get("media")})
    if draft.owner_id != event_from_user.id:
        await query.answer(ui.PREVIEW_NOT_YOURS, show_alert=True)
        return
    created = await services.schedules.save_draft(draft)
    created = await ask_first(services, created, asked_for(data))
    await state.clear()
    await query.answer(ui.saved_alert(created.id))
    if isinstance(query.message, Message):
        await query.message.edit_text(await saved_text(services, created, draft.template_name))


@router.callback_query(Wizard.confirm, WizardCb.filter(F.action == WizardAction.ask))
async def toggle_ask(query: CallbackQuery, state: FSMContext) -> None:
    """Ask me first, from the preview: off -> send if no answer -> skip if no answer."""
    ask = next_ask(asked_for(await state.get_data()))
    await state.update_data(ask=None if ask is None else ask.value)
    await query.answer(ui.ask_toggle(ask))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=ui.confirm_buttons(ask))


@router.callback_query(Wizard.confirm, WizardCb.filter(F.action == WizardAction.edit))
async def edit(query: CallbackQuery) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=ui.wizard_edit_buttons())


@router.callback_query(
    Wizard.confirm,
    WizardCb.filter(
        F.action.in_(
            {WizardAction.edit_recipients, WizardAction.edit_message, WizardAction.edit_when}
        )
    ),
)
async def edit_part(
    query: CallbackQuery,
    callback_data: WizardCb,
    state: FSMContext,
    services: Services,
    bot: Bot,
    event_from_user: User,
) -> None:
    await query.answer()
    chat_id = event_from_user.id
    if callback_data.action is WizardAction.edit_when:
        await state.update_data(editing=False)
        await state.set_state(Wizard.when)
        text, markup = ui.when_prompt(ui.WHEN_BUTTONS)
    elif callback_data.action is WizardAction.edit_message:
        await state.update_data(editing=True)
        await state.set_state(Wizard.message)
        text, markup = ui.message_prompt(await services.templates.list_templates())
    else:
        await state.update_data(editing=True, contacts=[], typed=[], pending=None)
        await state.set_state(Wizard.recipients)
        text, markup = await recipients_step(services, [])
    await bot.send_message(chat_id, text, reply_markup=markup)


@router.callback_query(WizardCb.filter(F.action == WizardAction.cancel))
async def cancel(query: CallbackQuery, state: FSMContext) -> None:
    current = await state.get_state()
    await state.clear()
    await query.answer(ui.CANCELLED_ALERT)
    if isinstance(query.message, Message):
        await query.message.edit_text(ui.cancelled(current))


@router.callback_query(WizardCb.filter())
async def stale(query: CallbackQuery) -> None:
    await query.answer(ui.STEP_OVER, show_alert=True)


async def saved_text(
    services: Services, created: Schedule, template_name: str | None = None
) -> str:
    """ "Saved" with the schedule, and a warning when WhatsApp could not check its numbers."""
    unchecked = await services.schedules.unchecked_numbers(created)
    return ui.with_unchecked(ui.saved(created, template_name), unchecked)
