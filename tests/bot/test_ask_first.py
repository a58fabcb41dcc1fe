"""Ask me first, end to end: a schedule made with `| ask` asks its owner ASK_LEAD_S before
each run, through the fake Telegram; each answer's effect is counted at the fake sidecar,
and a second, late or foreign press does nothing more and says what happened."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

from core.domain.models import AskChoice, DeliveryFilter, DeliveryStatus
from core.domain.when import format_local
from tests.bot.conftest import ADMIN, OTHER_ADMIN, START
from tests.bot.core_world import ANNA, BEN, World, world
from tests.engine.conftest import eventually
from tests.fakes.telegram import ChatMessage

__all__ = ["world"]  # the fixture these tests use

SUNDAY_9 = START.replace(hour=9) + timedelta(days=1)  # the first occurrence
MONDAY_9 = SUNDAY_9 + timedelta(days=1)
ASKED = "Send it?"
# Real time the sender (its own loop) gets to send what it must not, before counting.
HOLD_S = 0.5


async def ask_first(world: World, option: str = "ask") -> None:
    """A daily 09:00 (UTC) schedule to two numbers, made with the one-line form and `option`."""
    saved = await world.say(f"/schedule {ANNA}, {BEN} | every day at 9:00 | Hi! | {option}", "#1")
    assert "asks 15 min before" in saved.text


async def export(world: World) -> list[dict[str, str]]:
    """The rows of /export's CSV file."""
    await world.say("/export", "deliver")
    document = world.telegram.bot_messages(ADMIN)[-1]
    assert document.file is not None
    return list(csv.DictReader(io.StringIO(document.file.data.decode("utf-8"))))


async def nothing_sent_yet(world: World) -> None:
    """Sunday's occurrence has no run and, after a hold, nothing reached the sidecar."""
    assert await world.core.store.find_run(1, SUNDAY_9) is None
    await asyncio.sleep(HOLD_S)
    assert world.sidecar.requests == 0
    assert await world.core.store.find_run(1, SUNDAY_9) is None


def questions(world: World) -> list[ChatMessage]:
    return [m for m in world.telegram.bot_messages(ADMIN) if ASKED in m.text]


async def asked(world: World) -> ChatMessage:
    """Move to 08:45 on Sunday (15 min before): the question comes."""
    await world.clock.advance((SUNDAY_9 - world.clock.now()).total_seconds() - 900)
    return await world.telegram.wait_for(lambda: next(iter(questions(world)), None), within=5)


async def due(world: World, minutes: float = 0) -> None:
    """Move to Sunday 09:00 (plus `minutes`) and let the engine handle what is due."""
    target = SUNDAY_9 + timedelta(minutes=minutes)
    await world.fire_at((target - world.clock.now()).total_seconds() / 3600)
    await world.notifier.outbox.drained()


async def test_the_question_comes_at_the_lead_with_message_recipients_and_time(
    world: World,
) -> None:
    await ask_first(world)
    await world.clock.advance((SUNDAY_9 - START).total_seconds() - 960)  # 08:44
    await world.notifier.outbox.drained()
    assert questions(world) == []
    question = await asked(world)
    assert f"#1 is due {format_local(SUNDAY_9, 'UTC')}" in question.text
    assert "Without an answer by then, it goes out." in question.text
    assert question.text.count("“Hi!”") == 2
    assert ANNA in question.text and BEN in question.text
    labels = [b["text"] for b in question.buttons()]
    assert labels == [
        "Send now",
        "Send at the time",
        "Snooze 15 min",
        "Snooze 1 h",
        "Skip this one",
        "Edit",
    ]  # tomorrow would pass Monday's run
    await world.clock.advance(300)
    await world.core.asker.pass_once()
    await world.notifier.outbox.drained()
    assert len(questions(world)) == 1  # asked once
    assert world.sidecar.requests == 0


async def test_send_now_sends_at_once_and_never_again_at_the_time(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    answer = await world.press(question, question.button("Send now")["callback_data"])
    assert answer.startswith("You chose Send now")
    await world.sent_to_each(1)
    assert "You chose Send now" in question.text and question.buttons() == []
    await due(world)
    await due(world, 30)
    assert world.sidecar.requests == 2
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert schedule.next_run_at == MONDAY_9
    [run] = await world.core.store.list_runs(schedule_id=1)
    assert run.scheduled_for == SUNDAY_9


async def test_send_at_the_time_waits_for_the_time(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    await world.press(question, question.button("Send at the time")["callback_data"])
    await world.notifier.outbox.drained()
    await world.clock.advance(14 * 60)  # 08:59
    await world.core.engine.tick()
    await nothing_sent_yet(world)
    await due(world)
    await world.sent_to_each(1)
    assert world.sidecar.requests == 2
    assert not [m for m in world.telegram.bot_messages(ADMIN) if "nobody answered" in m.text]


async def test_snooze_sends_at_the_snoozed_time_without_asking_again(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    answer = await world.press(question, question.button("Snooze 15 min")["callback_data"])
    assert f"goes out {format_local(SUNDAY_9 + timedelta(minutes=15), 'UTC')}" in answer
    await due(world)
    await nothing_sent_yet(world)
    await world.clock.advance(60)  # 09:01
    await world.core.asker.pass_once()
    await nothing_sent_yet(world)
    await world.clock.advance(13 * 60)  # 09:14
    await world.core.asker.pass_once()
    await world.notifier.outbox.drained()
    await nothing_sent_yet(world)
    await world.clock.advance(60)  # 09:15
    await world.sent_to_each(1)
    await due(world, 40)
    assert world.sidecar.requests == 2
    assert len(questions(world)) == 1


async def test_skip_this_one_skips_it_and_the_logs_say_who_chose(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    await world.press(question, question.button("Skip this one")["callback_data"])
    await due(world, 5)
    assert world.sidecar.requests == 0
    deliveries = await world.core.store.list_deliveries(DeliveryFilter(schedule_id=1))
    assert [d.status for d in deliveries] == [DeliveryStatus.skipped] * 2
    ask = await world.core.store.find_ask(1, SUNDAY_9)
    assert ask is not None and ask.choice is AskChoice.skip and ask.chosen_by == ADMIN
    assert ask.run_id == deliveries[0].run_id
    logs = await world.say("/logs", "Latest deliveries")
    assert logs.text.count("(Skip, chosen by you at 29 Nov 08:45)") == 2
    assert str(ADMIN) not in logs.text
    rows = await export(world)
    assert [(r["status"], r["choice"], r["chosen by"]) for r in rows] == [
        ("skipped", "skip", str(ADMIN))
    ] * 2
    assert rows[0]["chosen at"].startswith("2026-11-29T08:45:00")


async def test_a_second_press_and_a_late_press_do_nothing_more(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    data = question.button("Skip this one")["callback_data"]
    send_now = question.button("Send now")["callback_data"]
    first = await world.press(question, data)
    again = await world.press(question, send_now)  # the old buttons, pressed again
    at = format_local(SUNDAY_9 - timedelta(minutes=15), "UTC")
    assert (
        first
        == again
        == f"You chose Skip at {at}: #1 does not go out " + format_local(SUNDAY_9, "UTC") + "."
    )
    assert len(await world.core.store.list_runs(schedule_id=1)) == 1
    await due(world, 1)
    assert world.sidecar.requests == 0


async def test_no_answer_sends_by_default_and_says_so(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    await due(world)
    await world.sent_to_each(1)
    told = await world.telegram.reply(ADMIN, "nobody answered", within=5)
    assert told.text.startswith("📤 #1 went out")
    late = await world.press(question, question.button("Skip this one")["callback_data"])
    assert late == f"Already sent at {format_local(SUNDAY_9, 'UTC')}: nobody answered."
    assert world.sidecar.requests == 2
    ask = await world.core.store.find_ask(1, SUNDAY_9)
    assert ask is not None and ask.choice is AskChoice.no_answer_sent and ask.chosen_by is None
    logs = await world.say("/logs", "Latest deliveries")
    assert logs.text.count("(nobody answered: sent)") == 2
    rows = await export(world)
    assert [(r["choice"], r["chosen by"]) for r in rows] == [("no_answer_sent", "")] * 2


async def test_no_answer_skips_when_the_schedule_says_so(world: World) -> None:
    await ask_first(world, "ask, skip if no answer")
    await asked(world)
    await due(world, 2)
    told = await world.telegram.reply(ADMIN, "nobody answered", within=5)
    assert told.text.startswith("⏭ #1 was skipped")
    assert world.sidecar.requests == 0
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert schedule.next_run_at == MONDAY_9


async def test_someone_else_cannot_answer(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    answer = await world.press(
        question, question.button("Send now")["callback_data"], user=OTHER_ADMIN
    )
    assert "only its owner answers this" in answer
    await world.notifier.outbox.drained()
    assert world.sidecar.requests == 0
    ask = await world.core.store.find_ask(1, SUNDAY_9)
    assert ask is not None and ask.choice is None


async def test_edit_opens_the_edit_menu(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    since = world.telegram.cursor()
    await world.press(question, question.button("Edit")["callback_data"])
    menu = await world.telegram.reply(ADMIN, "What should change in #1?", since=since)
    assert [b["text"] for b in menu.buttons()][:3] == ["Text", "When", "Recipients"]


async def test_the_wizard_and_edit_turn_asking_first_on_and_off(world: World) -> None:
    await world.say("/schedule", "Who gets it")
    await world.say(ANNA, "What should it say")
    await world.say("Hi!", "When?")
    preview = await world.say("every day at 9:00", "Preview")
    toggle = preview.button("Ask me first: off")["callback_data"]
    assert await world.press(preview, toggle) == "❓ Ask me first: on, send if no answer"
    assert preview.button("Ask me first: on, send if no answer")
    saved = await world.press(preview, preview.button("Save")["callback_data"])
    assert saved == "Saved #1"
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert schedule.ask_first and schedule.ask_lead_s == 900
    assert "asks 15 min before (sends if no answer)" in world.telegram.bot_messages(ADMIN)[-1].text

    menu = await world.say("/edit 1", "What should change in #1?")
    ask = menu.button("Ask me first")["callback_data"]
    assert await world.press(menu, ask) == "#1 now asks 15 min before (skips if no answer)."
    assert await world.press(menu, ask) == "#1 no longer asks before each run."
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert not schedule.ask_first
    await asked_not(world)


async def asked_not(world: World) -> None:
    """With asking off, 08:45 brings no question and 09:00 sends."""
    await world.clock.advance((SUNDAY_9 - world.clock.now()).total_seconds() - 900)
    await due(world)
    await eventually(lambda: world.sidecar.requests == 1, what="the one message sent")
    assert questions(world) == []


async def test_an_answer_after_a_pause_does_nothing_and_says_why(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    await world.say("/pause 1", "Paused")
    answer = await world.press(question, question.button("Send now")["callback_data"])
    assert answer.startswith(f"#1 no longer runs {format_local(SUNDAY_9, 'UTC')}")
    await due(world, 5)
    assert world.sidecar.requests == 0
    ask = await world.core.store.find_ask(1, SUNDAY_9)
    assert ask is not None and ask.choice is None


async def test_a_snoozed_occurrence_of_a_schedule_paused_since_is_not_sent(world: World) -> None:
    await ask_first(world)
    question = await asked(world)
    await world.press(question, question.button("Snooze 15 min")["callback_data"])
    await due(world)
    await world.say("/pause 1", "Paused")
    await world.clock.advance(16 * 60)  # 09:16: the snooze is over
    await world.core.asker.pass_once()
    await world.notifier.outbox.drained()
    await world.say("/resume 1", "Resumed")
    await world.core.asker.pass_once()
    await world.notifier.outbox.drained()
    assert world.sidecar.requests == 0
    ask = await world.core.store.find_ask(1, SUNDAY_9)
    assert ask is not None and ask.run_id == 0


async def test_help_names_skip_next_ask_me_first_and_how_a_schedule_ends(world: World) -> None:
    help_text = (await world.say("/help", "/schedule")).text
    assert "Skip next" in help_text and "Ask me first" in help_text
    assert "| ask" in help_text and "5 times" in help_text and "until 31.12" in help_text
