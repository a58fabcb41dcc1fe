"""/link: the QR code to link WhatsApp (kept fresh), or a pairing code for a number.

It promises a QR code only when one will come: while WhatsApp cannot start (no network, no
browser) it says why and what to do instead.
"""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from bot import ui
from bot.notifier import TelegramNotifier
from core.domain.errors import WhatsAppError
from core.domain.session import Remedy, SessionState
from core.services.scheduling import Scheduling

router = Router(name=__name__)


@router.message(Command("link"))
async def link(
    message: Message, command: CommandObject, service: Scheduling, notifier: TelegramNotifier
) -> None:
    status = await service.status()
    if status.whatsapp_state == SessionState.WORKING:
        who = " ".join(p for p in (status.whatsapp_name, status.whatsapp_number) if p)
        await message.answer(f"WhatsApp is linked already{f' as {escape(who)}' if who else ''}.")
        return
    if status.whatsapp_state != SessionState.SCAN_QR_CODE:
        words = status.whatsapp_words
        if words.remedy is not Remedy.fix_server:
            notifier.watch_link(message.chat.id, None)
        await message.answer(ui.link_answer(words))
        return
    if command.args:
        code = await service.pairing_code(command.args)
        await message.answer(
            f"Your pairing code: <code>{escape(code)}</code>\nOn your phone: WhatsApp → "
            "Settings → Linked devices → Link a device → Link with phone number instead, "
            "then type the code. I will tell you when it is linked."
        )
        notifier.watch_link(message.chat.id, None)
        return
    try:
        qr = await service.link_qr()
    except WhatsAppError:
        # Between two QR codes (or just linked): the next one, or the news, follows.
        notifier.watch_link(message.chat.id, None)
        await message.answer(
            "WhatsApp has no QR code this moment; I will send it here as soon as it has one."
        )
        return
    sent = await message.answer_photo(
        BufferedInputFile(ui.qr_png(qr.qr), filename="whatsapp-qr.png"), caption=ui.QR_CAPTION
    )
    notifier.watch_link(message.chat.id, sent.message_id)
