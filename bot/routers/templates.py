"""/templates, /addtemplate, /deltemplate."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot import ui
from core.domain.errors import InvalidInput
from core.services import Templates

router = Router(name=__name__)


@router.message(Command("templates"))
async def templates(message: Message, templates: Templates) -> None:
    await message.answer(ui.templates_text(await templates.list_templates()))


@router.message(Command("addtemplate"))
async def add_template(message: Message, command: CommandObject, templates: Templates) -> None:
    name, _, text = (command.args or "").partition("|")
    if not name.strip() or not text.strip():
        raise InvalidInput(ui.ADD_TEMPLATE_FORM)
    template = await templates.add_template(name.strip(), text.strip())
    await message.answer(ui.template_saved(template))


@router.message(Command("deltemplate"))
async def delete_template(message: Message, command: CommandObject, templates: Templates) -> None:
    if not command.args:
        raise InvalidInput(ui.DELETE_TEMPLATE_FORM)
    template = await templates.delete_template(command.args)
    await message.answer(ui.template_deleted(template))
