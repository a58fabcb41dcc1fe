"""The wizard's small words: the template named on the saved card, whole sentences, what
Cancel says, and a weekly When button."""

from __future__ import annotations

import pytest

from bot import ui
from core.domain.models import RuleKind
from core.domain.when import parse_when
from tests.bot.conftest import ADMIN, START, Harness


async def test_the_saved_card_and_list_name_the_template(harness: Harness) -> None:
    await harness.service.contacts.add_contact("Anna", "+4915123456789")
    await harness.service.templates.add_template("greeting", "Hello {first_name}!")
    await harness.ask("/schedule", "Who gets it")
    step2 = await harness.ask("Anna", "What should it say")
    since = harness.telegram.cursor()
    await harness.press(step2, "greeting")
    await harness.telegram.reply(ADMIN, "When?", since=since)
    preview = await harness.ask("tomorrow 9:00", "Preview")
    await harness.press(preview, "Save")
    saved = await harness.telegram.wait_for(
        lambda: preview if preview.text.startswith("Saved.") else None
    )
    assert "template greeting" in saved.text and "a template" not in saved.text
    listing = await harness.ask("/list", "Your schedules")
    assert "template greeting" in listing.text


async def test_the_first_step_breaks_no_sentence_across_lines(harness: Harness) -> None:
    await harness.service.contacts.add_contact("Anna", "+4915123456789")
    step1 = await harness.ask("/schedule", "Who gets it")
    assert not [line for line in step1.text.splitlines() if line.rstrip().endswith(",")]
    assert "contact names or WhatsApp group names, separated by commas" in step1.text


async def test_cancel_after_a_contact_was_saved_does_not_say_nothing_was_saved(
    harness: Harness,
) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("/addcontact Anna +4915123456789", "Saved Anna")
    cancelled = await harness.ask("/cancel", "Cancelled")
    assert cancelled.text == "Cancelled; no schedule was saved."
    assert [c.name for c in await harness.service.contacts.list_contacts()] == ["Anna"]
    # The same with the wizard's Cancel button.
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("/addcontact Ben +4915198765432", "Saved Ben")
    step1 = harness.telegram.bot_messages(ADMIN)[-2]
    await harness.press(step1, "Cancel")
    gone = await harness.telegram.wait_for(
        lambda: step1 if step1.text.startswith("Cancelled") else None
    )
    assert gone.text == "Cancelled; no schedule was saved."


async def test_cancel_while_editing_a_schedule_says_it_is_unchanged(harness: Harness) -> None:
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="tomorrow 9:00", text="Hi"
    )
    choices = await harness.ask(f"/edit {schedule.id}", "What should change")
    since = harness.telegram.cursor()
    await harness.press(choices, "Text")
    await harness.telegram.reply(ADMIN, "new message text", since=since)
    cancelled = await harness.ask("/cancel", "Cancelled")
    assert cancelled.text == "Cancelled; the schedule is unchanged."


async def test_the_when_step_has_a_weekly_button(harness: Harness) -> None:
    await harness.ask("/schedule", "Who gets it")
    await harness.ask("+4915123456789", "What should it say")
    step3 = await harness.ask("Hello", "When?")
    since = harness.telegram.cursor()
    await harness.press(step3, "every monday 9:00")
    preview = await harness.telegram.reply(ADMIN, "Preview", since=since)
    assert "every Monday at 09:00" in preview.text
    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert schedule.rule.kind is RuleKind.cron and schedule.rule.cron == "0 9 * * 1"


@pytest.mark.parametrize("button", ui.WHEN_BUTTONS)
def test_every_when_button_is_a_time_the_wizard_reads(button: str) -> None:
    assert parse_when(button, tz="Europe/Berlin", now=START)
