"""/contacts, /addcontact, /delcontact, /importcontacts."""

from __future__ import annotations

import re

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot import ui
from core.domain.errors import InvalidInput
from core.services import Contacts, WhatsApp

router = Router(name=__name__)

# "<name> <number>": the number is the trailing run of digits, spaces, dashes and brackets
# (digits of any script, and a fullwidth plus: core reads them as ASCII).
_NAME_NUMBER = re.compile(r"^(?P<name>.+?)\s+(?P<number>[+\uff0b]?[\d(][\d\s\-./()]*)$")


@router.message(Command("contacts"))
async def contacts(message: Message, contacts: Contacts) -> None:
    await message.answer(ui.contacts_text(await contacts.list_contacts()))


@router.message(Command("addcontact"))
async def add_contact(message: Message, command: CommandObject, contacts: Contacts) -> None:
    match = _NAME_NUMBER.match((command.args or "").strip())
    if match is None:
        raise InvalidInput(ui.ADD_CONTACT_FORM)
    contact = await contacts.add_contact(match["name"].strip(), match["number"].strip())
    unchecked = [contact.phone] if await contacts.unchecked(contact) else []
    await message.answer(ui.with_unchecked(ui.contact_saved(contact), unchecked))


@router.message(Command("delcontact"))
async def delete_contact(message: Message, command: CommandObject, contacts: Contacts) -> None:
    if not command.args:
        raise InvalidInput(ui.DELETE_CONTACT_FORM)
    contact = await contacts.delete_contact(command.args)
    await message.answer(ui.contact_deleted(contact))


@router.message(Command("importcontacts"))
async def import_contacts(message: Message, whatsapp: WhatsApp) -> None:
    result = await whatsapp.import_contacts()
    await message.answer(ui.contacts_imported(result))
