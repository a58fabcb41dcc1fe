"""Hostile input through the real dispatcher: every command and button with arbitrary text is
answered once and clearly, fits Telegram's limits, and stores nothing that could not be sent."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from aiogram import Bot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import ui
from bot.access import Access
from bot.app import build_dispatcher
from bot.notifier import TelegramNotifier
from core.adapters.store import Store
from core.adapters.store.sqlite import SQLiteStore
from core.domain.clock import FakeClock
from core.services import Services
from tests.bot.conftest import (
    ADMIN,
    OTHER_ADMIN,
    START,
    Harness,
    linked_sidecar,
    sidecar_client,
)
from tests.fakes.telegram import FakeTelegram, parse_html, telegram_length

PHONE = re.compile(r"^\+[0-9]{8,15}$")
GROUP = re.compile(r"^[0-9]+(?:-[0-9]+)?@g\.us$")
NAME_FORBIDDEN = re.compile(r"[,;|\n\r]")
HUGE_ID = "99999999999999999999"
WHOLE_ENTITY = re.compile(r"&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")

COMMANDS = sorted({name for name, _, _ in ui.COMMANDS} | {"start", "help", "cancel"})
# Telegram sends valid UTF-8 only: no lone surrogates.
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
digits_anywhere = st.text(
    st.sampled_from("0123456789٠١٢٣٤٥٦٧٨٩０１２３４５６７８９²³¹⁴۱۲۳०१२३ +-#"), max_size=30
)
# 0 to 9 in scripts people type numbers in, and in superscript (which is no number).
DIGIT_SYSTEMS = [
    "0123456789",
    "٠١٢٣٤٥٦٧٨٩",
    "۰۱۲۳۴۵۶۷۸۹",
    "０１２３４５６７８９",
    "०१२३४५६७८९",
    "⁰¹²³⁴⁵⁶⁷⁸⁹",
]
phone_in_any_script = st.builds(
    lambda plus, system, digits: plus + "".join(system[int(d)] for d in digits),
    st.sampled_from(["+", "＋", "00"]),
    st.sampled_from(DIGIT_SYSTEMS),
    st.text("0123456789", min_size=8, max_size=15),
)
numbers = st.one_of(digits_anywhere, phone_in_any_script)
arguments = st.one_of(
    any_text,
    digits_anywhere,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.builds(lambda n: f"1 {n}", any_text),  # /edit 1 <field> <value>
    st.builds(lambda n: f"Karim {n}", numbers),  # /addcontact <name> <number>
    st.builds(lambda n: f"{n} | tomorrow 9:00 | Hi", numbers),  # /schedule a | b | c
)
CALLBACK_PREFIXES = [
    "s:run",
    "s:pause",
    "s:resume",
    "s:edit",
    "s:del",
    "s:delok",
    "s:keep",
    "s:prev",
    "lp",
    "e:{}:text",
    "r",
    "w:c",
    "w:t",
    "w:w",
    "ua:chk",
    "ua:re",
    "ua:reok",
]
callback_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(st.sampled_from("0123456789²٣"), min_size=1, max_size=25),
)


def pack(prefix: str, value: str) -> str:
    return prefix.format(value) if "{}" in prefix else f"{prefix}:{value}"


callback_data = st.one_of(
    st.builds(pack, st.sampled_from(CALLBACK_PREFIXES), callback_ids),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64).filter(
        lambda s: len(s.encode()) <= 64
    ),
)


class ErrorLog(logging.Handler):
    """Every record at ERROR or above: a handler that failed logs one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def fresh_bot(telegram: FakeTelegram, bot: Bot) -> AsyncIterator[Harness]:
    """The bot as `tests/bot/conftest.py` builds it, with a new store, service and dispatcher
    for each example (Telegram and its HTTP session are shared: closing one takes 0.25 s)."""
    # Each example starts with an empty record, so one that fails does not fail the next.
    telegram.events.clear()
    with TemporaryDirectory() as folder:
        store: Store = await SQLiteStore.open(f"sqlite:///{Path(folder) / 'wasched.db'}")
        try:
            clock = FakeClock(START)
            whatsapp = linked_sidecar()
            async with sidecar_client(whatsapp) as client:
                service = Services(store, clock, default_timezone="Europe/Berlin", whatsapp=client)
                notifier = TelegramNotifier(bot, admin_ids={ADMIN, OTHER_ADMIN}, pace_s=0)
                access = Access({ADMIN, OTHER_ADMIN}, service.users)
                await access.prepare()
                notifier.set_audience(access.members)
                dispatcher = build_dispatcher(access)
                async with notifier.outbox.running(drain_s=2):
                    yield Harness(
                        telegram,
                        dispatcher,
                        bot,
                        service,
                        notifier,
                        access,
                        whatsapp,
                        store,
                        clock,
                    )
        finally:
            await store.close()


async def assert_nothing_bogus_stored(store: Store) -> None:
    """Every contact, template and schedule holds only what can be sent."""
    for contact in await store.list_contacts():
        assert PHONE.match(contact.phone), contact
        assert contact.name.strip() and not NAME_FORBIDDEN.search(contact.name), contact
    for template in await store.list_templates():
        assert template.name.strip() and not NAME_FORBIDDEN.search(template.name), template
        assert template.text.strip(), template
    for schedule in await store.list_schedules():
        assert schedule.recipients, schedule
        for recipient in schedule.recipients:
            assert PHONE.match(recipient.address) or GROUP.match(recipient.address), recipient


def assert_fits_telegram(h: Harness, since: int) -> None:
    for event in h.telegram.events[since:]:
        if event.kind == "send" and event.message is not None:
            limit = 1024 if event.message.kind != "text" else 4096
            assert telegram_length(event.message.text) <= limit
            parse_html(event.message.source)  # balanced tags, known entities


async def drive(h: Harness, updates: list[tuple[str, str]]) -> None:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        await h.service.contacts.add_contact("Anna", "+4915123456789")
        await h.service.templates.add_template("greeting", "Hello {first_name}!")
        await h.service.schedules.create_schedule(
            ADMIN, recipients="Anna", when="in 2h", text="hi"
        )
        anchor = await h.ask("/help", "wasched")
        for kind, value in updates:
            since = h.telegram.cursor()
            if kind == "say":
                await h.say(value)
                sent = [e for e in h.telegram.events[since:] if e.kind == "send"]
                # /cancel outside a wizard, like every other update, is answered once.
                assert len(sent) == 1, (value[:80], [e.text[:80] for e in sent])
                assert sent[0].text.strip()
            else:
                await h.press_data(anchor, value)
                answers = [e for e in h.telegram.events[since:] if e.kind == "answer"]
                assert len(answers) == 1, value
                sent = [e for e in h.telegram.events[since:] if e.kind == "send"]
                assert len(sent) <= 1, value
            assert_fits_telegram(h, since)
            assert not errors.records, [r.getMessage() for r in errors.records]
        await assert_nothing_bogus_stored(h.store)
    finally:
        logging.getLogger().removeHandler(errors)


command_text = st.builds(
    lambda name, args: f"/{name} {args}" if args else f"/{name}",
    st.sampled_from(COMMANDS) | st.text("abcxyz_", min_size=1, max_size=40),
    arguments,
)
# Each command in the shape it expects, with hostile parts.
ID_COMMANDS = ["delete", "edit", "export", "logs", "pause", "preview", "resume", "runnow"]
names = st.one_of(st.just("Anna"), st.text(",;| ", min_size=1, max_size=5), any_text)
ids = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.builds(
        lambda system, n: "".join(system[int(d)] for d in str(n)),
        st.sampled_from(DIGIT_SYSTEMS),
        st.integers(0, 10**21),
    ),
)
shaped_command = st.one_of(
    st.builds("/addcontact {} {}".format, names, numbers),
    st.builds("/addtemplate {} | {}".format, names, any_text),
    st.builds(
        "/schedule {} | {} | {}".format,
        st.one_of(numbers, names),
        st.sampled_from(["tomorrow 9:00", "in 2h"]),
        any_text,
    ),
    st.builds("/{} {}".format, st.sampled_from(ID_COMMANDS), ids),
    st.builds(
        "/edit {} {} {}".format,
        st.sampled_from(["1", HUGE_ID]),
        st.sampled_from(["text", "when", "recipients"]),
        st.one_of(any_text, numbers),
    ),
)
update = st.one_of(
    st.tuples(st.just("say"), command_text),
    st.tuples(st.just("say"), shaped_command),
    st.tuples(st.just("say"), any_text.filter(str.strip)),
    st.tuples(st.just("press"), callback_data),
)


# The fuzz run's crashes, kept as explicit examples.
FOUND_BY_FUZZING: list[tuple[str, str]] = [
    *[
        ("say", f"/{name} {HUGE_ID}")
        for name in ("edit", "export", "logs", "pause", "preview", "resume", "runnow")
    ],
    *[
        ("press", pack(prefix, HUGE_ID))
        for prefix in ("s:run", "s:delok", "e:{}:text", "r", "w:c", "w:t", "ua:chk", "ua:reok")
    ],
    ("say", f"/logs {'9' * 5000}"),
    ("say", "/addcontact , , +4915112345678"),
    ("say", "/addtemplate , | Hello {first_name}!"),
    ("say", "/addtemplate ; ; | Hello"),
    ("say", "/" + "x" * 5000),
    ("say", "/" + "y" * 100_000),
    ("say", "/" + "&" * 3000 + "🙂" * 2100),
    ("say", "/logs ²"),
    ("say", "/runnow ²"),
    ("say", "/addcontact Karim +٤٩١٥١١٢٣٤٥٦٧"),
    ("say", "/addcontact Kenji +４９１５１１２３４５６７"),
    ("say", "/schedule +٤٩١٥١١٢٣٤٥٦٧ | tomorrow 9:00 | Hi"),
    ("say", "/schedule +４９１５１１２３４５６７, Anna | tomorrow 9:00 | Hi"),
    ("say", "/schedule ١٢٠٣٦٣٠٤١٢٣٤٥٦٧٨٩٠@g.us | tomorrow 9:00 | Hi"),
    # str.isdigit() takes superscripts: they were stored, and refused by the sidecar later.
    ("say", "/schedule +⁴⁹¹⁵¹¹²³⁴⁵⁶⁷ | tomorrow 9:00 | Hi"),
]


@settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    # The fake Telegram and the Bot are shared by every example; each builds its own store.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(updates=st.lists(update, min_size=1, max_size=3))
async def test_every_update_is_answered_once_and_stores_nothing_bogus(
    telegram: FakeTelegram, app_bot: Bot, updates: list[tuple[str, str]]
) -> None:
    async with fresh_bot(telegram, app_bot) as h:
        await drive(h, updates)


for found in FOUND_BY_FUZZING:
    test_every_update_is_answered_once_and_stores_nothing_bogus = example(updates=[found])(
        test_every_update_is_answered_once_and_stores_nothing_bogus
    )


# --- each crash of the fuzz run, as a person meets it ------------------------------------------


@pytest.mark.parametrize(
    "command", ["edit", "export", "logs", "pause", "preview", "resume", "runnow", "delete"]
)
async def test_an_id_no_store_can_hold_is_no_such_schedule(harness: Harness, command: str) -> None:
    reply = await harness.ask(f"/{command} {HUGE_ID}", "There is no schedule")
    assert f"#{HUGE_ID}: see /list" in reply.text


async def test_a_thousands_of_digits_id_is_refused_shortened(harness: Harness) -> None:
    reply = await harness.ask(f"/logs {'9' * 5000}", "There is no schedule")
    assert f"#{'9' * 23}…: see /list" in reply.text
    assert telegram_length(reply.text) < 200


@pytest.mark.parametrize("data", [f"s:run:{HUGE_ID}", f"e:{HUGE_ID}:text", f"r:{HUGE_ID}"])
async def test_a_button_with_an_id_no_store_can_hold_no_longer_works(
    harness: Harness, data: str
) -> None:
    message = await harness.ask("/help", "wasched")
    query = await harness.press_data(message, data)
    assert "no longer works" in (await harness.telegram.answer(query))["text"]


@pytest.mark.parametrize("typed", ["²", "³12", "١٢", "１２"])
async def test_an_id_in_other_digits_is_asked_for_again(harness: Harness, typed: str) -> None:
    await harness.ask(f"/logs {typed}", "Tell me which schedule: /logs 12")


async def test_a_name_of_only_commas_is_refused_saying_what_to_type(harness: Harness) -> None:
    reply = await harness.ask("/addcontact , , +4915112345678", "cannot contain commas")
    assert "/addcontact Anna +49" in reply.text
    reply = await harness.ask("/addtemplate , | Hello {first_name}!", "cannot contain commas")
    assert "/addtemplate greeting | Hello {first_name}!" in reply.text
    assert await harness.store.list_contacts() == []
    assert await harness.store.list_templates() == []


@pytest.mark.parametrize(
    "typed", ["+٤٩١٥١١٢٣٤٥٦٧", "+４９１５１１２３４５６７", "＋４９１５１１２３４５６７"]
)
async def test_a_number_in_other_digits_is_saved_and_shown_in_ascii(
    harness: Harness, typed: str
) -> None:
    reply = await harness.ask(f"/addcontact Karim {typed}", "Saved Karim")
    assert "(+491511234567)" in reply.text
    [contact] = await harness.store.list_contacts()
    assert contact.phone == "+491511234567"


@pytest.mark.parametrize("length", [5_000, 100_000])
async def test_an_unknown_long_command_is_echoed_shortened(harness: Harness, length: int) -> None:
    reply = await harness.ask("/" + "x" * length, "I don't know /xxx")
    assert f"/{'x' * 38}…. /help lists" in reply.text


# --- cutting HTML to Telegram's limits -----------------------------------------------------------


def test_cap_leaves_a_text_within_the_limit_as_it_is() -> None:
    text = "<b>" + "a" * 4000 + "</b> &amp; " + "b" * 90
    assert ui.cap(text) == text  # 4096 after parsing, though the source is longer


def test_cap_counts_as_telegram_does_an_emoji_is_two() -> None:
    capped = ui.cap("🙂" * 3000)
    assert telegram_length(parse_html(capped)) <= 4096
    assert capped.endswith(ui.CUT_MARKER)


@pytest.mark.parametrize(
    "text",
    [
        "<b>" + "a" * 5000 + "</b>",
        '<a href="https://example.org/?a=1&amp;b=2"><i>'
        + "x" * 3000
        + "</i></a>"
        + "<b>y</b>" * 2000,
        "<b>bold</b> " + "&lt;&gt;&amp;&quot;" * 2000,
        "\n".join(f"• <b>{i}</b>: {'&amp;' * 20}" for i in range(600)),
        "<blockquote expandable><code>" + "🙂&#128512;" * 2000 + "</code></blockquote>",
    ],
)
@pytest.mark.parametrize("limit", [ui.TELEGRAM_TEXT_LIMIT, ui.TELEGRAM_CAPTION_LIMIT])
def test_cap_never_leaves_a_broken_tag_or_entity(text: str, limit: int) -> None:
    capped = ui.cap(text, limit)
    plain = parse_html(capped)  # raises on an unclosed tag or a cut entity
    assert telegram_length(plain) <= limit
    assert capped.endswith(ui.CUT_MARKER)
    assert telegram_length(plain) > limit // 2  # cut near the limit, not far before it
    for amp in re.finditer("&", capped):  # every entity kept whole
        assert WHOLE_ENTITY.match(capped, amp.start()), capped[amp.start() : amp.start() + 10]


def test_cap_cuts_a_list_at_a_line_break() -> None:
    lines = [f"• <b>contact {i}</b>: +49151{i:08d}" for i in range(300)]
    capped = ui.cap("\n".join(lines))
    kept = capped.removesuffix(ui.CUT_MARKER).split("\n")
    assert kept == lines[: len(kept)]


def test_shorten_keeps_plain_text_to_the_limit_with_an_ellipsis() -> None:
    assert ui.shorten("short", 10) == "short"
    assert ui.shorten("x" * 50, 10) == "x" * 9 + "…"
    assert ui.shorten("🙂" * 10, 10) == "🙂" * 4 + "…"  # 2 units each
