"""/list and its buttons, and the typed actions on one schedule."""

from __future__ import annotations

from core.domain.models import DeliveryStatus, ScheduleState
from tests.bot.conftest import ADMIN, Harness


async def make(harness: Harness, count: int = 1, when: str = "every day at 9:00") -> list[int]:
    ids = []
    for number in range(count):
        schedule = await harness.service.schedules.create_schedule(
            ADMIN, recipients="+4915123456789", when=when, text=f"message {number}"
        )
        ids.append(schedule.id)
    return ids


async def test_list_shows_id_recipients_rule_next_run_and_state(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    listing = await harness.ask("/list", "Your schedules")
    assert f"#{schedule_id}" in listing.text
    assert "+4915123456789" in listing.text
    assert "active" in listing.text and "next:" in listing.text
    assert "09:00" in listing.text
    labels = [b["text"] for b in listing.buttons()]
    assert labels == [f"▶ Run #{schedule_id}", "Pause", "Edit", "Delete", "⏭ Skip next"]


async def test_empty_list_says_how_to_start(harness: Harness) -> None:
    assert await harness.ask("/list", "/schedule")


async def test_long_list_paginates(harness: Harness) -> None:
    ids = await make(harness, 7)
    listing = await harness.ask("/list", "page 1 of 2")
    assert f"#{ids[4]}" in listing.text and f"#{ids[5]}" not in listing.text
    await harness.press(listing, "Next ›")
    assert "page 2 of 2" in listing.text and f"#{ids[6]}" in listing.text
    await harness.press(listing, "Previous")
    assert "page 1 of 2" in listing.text


async def test_pause_and_resume_buttons_change_the_state_and_the_list(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    listing = await harness.ask("/list", "Your schedules")
    query = await harness.press(listing, "Pause")
    assert "Paused" in (await harness.telegram.answer(query))["text"]
    assert (
        await harness.service.schedules.get_schedule(ADMIN, schedule_id)
    ).state is ScheduleState.paused
    assert "paused" in listing.text and listing.button("Resume")
    await harness.press(listing, "Resume")
    assert (
        await harness.service.schedules.get_schedule(ADMIN, schedule_id)
    ).state is ScheduleState.active
    assert listing.button("Pause")


async def test_delete_button_asks_first_then_deletes(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    listing = await harness.ask("/list", "Your schedules")
    since = harness.telegram.cursor()
    await harness.press(listing, "Delete")
    confirm = await harness.telegram.reply(ADMIN, "Delete this schedule?", since=since)
    assert await harness.service.schedules.get_schedule(ADMIN, schedule_id)
    await harness.press(confirm, "No")
    assert "Kept" in confirm.text
    again = await harness.ask(f"/delete {schedule_id}", "Delete this schedule?")
    await harness.press(again, "Yes")
    assert "Deleted" in again.text
    assert await harness.service.schedules.list_schedules() == []
    # Replaying the old confirmation is refused, not crashed.
    query = await harness.press_data(again, f"s:delok:{schedule_id}")
    assert "no schedule" in (await harness.telegram.answer(query))["text"]


async def test_run_now_button_sends_at_once_and_says_so(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    listing = await harness.ask("/list", "Your schedules")
    query = await harness.press(listing, "Run")
    answer = await harness.telegram.answer(query)
    assert f"Sending #{schedule_id} now to 1 recipient" in answer["text"]
    deliveries = await harness.service.logs.logs(None, schedule_id=schedule_id)
    assert [d.status for d in deliveries] == [DeliveryStatus.queued]


async def test_typed_runnow_pause_resume_preview(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    await harness.ask(f"/runnow {schedule_id}", f"Sending #{schedule_id} now")
    await harness.ask(f"/pause #{schedule_id}", "Paused")
    await harness.ask(f"/resume {schedule_id}", "Resumed")
    preview = await harness.ask(f"/preview {schedule_id}", f"#{schedule_id}")
    assert preview.text.count("09:00") >= 3 and "message 0" in preview.text


async def test_resume_after_the_time_passed_makes_the_schedule_done_and_says_so(
    harness: Harness,
) -> None:
    [typed, pressed] = await make(harness, count=2, when="in 10 minutes")
    for schedule_id in (typed, pressed):
        await harness.ask(f"/pause {schedule_id}", "Paused")
    await harness.clock.advance(20 * 60)
    reply = await harness.ask(f"/resume {typed}", "done now")
    assert f"The time of #{typed} passed while it was paused" in reply.text
    assert f"/runnow {typed}" in reply.text
    listing = await harness.ask("/list", "Your schedules")
    query = await harness.press(listing, "Resume")
    answer = await harness.telegram.answer(query)
    assert f"#{pressed} passed while it was paused, so it is done now" in answer["text"]
    for schedule_id in (typed, pressed):
        schedule = await harness.service.schedules.get_schedule(ADMIN, schedule_id)
        assert schedule.state is ScheduleState.done


async def test_typed_actions_without_an_id_say_how(harness: Harness) -> None:
    for command in ("/runnow", "/pause x", "/delete", "/preview", "/edit"):
        reply = await harness.ask(command, "Tell me which schedule")
        assert command.split()[0] in reply.text


async def test_unknown_id_is_a_clear_sentence(harness: Harness) -> None:
    reply = await harness.ask("/pause 99", "no schedule #99")
    assert "/list" in reply.text


async def test_resume_of_a_sent_one_time_schedule_explains_what_to_do(harness: Harness) -> None:
    [schedule_id] = await make(harness, when="in 2 hours")
    await harness.store.update_schedule(schedule_id, state=ScheduleState.done)
    reply = await harness.ask(f"/resume {schedule_id}", "one-time")
    assert f"/runnow {schedule_id}" in reply.text


async def test_edit_by_buttons_changes_the_time(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    choices = await harness.ask(f"/edit {schedule_id}", "What should change")
    since = harness.telegram.cursor()
    await harness.press(choices, "When")
    await harness.telegram.reply(ADMIN, "new time", since=since)
    bad = await harness.ask("whenever")
    assert "whenever" in bad.text and "tomorrow 9:00" in bad.text
    changed = await harness.ask("every day at 7:15", "Changed")
    assert "07:15" in changed.text
    rule = (await harness.service.schedules.get_schedule(ADMIN, schedule_id)).rule
    assert rule.cron is not None and rule.cron.startswith("15 7")


async def test_edit_from_the_list_and_one_shot_edit(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    listing = await harness.ask("/list", "Your schedules")
    since = harness.telegram.cursor()
    await harness.press(listing, "Edit")
    choices = await harness.telegram.reply(ADMIN, "What should change", since=since)
    await harness.press(choices, "Text")
    await harness.ask("Brand new text", "Changed")
    assert (
        await harness.service.schedules.get_schedule(ADMIN, schedule_id)
    ).text == "Brand new text"
    await harness.ask(f"/edit {schedule_id} recipients +4930123456", "Changed")
    schedule = await harness.service.schedules.get_schedule(ADMIN, schedule_id)
    assert [r.address for r in schedule.recipients] == ["+4930123456"]


async def test_a_button_pressed_twice_is_quietly_answered(harness: Harness) -> None:
    [schedule_id] = await make(harness)
    confirm = await harness.ask(f"/delete {schedule_id}", "Delete this schedule?")
    old_data = confirm.button("No")["callback_data"]
    await harness.press(confirm, "No")
    sent = len(harness.telegram.bot_messages(ADMIN))
    query = await harness.press_data(confirm, str(old_data))
    assert (await harness.telegram.answer(query))["text"] == "Kept."
    assert len(harness.telegram.bot_messages(ADMIN)) == sent  # no error said in the chat
    assert confirm.text == f"Kept #{schedule_id}."
    listing = await harness.ask("/list", "Your schedules")
    pause = str(listing.button("Pause")["callback_data"])
    await harness.press_data(listing, pause)
    sent = len(harness.telegram.bot_messages(ADMIN))
    query = await harness.press_data(listing, pause)  # stale button: already paused
    assert (await harness.telegram.answer(query))["text"] == f"Paused #{schedule_id}."
    assert len(harness.telegram.bot_messages(ADMIN)) == sent
    assert (
        await harness.service.schedules.get_schedule(ADMIN, schedule_id)
    ).state is ScheduleState.paused
