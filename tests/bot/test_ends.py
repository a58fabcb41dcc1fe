"""Schedules that end, as a person meets them: typed with an end in the one-line form, the
wizard and Edit; the card says what is left; the owner hears once that it is done.

The done notice runs core as `wasched run` builds it (open_core, the Telegram notifier, the
dispatcher, the fake sidecar over HTTP) on a fake clock (tests/bot/test_ack_alert.py's world).
"""

from __future__ import annotations

import pytest

from core.domain.models import ScheduleState
from tests.bot.conftest import ADMIN, Harness
from tests.bot.test_ack_alert import World, send_gap_s, world  # noqa: F401
from tests.engine.conftest import eventually

NUMBER = "+4915123456789"
DONE = "is done"


@pytest.fixture
def ack_after_s() -> int:
    return 0  # no alert about acks: the sidecar here acks "sent" only


async def test_one_line_two_times_shows_what_is_left_fires_twice_and_tells_done_once(
    world: World,  # noqa: F811
) -> None:
    since = world.telegram.cursor()
    await world.telegram.send(ADMIN, f"/schedule {NUMBER} | every 1 hour 2 times | Hi!")
    await world.flush()
    saved = await world.telegram.reply(ADMIN, "Saved", since=since, within=5)
    assert "2 of 2 left" in saved.text
    [schedule] = await world.core.services.schedules.list_schedules(ADMIN)

    for hour in range(1, 5):  # twice as long as it runs
        await world.clock.advance(3600)
        await world.core.engine.tick()
        await eventually(lambda: len(world.sidecar.outbox) == min(hour, 2), what="sends")  # noqa: B023
        if hour == 1:
            since = world.telegram.cursor()
            await world.telegram.send(ADMIN, "/list")
            await world.flush()
            card = await world.telegram.reply(ADMIN, "Your schedules", since=since, within=5)
            assert "1 of 2 left" in card.text
    await world.notifier.outbox.drained()

    done = [m for m in world.telegram.bot_messages(ADMIN) if DONE in m.text]
    assert len(done) == 1
    assert f"Schedule #{schedule.id} is done" in done[0].text
    assert "2 occurrences went out" in done[0].text
    assert "every hour" in done[0].text and "2 times" in done[0].text
    buttons = [b["text"] for b in done[0].buttons()]
    assert "Delete" in buttons and "Pause" not in buttons and "Resume" not in buttons
    after = await world.core.store.get_schedule(schedule.id)
    assert after is not None and after.state is ScheduleState.done
    assert len(world.sidecar.outbox) == 2

    since = world.telegram.cursor()
    await world.telegram.send(ADMIN, "/list")
    await world.flush()
    card = await world.telegram.reply(ADMIN, "Your schedules", since=since, within=5)
    assert "done" in card.text and "ended (2 times)" in card.text


async def test_one_line_until_shows_the_end_on_the_card(harness: Harness) -> None:
    reply = await harness.ask(f"/schedule {NUMBER} | every day at 9:00 until 31.12 | Hi", "Saved")
    # 28 Nov 2026 10:00 UTC: the first is 29 Nov 09:00 Berlin, the last 31 Dec.
    assert "until Thu 31 Dec · 33 left" in reply.text
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.rule.ends_at is not None


async def test_a_far_until_says_more_than_so_many_left_on_the_card(harness: Harness) -> None:
    when = "every weekday at 9:00 until 31.12.2030"
    reply = await harness.ask(f"/schedule {NUMBER} | {when} | Hi", "Saved")
    assert "until Tue 31 Dec 2030 · more than 100 left" in reply.text


async def test_one_line_with_an_impossible_end_says_what_to_type_and_saves_nothing(
    harness: Harness,
) -> None:
    reply = await harness.ask(f"/schedule {NUMBER} | tomorrow 9:00 5 times | Hi")
    assert "is one time, so it cannot end '5 times'" in reply.text
    assert "every day at 9:00 5 times" in reply.text
    reply = await harness.ask(f"/schedule {NUMBER} | every day at 9:00 0 times | Hi")
    assert "at least 1" in reply.text
    reply = await harness.ask(f"/schedule {NUMBER} | every day at 9:00 until 1.11.2026 | Hi")
    assert "it would end before its first time" in reply.text
    assert await harness.service.schedules.list_schedules() == []


async def test_wizard_when_step_takes_an_end_and_shows_one_in_its_examples(
    harness: Harness,
) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask(NUMBER, "What should it say")
    step3 = await harness.ask("Hello", "When?")
    assert "every day at 9:00 5 times" in step3.text
    refusal = await harness.ask("every day at 9:00 1001 times")
    assert "at most 1000" in refusal.text
    preview = await harness.ask("every friday at 17:00 for 4 weeks", "Preview")
    # Saturday 28 Nov: the first is Fri 4 Dec, the fourth Fri 25 Dec.
    assert "ends before Fri 1 Jan 2027 17:00" in preview.text
    assert "Fri 4 Dec 2026 17:00" in preview.text
    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.rule.ends_at is not None and schedule.rule.times is None


async def test_edit_of_the_time_says_what_happened_to_the_end(harness: Harness) -> None:
    await harness.ask(f"/schedule {NUMBER} | every day at 9:00 5 times | Hi", "Saved")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    # A new time with an end: the card shows it.
    reply = await harness.ask(f"/edit {schedule.id} when every day at 10:00 3 times", "Changed")
    assert "3 of 3 left" in reply.text
    # A new time without one: the end is gone, and the reply says how to keep it.
    reply = await harness.ask(f"/edit {schedule.id} when every day at 11:00", "Changed")
    assert "the old one (3 times) is gone" in reply.text
    assert f"/edit {schedule.id} when every day at 11:00 3 times" in reply.text
    [edited] = await harness.service.schedules.list_schedules(ADMIN)
    assert edited.rule.ends_at is None
    # Through the Edit button and the typed answer, the same.
    reply = await harness.ask(f"/edit {schedule.id} when every day at 9:00 until 24.12", "Changed")
    assert "until Thu 24 Dec" in reply.text
    card = await harness.ask(f"/edit {schedule.id}", "What should change")
    await harness.press(card, "When")
    reply = await harness.ask("every day at 8:00", "Changed")
    assert "the old one (until Thu 24 Dec 2026) is gone" in reply.text
    assert "every day at 8:00 until 24.12.2026" in reply.text
    # A `for` end ends before an instant: the way back names that instant.
    await harness.ask(f"/edit {schedule.id} when every day at 9:00 for 2 weeks", "Changed")
    reply = await harness.ask(f"/edit {schedule.id} when every day at 8:00", "Changed")
    assert "the old one (ends before Sun 13 Dec 2026 09:00) is gone" in reply.text
    back = "every day at 8:00 until 13.12.2026 08:59"
    assert back in reply.text
    reply = await harness.ask(f"/edit {schedule.id} when {back}", "Changed")
    assert "until Sun 13 Dec 08:59" in reply.text
