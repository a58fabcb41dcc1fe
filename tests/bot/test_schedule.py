"""Creating schedules: the wizard step by step, and the one-shot form."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiogram.fsm.storage.base import StorageKey

from core.domain.models import RuleKind
from tests.bot.conftest import ADMIN, Harness


async def test_one_shot_form_saves_a_schedule_and_shows_it(harness: Harness) -> None:
    reply = await harness.ask(
        "/schedule +49 151 23456789 | tomorrow 9:00 | Hello <there> & you", "Saved"
    )
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert f"#{schedule.id}" in reply.text
    assert "+4915123456789" in reply.text
    assert "Hello <there> & you" in reply.text  # escaped for Telegram, shown as typed
    assert schedule.text == "Hello <there> & you"
    assert schedule.rule.kind is RuleKind.once


async def test_one_shot_with_a_bad_time_says_what_works_and_saves_nothing(
    harness: Harness,
) -> None:
    reply = await harness.ask("/schedule +4915123456789 | yesterday-ish | hi")
    assert "yesterday" in reply.text and "tomorrow 9:00" in reply.text  # the word, and examples
    assert await harness.service.schedules.list_schedules() == []


async def test_one_shot_with_missing_parts_shows_the_form(harness: Harness) -> None:
    reply = await harness.ask("/schedule +4915123456789 tomorrow hi")
    assert "|" in reply.text and "/schedule" in reply.text
    assert await harness.service.schedules.list_schedules() == []


async def test_one_shot_with_a_bad_number_names_the_problem(harness: Harness) -> None:
    reply = await harness.ask("/schedule 12 | tomorrow 9:00 | hi")
    assert "12" in reply.text
    assert await harness.service.schedules.list_schedules() == []


async def test_wizard_with_contact_buttons_example_time_preview_and_save(
    harness: Harness,
) -> None:
    await harness.service.contacts.add_contact("Anna", "+4915123456789")
    await harness.service.contacts.add_contact("Ben", "+4915198765432")
    step1 = await harness.ask("/schedule", "Who gets it")
    await harness.press(step1, "Anna")
    assert "✓ Anna" in str(harness.telegram.chat(ADMIN)[-1].buttons())
    since = harness.telegram.cursor()
    await harness.press(step1, "Done")
    step2 = await harness.telegram.reply(ADMIN, "What should it say", since=since)
    assert step2
    step3 = await harness.ask("Hi {first_name}, see you!", "When?")
    since = harness.telegram.cursor()
    await harness.press(step3, "every day at 9:00")
    preview = await harness.telegram.reply(ADMIN, "Preview", since=since)
    assert "Hi Anna, see you!" in preview.text
    assert preview.text.count("09:00") >= 3  # the next three fire times, local
    assert await harness.service.schedules.list_schedules() == []  # nothing stored before Save

    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert [r.name for r in schedule.recipients] == ["Anna"]
    assert schedule.rule.kind is RuleKind.cron
    saved = await harness.telegram.wait_for(
        lambda: preview if preview.text.startswith("Saved.") else None
    )
    assert f"#{schedule.id}" in saved.text  # the preview became the saved schedule
    after = await harness.ask("more text", "/schedule")
    assert "To schedule a message" in after.text  # the wizard is over


async def test_wizard_typed_recipients_and_a_photo_with_caption(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789, +4930123456", "What should it say")
    since = harness.telegram.cursor()
    picture = b"\xff\xd8\xff\xe0 a small jpeg"
    await harness.telegram.send_photo(ADMIN, picture, caption="Look at this")
    await harness.flush()
    await harness.telegram.reply(ADMIN, "When?", since=since)
    preview = await harness.ask("24.12.2026 18:00", "Preview")
    assert "Thu 24 Dec 2026 18:00" in preview.text
    assert "photo.jpg" in preview.text
    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.media is not None
    assert base64.b64decode(schedule.media.data_base64) == picture
    assert schedule.text == "Look at this"
    assert len(schedule.recipients) == 2


async def wizard_data(harness: Harness) -> dict[str, Any]:
    key = StorageKey(bot_id=harness.bot.id, chat_id=ADMIN, user_id=ADMIN)
    return await harness.dispatcher.storage.get_data(key)


async def test_wizard_keeps_the_photo_once_and_recipients_as_records(harness: Harness) -> None:
    typed = "+4915123456789, +4930123456"
    await harness.ask("/schedule", "Who gets it")
    await harness.ask(typed, "What should it say")
    since = harness.telegram.cursor()
    picture = b"\xff\xd8\xff\xe0 a photo held in the wizard " * 64
    await harness.telegram.send_photo(ADMIN, picture, caption="Look at this")
    await harness.flush()
    await harness.telegram.reply(ADMIN, "When?", since=since)
    encoded = base64.b64encode(picture).decode()
    steps = {"photo": await wizard_data(harness)}
    preview = await harness.ask("24.12.2026 18:00", "Preview")
    steps["preview"] = await wizard_data(harness)
    for step, data in steps.items():
        dumped = json.dumps(data)
        assert dumped.count(encoded) == 1, step  # the media once, not again in the draft
        assert typed not in dumped, step  # no name string to parse again
        assert [r["address"] for r in data["typed"]] == ["+4915123456789", "+4930123456"]
    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.media is not None
    assert base64.b64decode(schedule.media.data_base64) == picture


async def test_wizard_refuses_a_file_over_the_limit_and_stays_on_the_step(
    harness: Harness,
) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    since = harness.telegram.cursor()
    await harness.telegram.send_document(
        ADMIN,
        b"x",
        filename="big.pdf",
        mime_type="application/pdf",
        declared_size=30 * 1024 * 1024,
    )
    await harness.flush()
    refusal = await harness.telegram.reply(ADMIN, "MB", since=since)
    assert "16 MB" in refusal.text and "30.0 MB" in refusal.text
    await harness.ask("Plain text instead", "When?")


async def test_wizard_bad_time_is_explained_and_the_step_repeats(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    await harness.ask("Hello", "When?")
    refusal = await harness.ask("someday soon")
    assert "someday" in refusal.text and "tomorrow 9:00" in refusal.text
    preview = await harness.ask("in 2h", "Preview")
    assert "Hello" in preview.text


async def test_wizard_bad_recipient_is_explained_and_nothing_moves_on(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    refusal = await harness.ask("Nobody We Know")
    assert "Nobody We Know" in refusal.text
    await harness.ask("+4915123456789", "What should it say")


async def test_wizard_edit_from_preview_returns_to_the_preview(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    await harness.ask("First text", "When?")
    preview = await harness.ask("tomorrow 9:00", "Preview")
    await harness.press(preview, "Edit")
    since = harness.telegram.cursor()
    await harness.press(harness.telegram.chat(ADMIN)[-1], "Message")
    await harness.telegram.reply(ADMIN, "What should it say", since=since)
    again = await harness.ask("Second text", "Preview")
    assert "Second text" in again.text and "First text" not in again.text
    await harness.press(again, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.text == "Second text"


async def test_cancel_leaves_the_wizard_and_saves_nothing(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    await harness.ask("/cancel", "Cancelled")
    hint = await harness.ask("Hello", "/schedule")
    assert "To schedule a message" in hint.text
    assert await harness.service.schedules.list_schedules() == []
    nothing = await harness.ask("/cancel", "Nothing to cancel")
    assert nothing


async def test_cancel_button_in_the_wizard(harness: Harness) -> None:
    step1 = await harness.ask("/schedule", "Who gets it")
    await harness.press(step1, "Cancel")
    cancelled = await harness.telegram.wait_for(
        lambda: step1 if step1.text == "Cancelled; no schedule was saved." else None
    )
    assert cancelled.buttons() == []  # the wizard's buttons are gone with it


async def to_the_time_with_a_template(harness: Harness, recipients: str, template: str) -> None:
    """The wizard up to its time step: `recipients` typed, then the template's button."""
    await harness.ask("/schedule", "Who gets it")
    step2 = await harness.ask(recipients, "What should it say")
    since = harness.telegram.cursor()
    await harness.press(step2, template)
    await harness.telegram.reply(ADMIN, "When?", since=since)


async def test_wizard_template_button(harness: Harness) -> None:
    await harness.service.contacts.add_contact("Anna", "+4915123456789")
    await harness.service.templates.add_template("greeting", "Hello {first_name}!")
    await to_the_time_with_a_template(harness, "Anna", "greeting")
    preview = await harness.ask("tomorrow 9:00", "Preview")
    assert "Hello Anna!" in preview.text and "greeting" in preview.text


async def test_done_without_recipients_asks_for_one(harness: Harness) -> None:
    await harness.service.contacts.add_contact("Anna", "+4915123456789")
    step1 = await harness.ask("/schedule", "Who gets it")
    query = await harness.press(step1, "Done")
    answer = await harness.telegram.answer(query)
    assert answer["show_alert"] and "Tap at least one contact" in answer["text"]


async def test_done_without_any_contacts_saved_asks_for_a_number_not_a_contact(
    harness: Harness,
) -> None:
    step1 = await harness.ask("/schedule", "Who gets it")
    query = await harness.press(step1, "Done")
    answer = await harness.telegram.answer(query)
    assert answer["show_alert"] and "no saved contacts yet" in answer["text"]
    assert "contact" not in answer["text"].split("yet")[1]  # nothing to tap is asked for


async def test_wizard_buttons_after_the_wizard_ended_are_refused(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    await harness.ask("Hello", "When?")
    preview = await harness.ask("tomorrow 9:00", "Preview")
    save = str(preview.button("Save")["callback_data"])
    await harness.press(preview, "Save")
    query = await harness.press_data(preview, save)  # replayed
    assert "over" in (await harness.telegram.answer(query))["text"]
    assert len(await harness.service.schedules.list_schedules()) == 1


async def test_one_shot_with_name_for_a_bare_number_says_how_and_saves_nothing(
    harness: Harness,
) -> None:
    reply = await harness.ask("/schedule +4915123456789 | tomorrow 9:00 | Hi {name}!", "name")
    assert "+4915123456789 has none" in reply.text
    assert "/addcontact Anna +4915123456789" in reply.text
    assert await harness.service.schedules.list_schedules() == []


async def test_wizard_refuses_name_for_a_bare_number_at_the_message_step(
    harness: Harness,
) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    refusal = await harness.ask("Happy birthday {first_name}!", "needs a name")
    assert "+4915123456789 has none" in refusal.text
    await harness.ask("Happy birthday!", "When?")  # still on the message step
    preview = await harness.ask("tomorrow 9:00", "Preview")
    assert "Happy birthday!" in preview.text


async def test_a_time_the_clocks_skip_is_saved_with_a_note_on_when_it_goes(
    harness: Harness,
) -> None:
    """02:30 on 28 Mar 2027 does not exist in Europe/Berlin: accepted, and the preview, the
    saved card and /list say it goes at 03:00."""
    note = "02:00-02:59 do not exist that night, it goes at 03:00"
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    await harness.ask("Hello", "When?")
    preview = await harness.ask("28.03.2027 02:30", "Preview")
    assert note in preview.text
    await harness.press(preview, "Save")
    saved = await harness.telegram.wait_for(
        lambda: preview if preview.text.startswith("Saved.") else None
    )
    assert note in saved.text
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert f"{schedule.next_run_at:%Y-%m-%d %H:%M}" == "2027-03-28 01:00"  # 03:00 CEST
    assert note in (await harness.ask("/list", f"#{schedule.id}")).text


async def test_a_time_that_happens_twice_says_which_one_it_is(harness: Harness) -> None:
    reply = await harness.ask("/schedule +4915123456789 | 31.10.2027 02:30 CET | hi", "Saved")
    assert "02:30 happens twice that night, this is the second" in reply.text


async def test_wizard_keeps_no_rendered_preview_between_steps(harness: Harness) -> None:
    await harness.service.contacts.add_contact("Anna Berg", "+4915123456789")
    await harness.service.contacts.add_contact("Carl Diaz", "+4930123456")
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("Anna Berg, Carl Diaz", "What should it say")
    await harness.ask("Hello {name}, happy {weekday}", "When?")
    preview = await harness.ask("24.12.2026 18:00", "Preview")
    assert "Hello Anna Berg, happy Thursday" in preview.text
    data = await wizard_data(harness)
    dumped = json.dumps(data)
    assert "Thursday" not in dumped and "Hello Anna Berg" not in dumped  # nothing rendered
    assert "preview" not in data["draft"] and "messages" not in dumped
    assert data["draft"]["next_run_at"] == "2026-12-24T17:00:00Z"  # the time as read
    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.text == "Hello {name}, happy {weekday}"
    assert [r.address for r in schedule.recipients] == ["+4915123456789", "+4930123456"]


async def test_save_after_the_time_passed_says_so_and_stores_nothing(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    await harness.ask("Hi", "When?")
    preview = await harness.ask("in 10 minutes", "Preview")
    await harness.clock.advance(11 * 60)
    answer = await harness.telegram.answer(await harness.press(preview, "Save"))
    assert "has passed meanwhile" in answer["text"]
    assert "in 10 minutes" in answer["text"]  # what to type instead
    assert await harness.service.schedules.list_schedules(ADMIN) == []


async def test_save_after_the_template_was_deleted_says_so_and_stores_nothing(
    harness: Harness,
) -> None:
    await harness.service.templates.add_template("greeting", "Hello!")
    await to_the_time_with_a_template(harness, "+4915123456789", "greeting")
    preview = await harness.ask("tomorrow 9:00", "Preview")
    await harness.service.templates.delete_template("greeting")
    answer = await harness.telegram.answer(await harness.press(preview, "Save"))
    assert "'greeting' was deleted meanwhile" in answer["text"]
    assert await harness.service.schedules.list_schedules(ADMIN) == []


async def test_wizard_keeps_the_picked_template_by_id(harness: Harness) -> None:
    template = await harness.service.templates.add_template("greeting", "Hello!")
    await to_the_time_with_a_template(harness, "+4915123456789", "greeting")
    assert (await wizard_data(harness))["template"] == template.id
    await harness.service.templates.delete_template("greeting")
    again = await harness.ask("tomorrow 9:00", "deleted meanwhile")
    assert "pick another one" in again.text  # what to do instead
    assert await harness.service.schedules.list_schedules(ADMIN) == []
