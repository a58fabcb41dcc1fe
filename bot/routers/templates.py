"""/templates, /addtemplate, /deltemplate."""

from __future__ import annotations

from html import escape

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
        raise InvalidInput("Write it as /addtemplate greeting | Hello {first_name}!")
    template = await templates.add_template(name.strip(), text.strip())
    await message.answer(f"Saved template <b>{escape(template.name)}</b>. Pick it in /schedule.")


@router.message(Command("deltemplate"))
async def delete_template(message: Message, command: CommandObject, templates: Templates) -> None:
    if not command.args:
        raise InvalidInput("Tell me which: /deltemplate greeting (see /templates).")
    template = await templates.delete_template(command.args)
    await message.answer(f"Deleted template <b>{escape(template.name)}</b>.")
