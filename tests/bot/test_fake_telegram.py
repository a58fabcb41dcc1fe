"""The fake Bot API server answers like Telegram, so the bot's tests mean something."""

from __future__ import annotations

import asyncio
import io

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from PIL import Image

from tests.bot.conftest import ADMIN
from tests.fakes.telegram import FakeTelegram


async def test_text_over_4096_characters_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(ADMIN, "x" * 4097)
    # The limit counts the text after HTML parsing, as Telegram does.
    await bot.send_message(ADMIN, "<b>" + "x" * 4096 + "</b>")


async def test_broken_html_is_refused(bot: Bot) -> None:
    for text in ("a < b", "<b>open", "<script>x</script>", "<b><i>x</b></i>"):
        with pytest.raises(TelegramBadRequest, match="can't parse entities"):
            await bot.send_message(ADMIN, text)
    await bot.send_message(ADMIN, "a &lt; b <b>bold</b> <code>x</code>")


async def test_callback_data_over_64_bytes_is_refused(bot: Bot) -> None:
    def markup(data: str) -> InlineKeyboardMarkup:
        button = InlineKeyboardButton(text="b", callback_data=data)
        return InlineKeyboardMarkup(inline_keyboard=[[button]])

    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(ADMIN, "hi", reply_markup=markup("x" * 65))
    await bot.send_message(ADMIN, "hi", reply_markup=markup("x" * 64))


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(text=label, callback_data=label) for label in labels]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


async def test_editing_to_the_same_text_entities_and_keyboard_is_not_modified(
    telegram: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_message(ADMIN, "<b>same</b> text", reply_markup=keyboard("a"))
    mid = sent.message_id
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "<b>same</b> text", chat_id=ADMIN, message_id=mid, reply_markup=keyboard("a")
        )
    # <strong> makes the same bold entity as <b>: the content is the same.
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "<strong>same</strong> text", chat_id=ADMIN, message_id=mid, reply_markup=keyboard("a")
        )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=ADMIN, message_id=mid, reply_markup=keyboard("a")
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("other", chat_id=ADMIN, message_id=999)
    [message] = telegram.bot_messages(ADMIN)
    assert message.edits == 0 and message.source == "<b>same</b> text"


async def test_an_edit_that_changes_only_the_keyboard_is_accepted(
    telegram: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_message(ADMIN, "same", reply_markup=keyboard("a"))
    mid = sent.message_id
    await bot.edit_message_text(
        "same", chat_id=ADMIN, message_id=mid, reply_markup=keyboard("a", "b")
    )
    [message] = telegram.bot_messages(ADMIN)
    assert [b["text"] for b in message.buttons()] == ["a", "b"] and message.edits == 1
    await bot.edit_message_reply_markup(chat_id=ADMIN, message_id=mid, reply_markup=keyboard("c"))
    assert [b["text"] for b in message.buttons()] == ["c"] and message.edits == 2
    # An edit that gives no keyboard removes it, as in Telegram.
    await bot.edit_message_text("same", chat_id=ADMIN, message_id=mid)
    assert message.reply_markup is None and message.edits == 3
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=ADMIN, message_id=mid)


async def test_an_edit_that_changes_only_the_formatting_is_accepted(
    telegram: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_message(ADMIN, "same text")
    mid = sent.message_id
    edited = await bot.edit_message_text("<b>same</b> text", chat_id=ADMIN, message_id=mid)
    # The plain text did not change; its entities did.
    assert isinstance(edited, Message) and edited.text == "same text"
    assert [(e.type, e.offset, e.length) for e in edited.entities or []] == [("bold", 0, 4)]
    await bot.edit_message_text("<b>same</b> <i>text</i>", chat_id=ADMIN, message_id=mid)
    await bot.edit_message_text("<i>same</i> <i>text</i>", chat_id=ADMIN, message_id=mid)
    [message] = telegram.bot_messages(ADMIN)
    assert message.text == "same text" and message.edits == 3
    assert [e["type"] for e in message.entities] == ["italic", "italic"]


async def test_a_caption_edit_compares_caption_entities_and_keyboard(
    telegram: FakeTelegram, bot: Bot
) -> None:
    photo = BufferedInputFile(b"\x89PNG fake", filename="qr.png")
    sent = await bot.send_photo(ADMIN, photo, caption="Scan this", reply_markup=keyboard("a"))
    mid = sent.message_id
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_caption(
            chat_id=ADMIN, message_id=mid, caption="Scan this", reply_markup=keyboard("a")
        )
    await bot.edit_message_caption(
        chat_id=ADMIN, message_id=mid, caption="Scan this", reply_markup=keyboard("b")
    )
    edited = await bot.edit_message_caption(
        chat_id=ADMIN, message_id=mid, caption="<b>Scan</b> this", reply_markup=keyboard("b")
    )
    assert isinstance(edited, Message) and edited.caption == "Scan this"
    assert [(e.type, e.offset, e.length) for e in edited.caption_entities or []] == [
        ("bold", 0, 4)
    ]
    [message] = telegram.bot_messages(ADMIN)
    assert message.edits == 2


async def test_a_wrong_token_is_401(telegram: FakeTelegram, bot: Bot) -> None:
    wrong = Bot("1:" + "a" * 30, session=bot.session)
    with pytest.raises(TelegramUnauthorizedError):
        await wrong.get_me()


async def test_429_on_demand_carries_retry_after(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.fail_next("sendMessage", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(ADMIN, "hi")
    assert caught.value.retry_after == 7
    await bot.send_message(ADMIN, "hi")


async def test_get_updates_offsets_confirm_and_long_poll_waits(
    telegram: FakeTelegram, bot: Bot
) -> None:
    await telegram.send(ADMIN, "one")
    await telegram.send(ADMIN, "two")
    first = await bot.get_updates(offset=0, timeout=0)
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    again = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
    assert [u.message.text for u in again if u.message] == ["two"]  # "one" is confirmed
    waiting = asyncio.create_task(bot.get_updates(offset=again[-1].update_id + 1, timeout=5))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await telegram.send(ADMIN, "three")
    arrived = await waiting
    assert [u.message.text for u in arrived if u.message] == ["three"]
    empty = await bot.get_updates(offset=arrived[-1].update_id + 1, timeout=1)
    assert empty == []


async def test_a_second_poller_terminates_the_first(telegram: FakeTelegram, bot: Bot) -> None:
    polls = len(telegram.calls_of("getUpdates"))
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await telegram.wait_for(lambda: len(telegram.calls_of("getUpdates")) > polls or None)
    await bot.get_updates(timeout=0)
    with pytest.raises(TelegramConflictError):
        await first


async def test_uploads_are_kept_with_their_bytes_and_downloads_work(
    telegram: FakeTelegram, bot: Bot
) -> None:
    sent = await bot.send_document(
        ADMIN, BufferedInputFile(b"a,b\n1,2\n", filename="x.csv"), caption="<b>csv</b>"
    )
    [message] = telegram.bot_messages(ADMIN)
    assert message.file is not None and message.file.data == b"a,b\n1,2\n"
    assert message.text == "csv" and message.file.filename == "x.csv"
    assert sent.document is not None
    downloaded = await bot.download(sent.document.file_id)
    assert downloaded is not None and downloaded.read() == b"a,b\n1,2\n"


async def test_messages_to_someone_who_never_wrote_are_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(31337, "hello")


def png_of(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("width", "height"), [(9000, 1001), (2100, 100), (100, 2100)])
async def test_a_photo_beyond_telegrams_dimensions_is_refused(
    bot: Bot, width: int, height: int
) -> None:
    photo = BufferedInputFile(png_of(width, height), filename="big.png")
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(ADMIN, photo)


async def test_a_photo_within_telegrams_dimensions_is_taken(
    telegram: FakeTelegram, bot: Bot
) -> None:
    for width, height in ((1000, 640), (9000, 1000), (2000, 100)):
        await bot.send_photo(ADMIN, BufferedInputFile(png_of(width, height), filename="ok.png"))
    assert len(telegram.calls_of("sendPhoto")) == 3
