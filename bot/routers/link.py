"""/link: the QR code to link WhatsApp (kept fresh), or a pairing code for a number.

It promises a QR code only when one will come: while WhatsApp cannot start (no network, no
browser) it says why and what to do instead.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from bot import ui
from bot.notifier import TelegramNotifier
from core.domain.errors import WhatsAppError
from core.domain.session import Remedy, SessionState
from core.services import WhatsApp

router = Router(name=__name__)


@router.message(Command("link"))
async def link(
    message: Message, command: CommandObject, whatsapp: WhatsApp, notifier: TelegramNotifier
) -> None:
    report = await whatsapp.status()
    session_state = report.whatsapp_state
    if session_state == SessionState.WORKING:
        await message.answer(ui.linked_already(report.whatsapp_name, report.whatsapp_number))
        return
    if session_state != SessionState.SCAN_QR_CODE:
        words = report.whatsapp_words
        if words.remedy is not Remedy.fix_server:
            notifier.watch_link(message.chat.id, None)
        await message.answer(ui.link_answer(words))
        return
    if command.args:
        code = await whatsapp.pairing_code(command.args)
        await message.answer(ui.pairing_code_text(code))
        notifier.watch_link(message.chat.id, None)
        return
    try:
        qr = await whatsapp.link_qr()
    except WhatsAppError:
        # Between two QR codes (or just linked): the next one, or the news, follows.
        notifier.watch_link(message.chat.id, None)
        await message.answer(ui.NO_QR_YET)
        return
    sent = await message.answer_photo(
        BufferedInputFile(ui.qr_png(qr.qr), filename=ui.QR_FILENAME), caption=ui.QR_CAPTION
    )
    notifier.watch_link(message.chat.id, sent.message_id)
