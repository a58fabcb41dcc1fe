"""The chat's first day: the time zone asked once (buttons, a typed city, a shared location),
what /tz does to existing schedules, and no markup characters in any message."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.access import Access
from bot.app import build_dispatcher
from core.domain.models import (
    DeliveryFilter,
    DeliveryStatus,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)
from tests.bot.conftest import ADMIN, OTHER_ADMIN, STRANGER, Harness
from tests.fakes.telegram import ChatMessage

ZONE_QUESTION = "Your time zone is"


async def zone_of(harness: Harness, user: int = ADMIN) -> str | None:
    stored = await harness.store.get_user(user)
    return None if stored is None else stored.timezone


# --- asked once, on the first /start ---------------------------------------------------------


async def test_first_start_asks_the_zone_once_and_a_typed_city_sets_it(harness: Harness) -> None:
    first = await harness.ask("/start", "Hello!")
    assert ZONE_QUESTION in first.text and "/schedule" in first.text  # one message, help too
    assert [b["text"] for b in first.buttons()][:2] == ["Europe/Berlin", "Europe/London"]
    assert len(harness.telegram.bot_messages(ADMIN)) == 1

    # The answer is typed, without /tz: a city name is enough.
    done = await harness.ask("new york", "now America/New_York")
    assert await zone_of(harness) == "America/New_York"
    assert "Next: /link" in done.text  # the next step of the first minute
    assert "05:00" in done.text  # 10:00 UTC is 05:00 in New York

    again = await harness.ask("/start", "Hello!")
    assert ZONE_QUESTION not in again.text and again.buttons() == []
    # Typed text is no zone name any more once answered.
    await harness.say("Berlin")
    assert await zone_of(harness) == "America/New_York"


async def test_a_zone_button_sets_the_zone(harness: Harness) -> None:
    question = await harness.ask("/start", ZONE_QUESTION, user=OTHER_ADMIN)
    await harness.press(question, "Asia/Kolkata", user=OTHER_ADMIN)
    await harness.telegram.reply(OTHER_ADMIN, "now Asia/Kolkata")
    assert await zone_of(harness, OTHER_ADMIN) == "Asia/Kolkata"
    assert harness.telegram.bot_messages(OTHER_ADMIN)[0].buttons() == []  # answered


async def test_tz_with_a_city_sets_its_zone_and_says_so(harness: Harness) -> None:
    done = await harness.ask("/tz Berlin", "Your time zone is now Europe/Berlin")
    assert "11:00" in done.text
    await harness.ask("/tz tokyo", "now Asia/Tokyo")
    assert await zone_of(harness) == "Asia/Tokyo"
    await harness.ask("/tz europe/LONDON", "now Europe/London")
    # Copied with its Markdown quotes: read as the name inside.
    await harness.ask("/tz `Europe/Berlin`", "now Europe/Berlin")


async def test_a_name_of_several_zones_gives_a_button_each(harness: Harness) -> None:
    choices = await harness.ask("/tz Indiana", "Several time zones match")
    names = [b["text"] for b in choices.buttons()]
    assert "America/Indiana/Indianapolis" in names and len(names) > 1
    assert await zone_of(harness) is None  # nothing stored before a choice
    await harness.press(choices, "America/Indiana/Knox")
    await harness.telegram.reply(ADMIN, "now America/Indiana/Knox")
    assert await zone_of(harness) == "America/Indiana/Knox"


async def test_an_unknown_zone_suggests_the_nearest_and_stores_nothing(harness: Harness) -> None:
    refused = await harness.ask("/tz Berln", "I know no time zone called")
    assert "Did you mean Europe/Berlin?" in refused.text
    assert "`" not in refused.text
    assert next(b["text"] for b in refused.buttons()) == "Europe/Berlin"
    assert await zone_of(harness) is None
    await harness.press(refused, "Europe/Berlin")
    await harness.telegram.reply(ADMIN, "now Europe/Berlin")


async def test_a_shared_location_becomes_a_zone_offline(harness: Harness) -> None:
    await harness.ask("/start", ZONE_QUESTION)
    since = harness.telegram.cursor()
    await harness.telegram.send_location(ADMIN, latitude=-33.87, longitude=151.21)  # Sydney
    await harness.flush()
    done = await harness.telegram.reply(ADMIN, "now Australia/Sydney", since=since)
    assert "Next: /link" in done.text
    assert await zone_of(harness) == "Australia/Sydney"

    since = harness.telegram.cursor()
    await harness.telegram.send_location(ADMIN, latitude=40.71, longitude=-74.0)  # New York
    await harness.flush()
    await harness.telegram.reply(ADMIN, "now America/New_York", since=since)


async def test_a_zone_set_in_the_middle_of_the_wizard_leaves_the_wizard_going(
    harness: Harness,
) -> None:
    await harness.ask("/schedule", "1/3 Who gets it?")
    since = harness.telegram.cursor()
    await harness.telegram.send_location(ADMIN, latitude=-33.87, longitude=151.21)
    await harness.flush()
    await harness.telegram.reply(ADMIN, "now Australia/Sydney", since=since)
    await harness.ask("/tz Indiana", "Several time zones match")
    await harness.ask("+4915123456789", "2/3 What should it say?")
    assert await zone_of(harness) == "Australia/Sydney"


async def test_tz_in_the_middle_of_the_wizard_asks_for_tz_with_the_city_not_typed_text(
    harness: Harness,
) -> None:
    await harness.ask("/schedule", "1/3 Who gets it?")
    await harness.ask("+4915123456789", "2/3 What should it say?")
    question = await harness.ask("/tz", ZONE_QUESTION)
    # Typed text goes to the wizard, so the question asks for /tz NAME, not for typing.
    assert "/tz Berlin" in question.text and "type a city" not in question.text.lower()
    unknown = await harness.ask("/tz Berln", "I know no time zone called")
    assert "/tz Berlin" in unknown.text and "type a city" not in unknown.text.lower()
    australia = sorted(z for z in zoneinfo.available_timezones() if z.startswith("Australia/"))
    many = await harness.ask("/tz Australia", f"{len(australia)} time zones match")
    assert f"/tz {australia[8].split('/')[1]}" in many.text  # the first without a button
    await harness.ask("/tz Berlin", "now Europe/Berlin")
    assert await zone_of(harness) == "Europe/Berlin"
    await harness.ask("Hi", "3/3")  # the wizard takes its text, as it said it would


async def test_more_zones_than_buttons_says_how_many_and_asks_for_the_city(
    harness: Harness,
) -> None:
    australia = sorted(z for z in zoneinfo.available_timezones() if z.startswith("Australia/"))
    assert len(australia) > 8
    many = await harness.ask("/tz Australia", "time zones match")
    assert f"{len(australia)} time zones match “Australia”; here are 8 of them" in many.text
    city = australia[8].split("/")[1].replace("_", " ")  # the first without a button
    assert f"Send your city ({city}) or share your location" in many.text
    assert len(many.buttons()) == 8 and "Australia/Sydney" not in str(many.buttons())
    await harness.ask("Sydney", "now Australia/Sydney")  # typed, as it asked


async def test_did_you_mean_offers_only_a_close_name_and_big_cities_find_their_zone(
    harness: Harness,
) -> None:
    for typed, zone in (
        ("Beijing", "Asia/Shanghai"),
        ("Mumbai", "Asia/Kolkata"),
        ("new delhi", "Asia/Kolkata"),
        ("San Francisco", "America/Los_Angeles"),
        ("Port-au-Prince", "America/Port-au-Prince"),
        ("port au prince", "America/Port-au-Prince"),
    ):
        await harness.ask(f"/tz {typed}", f"Your time zone is now {zone}")
        assert await zone_of(harness) == zone, typed
    near = await harness.ask("/tz Tokio", "I know no time zone called")
    assert "Did you mean Asia/Tokyo?" in near.text
    # Far from any zone's name: no guess, and no button that would set a wrong zone.
    for typed in ("Hanoi", "Zurik"):
        refused = await harness.ask(f"/tz {typed}", "I know no time zone called")
        assert "Did you mean" not in refused.text and refused.buttons() == [], typed
    assert await zone_of(harness) == "America/Port-au-Prince"


async def test_cancel_on_the_zone_question_says_the_zone_is_unchanged(harness: Harness) -> None:
    await harness.ask("/tz", ZONE_QUESTION)
    cancelled = await harness.ask("/cancel", "Cancelled")
    assert cancelled.text == "Cancelled; your time zone is unchanged."
    await harness.say("Berlin")  # no longer read as a zone name
    assert await zone_of(harness) is None


async def test_a_forged_zone_button_is_refused_and_nothing_stored(harness: Harness) -> None:
    question = await harness.ask("/tz", ZONE_QUESTION)
    query = await harness.press_data(question, "tz:set:Mars/Olympus")
    answer = await harness.telegram.answer(query)
    assert answer["show_alert"] and "Mars/Olympus" in answer["text"]
    assert await zone_of(harness) is None
    query = await harness.press_data(question, "tz:mv:Mars/Olympus")
    assert (await harness.telegram.answer(query))["show_alert"]


# --- /tz and existing schedules ----------------------------------------------------------------


async def test_tz_says_schedules_keep_their_zone_and_a_button_moves_them(
    harness: Harness,
) -> None:
    service = harness.service
    daily = await service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="every day at 9:00", text="morning"
    )
    once = await service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="tomorrow 18:00", text="evening"
    )
    # Today 11:30 in Berlin; 11:30 in New York (16:30 UTC) is still to come.
    soon = await service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="28.11.2026 11:30", text="soon"
    )
    # It is 11:00 in Berlin, 05:00 in New York, 19:00 in Tokyo: 12:00 has passed only there.
    past_in_tokyo = await service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="28.11.2026 12:00", text="late"
    )
    await service.schedules.pause(soon.owner_id, soon.id)

    told = await harness.ask("/tz America/New_York", "now America/New_York")
    assert "Your 4 schedules keep Europe/Berlin" in told.text
    assert f"#{daily.id}" in told.text and "09:00 stays 09:00" in told.text
    # Nothing moved before the button.
    assert (
        await service.schedules.get_schedule(daily.owner_id, daily.id)
    ).rule.timezone == "Europe/Berlin"

    await harness.press(told, "Move them to America/New_York")
    moved = await harness.telegram.reply(ADMIN, "Moved 4 to America/New_York")
    assert told.buttons() == [] and moved.buttons() == []  # the button is gone once pressed

    new_york = ZoneInfo("America/New_York")
    after = await service.schedules.get_schedule(daily.owner_id, daily.id)
    assert after.rule.timezone == "America/New_York"
    assert after.next_run_at is not None
    assert after.next_run_at.astimezone(new_york).hour == 9
    after_once = await service.schedules.get_schedule(once.owner_id, once.id)
    assert after_once.rule.at is not None and after_once.next_run_at == after_once.rule.at
    local = after_once.rule.at.astimezone(new_york)
    assert (local.day, local.hour, local.minute) == (29, 18, 0)
    paused = await service.schedules.get_schedule(soon.owner_id, soon.id)
    assert paused.state is ScheduleState.paused and paused.rule.timezone == "America/New_York"
    assert paused.rule.at == datetime(2026, 11, 28, 16, 30, tzinfo=UTC)

    # Everything uses New York now: /tz again has nothing to offer.
    again = await harness.ask("/tz New York", "now America/New_York")
    assert again.buttons() == [] and "keep" not in again.text

    # A one-time schedule whose clock time has passed in the new zone is not moved.
    told = await harness.ask("/tz Tokyo", "now Asia/Tokyo")
    assert "Your 4 schedules keep" in told.text
    await harness.press(told, "Move them")
    result = await harness.telegram.reply(ADMIN, "Not moved")
    assert "Moved 2 to Asia/Tokyo" in result.text
    assert f"Not moved: #{soon.id}, #{past_in_tokyo.id}" in result.text
    for kept_id in (soon.id, past_in_tokyo.id):
        kept = await service.schedules.get_schedule(ADMIN, kept_id)
        assert kept.rule.timezone == "America/New_York"
    assert (
        await service.schedules.get_schedule(daily.owner_id, daily.id)
    ).rule.timezone == "Asia/Tokyo"


async def test_an_old_move_button_for_a_zone_no_longer_yours_moves_nothing(
    harness: Harness,
) -> None:
    service = harness.service
    daily = await service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="every day at 9:00", text="morning"
    )
    tokyo = await harness.ask("/tz Tokyo", "now Asia/Tokyo")
    london = await harness.ask("/tz London", "now Europe/London")
    query = await harness.press(tokyo, "Move them to Asia/Tokyo")
    answer = await harness.telegram.answer(query)
    assert answer["show_alert"]
    assert answer["text"].startswith("Your time zone is now Europe/London, not Asia/Tokyo")
    assert (
        await service.schedules.get_schedule(daily.owner_id, daily.id)
    ).rule.timezone == "Europe/Berlin"

    await harness.press(london, "Move them to Europe/London")
    await harness.telegram.reply(ADMIN, "Moved 1 to Europe/London")
    assert (
        await service.schedules.get_schedule(daily.owner_id, daily.id)
    ).rule.timezone == "Europe/London"


async def test_tz_without_schedules_says_nothing_about_them(harness: Harness) -> None:
    done = await harness.ask("/tz UTC", "now UTC")
    assert done.buttons() == [] and "schedule" not in done.text.lower().split("now utc")[1]


# --- no markup characters -----------------------------------------------------------------------

# Markdown that HTML mode would show literally: `code`, *bold*, _italic_, and tags shown as text.
MARKUP = (
    re.compile(r"`"),
    re.compile(r"(?<![\w*])\*[^\s*][^*\n]*\*(?![\w*])"),
    re.compile(r"(?<![\w/])_[^_\s][^_\n]*_(?!\w)"),
    re.compile(r"</?(?:b|i|u|s|code|pre|a)\b[^>]*>"),
    re.compile(r"&(?:lt|gt|amp|quot);"),
)


def markup_in(message: ChatMessage) -> list[str]:
    shown = [message.text] + [str(b.get("text", "")) for b in message.buttons()]
    return [m.group() for text in shown for pattern in MARKUP for m in pattern.finditer(text)]


BOT_INPUTS = (
    "/start",
    "/help",
    "/tz",
    "/tz Berln",
    "/tz Nowhere/Land",
    "/tz `Europe/Berlin`",
    '/tz "Nowhere"',
    "/tz *",
    "/tz Indiana",
    "/tz Berlin",
    "/status",
    "/logs",
    "/logs x",
    "/logs 42",
    "/export 42",
    "/list",
    "/runnow",
    "/runnow 42",
    "/pause 42",
    "/resume x",
    "/delete 42",
    "/preview 42",
    "/edit 42",
    "/contacts",
    "/addcontact Anna",
    "/delcontact Nobody",
    "/templates",
    "/addtemplate x",
    "/deltemplate nothing",
    "/groups",
    "/link",
    "/cancel",
    "/schedule",
    "/cancel",
    "/nonsense",
    "hello",
)


async def test_no_bot_message_shows_markup_characters(harness: Harness) -> None:
    for text in BOT_INPUTS:
        await harness.say(text)
    await harness.say("/start", user=STRANGER)
    await harness.notifier.outbox.drained()
    messages = harness.telegram.bot_messages(ADMIN) + harness.telegram.bot_messages(STRANGER)
    assert len(messages) >= len(BOT_INPUTS)
    shown = {m.text[:60]: markup_in(m) for m in messages if markup_in(m)}
    assert shown == {}
    answers = [e.params.get("text", "") for e in harness.telegram.events if e.kind == "answer"]
    assert not [a for a in answers if "`" in str(a)]


async def test_no_notification_or_first_minute_text_shows_markup_characters(
    harness: Harness,
) -> None:
    notifier = harness.notifier
    await harness.service.contacts.add_contact("Anna Maria", "+4930123456")
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789, Anna Maria", when="every day at 9:00", text="hi"
    )
    run, deliveries = await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    await notifier.run_updated(schedule, run, deliveries)
    late = run.model_copy(update={"trigger": RunTrigger.catch_up, "late_by_s": 14.0})
    await notifier.run_updated(schedule, late, deliveries)
    await notifier.run_missed(schedule, run.model_copy(update={"id": run.id + 1}), 7200.0)
    sent = [d.model_copy(update={"status": DeliveryStatus.sent}) for d in deliveries]
    now = harness.clock.now() + timedelta(hours=1)
    for d in sent:
        await harness.store.update_delivery(d.id, status=DeliveryStatus.sent, sent_at=now)
    sent = await harness.store.list_deliveries(DeliveryFilter(run_id=run.id))
    await notifier.deliveries_unacked(
        schedule, run, sent, now=now + timedelta(hours=1), after_s=60
    )
    for state in ("SCAN_QR_CODE", "WORKING", "FAILED", "WORKING"):
        await notifier.session_changed(state, {"id": "4915199999999@c.us", "name": "Me"})
    # A wasched without admins: the hints to whoever is not its owner yet.
    access = Access(set(), harness.service.users)
    await access.prepare()
    harness.access, harness.dispatcher = access, build_dispatcher(access)
    for text in ("/start", "/start 1", "/help"):
        await harness.say(text, user=STRANGER)
    await notifier.outbox.drained()
    messages = harness.telegram.bot_messages(ADMIN) + harness.telegram.bot_messages(STRANGER)
    assert len(messages) >= 8
    shown = {m.text[:60]: markup_in(m) for m in messages if markup_in(m)}
    assert shown == {}


async def test_no_time_language_refusal_shows_markup_characters(harness: Harness) -> None:
    for text in (
        "/schedule +4915123456789 | blorp | hi",
        "/schedule +4915123456789 | every 0 minutes | hi",
        "/schedule +4915123456789 | cron 99 * * * * | hi",
        "/schedule +4915123456789 | yesterday 9:00 | hi",
    ):
        await harness.say(text)
    shown = {m.text[:60]: markup_in(m) for m in harness.telegram.bot_messages(ADMIN)}
    assert {text: found for text, found in shown.items() if found} == {}


# --- run cards and /logs ------------------------------------------------------------------------


async def fired(harness: Harness, text: str = "hi") -> tuple[Schedule, Run]:
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="every day at 9:00", text=text
    )
    run, _ = await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    return schedule, run


async def card_of(harness: Harness, schedule: Schedule, run: Run, contains: str) -> ChatMessage:
    since = harness.telegram.cursor()
    deliveries = await harness.store.list_deliveries(DeliveryFilter(run_id=run.id))
    await harness.notifier.run_updated(schedule, run, deliveries)
    return await harness.telegram.reply(ADMIN, contains, since=since, kinds=("send", "edit"))


async def test_a_catch_up_seconds_late_says_seconds(harness: Harness) -> None:
    schedule, run = await fired(harness)
    late = run.model_copy(update={"trigger": RunTrigger.catch_up, "late_by_s": 14.0})
    card = await card_of(harness, schedule, late, "sent late")
    assert "(14 s late, catch-up)" in card.text and "0 min" not in card.text


async def test_a_card_names_schedule_and_run_apart_and_its_times_zone(harness: Harness) -> None:
    await harness.ask("/tz New York", "now America/New_York")
    earlier, _ = await fired(harness)
    await harness.service.runs.run_now(
        earlier.owner_id, earlier.id
    )  # run ids apart from schedule ids
    schedule, run = await fired(harness)
    assert run.id != schedule.id
    card = await card_of(harness, schedule, run, "sent now on request")
    assert card.text.startswith(f"📨 Schedule #{schedule.id} · run {run.id} · ")
    # The card's times are in the schedule's zone, and it says which.
    assert "Times in America/New_York." in card.text
    assert "(in line since 28 Nov 05:00)" in card.text  # 10:00 UTC

    due = run.model_copy(update={"trigger": RunTrigger.schedule})
    card = await card_of(harness, schedule, due, "due")
    assert "due 28 Nov 05:00 (America/New_York)" in card.text


async def test_a_waiting_message_says_since_when_or_its_next_try_not_a_send_time(
    harness: Harness,
) -> None:
    schedule, run = await fired(harness)
    card = await card_of(harness, schedule, run, "waiting to be sent")
    assert "waiting to be sent (in line since 28 Nov 11:00)" in card.text
    [delivery] = await harness.store.list_deliveries(DeliveryFilter(run_id=run.id))
    retry_at = harness.clock.now() + timedelta(minutes=5)
    await harness.store.update_delivery(delivery.id, attempts=1, next_attempt_at=retry_at)
    card = await card_of(harness, schedule, run, "next try")
    assert "waiting to be sent (next try 28 Nov 11:05)" in card.text


async def test_logs_are_newest_first_by_the_time_they_show(harness: Harness) -> None:
    first, first_run = await fired(harness, "first")
    await harness.clock.advance(60)
    second, _ = await fired(harness, "second")
    # The older delivery changes last: it is read at 10:30 UTC, after the second was queued.
    await harness.clock.advance(29 * 60)
    [older] = await harness.store.list_deliveries(DeliveryFilter(run_id=first_run.id))
    await harness.store.update_delivery(
        older.id, status=DeliveryStatus.read, read_at=harness.clock.now()
    )
    logs = await harness.ask("/logs", "Latest deliveries")
    lines = logs.text.splitlines()[1:3]
    assert lines[0].startswith(f"#{first.id} ") and "read 28 Nov 11:30" in lines[0]
    assert lines[1].startswith(f"#{second.id} ") and "11:01" in lines[1]
