"""Ask me first, end to end: a schedule made with `| ask` asks its owner ASK_LEAD_S before
each run, through the fake Telegram; each answer's effect is counted at the fake sidecar,
and a second, late or foreign press does nothing more and says what happened."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from datetime import timedelta

import pytest
from aiogram import Bot
from aiogram.utils.backoff import BackoffConfig

from bot.notifier import TelegramNotifier
from core.adapters.store import Store
from core.delivery.asker import RETRY_S, TELL_GRACE_S, Asker, Question
from core.delivery.notifier import Told
from core.domain.clock import FakeClock
from core.domain.models import (
    AskChoice,
    DeliveryFilter,
    DeliveryStatus,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
)
from core.domain.when import format_local
from tests.bot.conftest import ADMIN, OTHER_ADMIN, START
from tests.bot.core_world import ANNA, BEN, World, world
from tests.engine.conftest import RecordingNotifier, eventually
from tests.fakes.telegram import ChatMessage, FakeTelegram

__all__ = ["world"]  # the fixture these tests use

SUNDAY_9 = START.replace(hour=9) + timedelta(days=1)  # the first occurrence
MONDAY_9 = SUNDAY_9 + timedelta(days=1)
ASKED = "Send it?"
# The outbox's retries while Telegram is down, fast for the tests.
FAST = BackoffConfig(min_delay=0.02, max_delay=0.1, factor=1.5, jitter=0)
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


def done_notices(world: World) -> list[ChatMessage]:
    return [m for m in world.telegram.bot_messages(ADMIN) if "is done" in m.text]


async def test_send_now_on_the_last_occurrence_says_the_schedule_is_done_once(
    world: World,
) -> None:
    saved = await world.say(f"/schedule {ANNA}, {BEN} | every day at 9:00 1 times | Hi! | ask")
    assert "#1" in saved.text
    question = await asked(world)
    await world.press(question, question.button("Send now")["callback_data"])
    await world.sent_to_each(1)
    done = await world.telegram.wait_for(lambda: next(iter(done_notices(world)), None), within=5)
    assert "Schedule #1 is done" in done.text and "1 occurrence went out" in done.text
    await due(world, 30)
    assert len(done_notices(world)) == 1
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert schedule.state.value == "done"
    assert world.sidecar.requests == 2


async def test_no_answer_skipping_the_last_occurrence_says_the_schedule_is_done_once(
    world: World,
) -> None:
    await world.say(
        f"/schedule {ANNA} | every day at 9:00 1 times | Hi! | ask, skip if no answer", "#1"
    )
    await asked(world)
    await due(world, 2)
    await world.telegram.reply(ADMIN, "nobody answered", within=5)
    done = await world.telegram.wait_for(lambda: next(iter(done_notices(world)), None), within=5)
    assert "0 occurrences went out" in done.text
    await due(world, 30)
    assert len(done_notices(world)) == 1
    assert world.sidecar.requests == 0


async def numbers_saved_unlinked(world: World) -> None:
    """The schedule is saved while WhatsApp is unlinked (its numbers unchecked), BEN has no
    WhatsApp account, and WhatsApp is linked again before the question."""
    world.sidecar.not_on_whatsapp = {BEN}
    await world.sidecar.set_state("SCAN_QR_CODE")
    saved = await world.say(f"/schedule {ANNA}, {BEN} | every day at 9:00 | Hi! | ask", "#1")
    assert "checked before the first send" in saved.text
    await world.sidecar.set_state("WORKING")


async def checked_before_sending(world: World) -> None:
    """ANNA's message goes out; BEN's fails `not_on_whatsapp` with no send request for it."""
    await eventually(lambda: len(world.sidecar.outbox) >= 1, what="ANNA's send accepted")

    async def failed() -> bool:
        found = await world.core.store.list_deliveries(DeliveryFilter(schedule_id=1))
        return any(d.error_code == "not_on_whatsapp" for d in found)

    await eventually(failed, what="BEN's delivery failed")
    deliveries = await world.core.store.list_deliveries(DeliveryFilter(schedule_id=1))
    by_number = {d.recipient: d for d in deliveries}
    assert by_number[BEN].status is DeliveryStatus.failed
    assert by_number[BEN].error_code == "not_on_whatsapp"
    assert by_number[ANNA].status is not DeliveryStatus.failed
    await world.notifier.outbox.drained()
    assert [r.to for r in world.sidecar.outbox] == [ANNA]
    assert world.sidecar.requests == 1


async def test_send_now_checks_the_numbers_with_whatsapp_first(world: World) -> None:
    await numbers_saved_unlinked(world)
    question = await asked(world)
    await world.press(question, question.button("Send now")["callback_data"])
    await checked_before_sending(world)


async def test_a_snoozed_run_checks_the_numbers_with_whatsapp_first(world: World) -> None:
    await numbers_saved_unlinked(world)
    question = await asked(world)
    await world.press(question, question.button("Snooze 15 min")["callback_data"])
    await due(world, 15)
    await checked_before_sending(world)


async def test_a_question_is_told_when_telegram_takes_it_even_across_a_crash(
    telegram: FakeTelegram, app_bot: Bot, store: Store, clock: FakeClock
) -> None:
    due = clock.now() + timedelta(minutes=10)
    schedule = await store.add_schedule(
        owner_id=ADMIN,
        recipients=[Recipient(kind=RecipientKind.phone, address=ANNA)],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=due),
        next_run_at=due,
        text="Hi!",
    )
    await store.set_ask_first(schedule.id, ask_first=True, ask_lead_s=900)
    telegram.fail_every(502, method="sendMessage")  # Telegram is down

    # A process asks; the question waits in its outbox for Telegram; the process crashes.
    first = TelegramNotifier(app_bot, admin_ids={ADMIN}, pace_s=0)
    first.outbox.backoff = FAST
    async with first.outbox.running(drain_s=0):
        await Asker(store, clock, first, lead_s=900).pass_once()
        await eventually(lambda: telegram.calls_of("sendMessage"), what="a try to ask")
    [ask] = await store.open_asks()
    assert not ask.told  # only queued: not told

    # Started again, after the grace: it tells the question once, though Telegram still
    # refuses it for a while (the next passes do not queue it again).
    second = TelegramNotifier(app_bot, admin_ids={ADMIN}, pace_s=0)
    second.outbox.backoff = FAST
    async with second.outbox.running():
        asker = Asker(store, clock, second, lead_s=900)
        await clock.advance(TELL_GRACE_S + 1)
        for _ in range(3):
            await asker.pass_once()
            await clock.advance(TELL_GRACE_S + 1)
        assert len(tuple(second.outbox.pending(ADMIN))) == 1
        again = await store.get_ask(ask.id)
        assert again is not None and not again.told
        telegram.answer_again()
        await second.outbox.drained()
        told = await store.get_ask(ask.id)
        assert told is not None and told.told
        await asker.pass_once()
        await second.outbox.drained()
    assert len([m for m in telegram.bot_messages(ADMIN) if ASKED in m.text]) == 1


async def test_an_occurrence_never_asked_about_follows_the_policy_and_says_so(
    world: World,
) -> None:
    await world.core.asker.stop()  # the asker fails through the time to ask
    await ask_first(world, "ask, skip if no answer")
    await due(world, 2)
    told = await world.telegram.reply(ADMIN, "nobody answered", within=5)
    assert told.text.startswith("⏭ #1 was skipped")
    assert questions(world) == []
    assert world.sidecar.requests == 0
    ask = await world.core.store.find_ask(1, SUNDAY_9)
    assert ask is not None and ask.choice is AskChoice.no_answer_skipped and ask.told
    deliveries = await world.core.store.list_deliveries(DeliveryFilter(schedule_id=1))
    assert [d.status for d in deliveries] == [DeliveryStatus.skipped] * 2
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert schedule.next_run_at == MONDAY_9


async def test_a_question_after_skip_next_on_its_occurrence_says_it_was_skipped(
    world: World,
) -> None:
    await ask_first(world)
    question = await asked(world)
    await world.notifier.outbox.drained()
    card = await world.say("/list", "next:")
    skipped = await world.press(card, str(card.button("Skip next")["callback_data"]))
    assert skipped.startswith("Skipped"), skipped
    sunday = format_local(SUNDAY_9, "UTC")
    said = f"Nothing to answer: {sunday} was skipped already. /list shows what comes next."
    assert await world.press(question, question.button("Send now")["callback_data"]) == said
    await due(world, 5)  # and after its due time
    assert (
        await world.press(question, question.button("Send at the time")["callback_data"]) == said
    )
    assert world.sidecar.requests == 0
    [run] = await world.core.store.list_runs(schedule_id=1)
    assert run.outcome == "skipped"


class FailingFor(RecordingNotifier):
    """Records questions; asking about schedule `broken` fails (a bug in one question)."""

    def __init__(self, broken: int) -> None:
        super().__init__()
        self.broken = broken

    async def ask_before_run(self, question: Question, told: Told) -> None:
        if question.schedule.id == self.broken:
            raise RuntimeError("cannot ask")
        await super().ask_before_run(question, told)


async def test_one_schedule_failing_to_ask_does_not_stop_the_others(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    due = clock.now() + timedelta(minutes=10)
    for owner in (ADMIN, OTHER_ADMIN):
        schedule = await store.add_schedule(
            owner_id=owner,
            recipients=[Recipient(kind=RecipientKind.phone, address=ANNA)],
            rule=Rule(kind=RuleKind.once, timezone="UTC", at=due),
            next_run_at=due,
            text="Hi!",
        )
        await store.set_ask_first(schedule.id, ask_first=True, ask_lead_s=900)
    notifier = FailingFor(broken=1)
    asker = Asker(store, clock, notifier, lead_s=900)
    with caplog.at_level(logging.ERROR, logger="core.delivery.asker"):
        for _ in range(3):
            wait = await asker.pass_once()  # does not raise
            assert wait <= RETRY_S
    assert [q.schedule.id for q in notifier.questions] == [2]
    told = {ask.schedule_id: ask.told for ask in await store.open_asks()}
    assert told == {1: False}  # #2's question was told; #1's is tried again
    assert len([r for r in caplog.records if "schedule 1 failed" in r.getMessage()]) == 1


async def test_help_names_skip_next_ask_me_first_and_how_a_schedule_ends(world: World) -> None:
    help_text = (await world.say("/help", "/schedule")).text
    assert "Skip next" in help_text and "Ask me first" in help_text
    assert "| ask" in help_text and "5 times" in help_text and "until 31.12" in help_text


async def test_a_schedule_asks_as_long_before_as_its_one_line_form_says(world: World) -> None:
    saved = await world.say(
        f"/schedule {ANNA} | every day at 9:00 | Hi! | ask 30 min before, skip if no answer",
        "#1",
    )
    assert "asks 30 min before (skips if no answer)" in saved.text
    await world.clock.advance((SUNDAY_9 - START).total_seconds() - 31 * 60)  # 08:29
    await world.core.asker.pass_once()
    await world.notifier.outbox.drained()
    assert questions(world) == []
    await world.clock.advance(60)  # 08:30
    question = await world.telegram.wait_for(lambda: next(iter(questions(world)), None), within=5)
    assert "Without an answer by then, it is skipped." in question.text
    schedule = await world.core.services.schedules.get_schedule(ADMIN, 1)
    assert schedule.ask_lead_s == 1800 and schedule.ask_first


async def test_a_lead_out_of_range_is_refused_with_what_to_type(world: World) -> None:
    answer = await world.say(f"/schedule {ANNA} | every day at 9:00 | Hi! | ask 0 min before")
    assert "from 1 minute to 7 days" in answer.text and "| ask 30 min before" in answer.text
    assert await world.core.store.list_schedules() == []


async def test_an_ask_option_not_understood_is_refused_not_sent_as_text(world: World) -> None:
    answer = await world.say(f"/schedule {ANNA} | every day at 9:00 | Hi! | ask tomorrow")
    assert "ask option was not understood" in answer.text and "| ask 30 min before" in answer.text
    assert await world.core.store.list_schedules() == []
