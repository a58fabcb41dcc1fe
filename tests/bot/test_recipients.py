"""Recipients typed by name in Telegram: the start of a contact's name, a question with buttons
when a name matches several, WhatsApp groups by their name."""

from __future__ import annotations

from core.adapters.whatsapp import WhatsAppGroup
from core.domain.models import RecipientKind
from tests.bot.conftest import ADMIN, Harness

FAMILY_ID = "120363041234567890@g.us"


async def contacts(harness: Harness, *names: str) -> None:
    for number, name in enumerate(names, start=1):
        await harness.service.contacts.add_contact(name, f"+49151000000{number:02}")


async def test_the_readme_one_line_example_works_with_first_names(harness: Harness) -> None:
    await contacts(harness, "Anna Schmidt", "Ben Meyer")
    saved = await harness.ask(
        "/schedule Anna, Ben | every monday 9:00 | Hi {first_name}!", "Saved"
    )
    assert "Anna Schmidt (+4915100000001), Ben Meyer (+4915100000002)" in saved.text
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert [r.name for r in schedule.recipients] == ["Anna Schmidt", "Ben Meyer"]


async def test_one_line_name_several_match_asks_with_buttons_and_saves_only_after_the_pick(
    harness: Harness,
) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas", "Ben Meyer")
    question = await harness.ask("/schedule An, Ben | tomorrow 9:00 | Hello", "which one")
    assert [b["text"] for b in question.buttons()] == [
        "Andreas (+4915100000002)",
        "Anna Schmidt (+4915100000001)",
        "Cancel",
    ]
    assert await harness.service.schedules.list_schedules() == []  # nothing before the choice
    since = harness.telegram.cursor()
    await harness.press(question, "Anna Schmidt")
    saved = await harness.telegram.reply(ADMIN, "Saved", since=since)
    assert "Anna Schmidt (+4915100000001), Ben Meyer" in saved.text
    assert "Anna Schmidt" in question.text and not question.buttons()  # the answer stays
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert [r.name for r in schedule.recipients] == ["Anna Schmidt", "Ben Meyer"]
    assert schedule.text == "Hello"


async def test_two_names_that_match_several_are_asked_one_after_the_other(
    harness: Harness,
) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas", "Ben Meyer", "Benno")
    first = await harness.ask("/schedule an, ben | in 2h | Hi", "which one")
    assert "an" in first.text.lower() and "Benno" not in str(first.buttons())
    since = harness.telegram.cursor()
    await harness.press(first, "Andreas")
    second = await harness.telegram.reply(ADMIN, "which one", since=since)
    assert "Benno" in str(second.buttons())
    assert await harness.service.schedules.list_schedules() == []
    since = harness.telegram.cursor()
    await harness.press(second, "Benno")
    await harness.telegram.reply(ADMIN, "Saved", since=since)
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert [r.name for r in schedule.recipients] == ["Andreas", "Benno"]


async def test_a_time_that_cannot_be_is_refused_before_the_question(harness: Harness) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas")
    refusal = await harness.ask("/schedule An | someday | Hello", "someday")
    assert not refusal.buttons()
    assert await harness.service.schedules.list_schedules() == []


async def test_the_question_cancelled_saves_nothing_and_its_buttons_are_over(
    harness: Harness,
) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas")
    question = await harness.ask("/schedule An | tomorrow 9:00 | Hello", "which one")
    anna = str(question.button("Anna")["callback_data"])
    await harness.press(question, "Cancel")
    query = await harness.press_data(question, anna)  # a replayed tap
    assert "over" in (await harness.telegram.answer(query))["text"]
    assert await harness.service.schedules.list_schedules() == []


async def test_wizard_asks_which_one_and_carries_the_choice_to_the_preview(
    harness: Harness,
) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas")
    await harness.ask("/schedule", "Who gets it")
    question = await harness.ask("an, +4930123456", "which one")
    since = harness.telegram.cursor()
    await harness.press(question, "Andreas")
    await harness.telegram.reply(ADMIN, "What should it say", since=since)
    await harness.ask("Hi!", "When?")
    preview = await harness.ask("tomorrow 9:00", "Preview")
    assert "To Andreas (+4915100000002)" in preview.text
    await harness.press(preview, "Save")
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert [r.address for r in schedule.recipients] == ["+4915100000002", "+4930123456"]


async def test_done_while_a_question_is_open_asks_to_answer_it(harness: Harness) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas")
    step1 = await harness.ask("/schedule", "Who gets it")
    await harness.press(step1, "Andreas")
    await harness.ask("an", "which one")
    query = await harness.press(step1, "Done")
    assert "which one you meant" in (await harness.telegram.answer(query))["text"]


async def test_a_group_by_its_name_is_shown_by_its_name_everywhere(harness: Harness) -> None:
    harness.whatsapp.group_list = [
        WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a", "b"))
    ]
    saved = await harness.ask("/schedule family | tomorrow 9:00 | Dinner at 8", "Saved")
    assert "to Family (group)" in saved.text and FAMILY_ID not in saved.text
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    [group] = schedule.recipients
    assert (group.kind, group.address, group.name) == (RecipientKind.group, FAMILY_ID, "Family")
    listing = await harness.ask("/list", "Your schedules")
    assert "Family (group)" in listing.text and FAMILY_ID not in listing.text
    await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    logs = await harness.ask("/logs", "Latest deliveries")
    assert "Family (group)" in logs.text and FAMILY_ID not in logs.text


async def test_a_group_name_while_whatsapp_is_not_linked_says_why_and_saves_nothing(
    harness: Harness,
) -> None:
    harness.whatsapp.group_list = [WhatsAppGroup(id=FAMILY_ID, name="Family", participants=())]
    harness.whatsapp.state = "SCAN_QR_CODE"
    refusal = await harness.ask("/schedule Family | tomorrow 9:00 | Dinner", "Family")
    assert "not linked" in refusal.text and "/link" in refusal.text
    assert await harness.service.schedules.list_schedules() == []


async def test_a_name_found_nowhere_says_contacts_and_groups_list_the_names(
    harness: Harness,
) -> None:
    await contacts(harness, "Anna Schmidt")
    refusal = await harness.ask("/schedule Carol | tomorrow 9:00 | Hi", "Carol")
    assert "/contacts" in refusal.text and "/groups" in refusal.text
    assert await harness.service.schedules.list_schedules() == []


async def test_groups_lists_names_to_type(harness: Harness) -> None:
    harness.whatsapp.group_list = [
        WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a", "b"))
    ]
    listing = await harness.ask("/groups", "WhatsApp groups")
    assert "• Family (2 people)" in listing.text
    assert "/schedule Family |" in listing.text


async def test_an_older_question_s_buttons_do_not_answer_a_newer_one(harness: Harness) -> None:
    await contacts(harness, "Anna Schmidt", "Andreas", "Ben Meyer", "Benno")
    await harness.ask("/schedule", "Who gets it")
    old = await harness.ask("an", "which one")
    new = await harness.ask("be", "which one")  # typed again: a new question
    query = await harness.press(old, "Andreas")
    assert "over" in (await harness.telegram.answer(query))["text"]
    assert "Benno" in str(new.buttons())  # still open
    since = harness.telegram.cursor()
    await harness.press(new, "Benno")
    await harness.telegram.reply(ADMIN, "What should it say", since=since)
    await harness.ask("Hi", "When?")
    preview = await harness.ask("tomorrow 9:00", "Preview")
    assert "Benno" in preview.text and "Andreas" not in preview.text


async def test_the_question_counts_contacts_and_groups_as_they_are(harness: Harness) -> None:
    await contacts(harness, "Fama")
    harness.whatsapp.group_list = [WhatsAppGroup(id=FAMILY_ID, name="Family", participants=())]
    question = await harness.ask("/schedule fam | tomorrow 9:00 | Hi", "which one")
    assert "fam matches 1 contact and 1 group: which one" in question.text
    assert [b["text"] for b in question.buttons()] == [
        "Fama (+4915100000001)",
        "Family (group)",
        "Cancel",
    ]


async def test_one_line_name_while_whatsapp_is_down_is_refused_not_sent_to_a_contact(
    harness: Harness,
) -> None:
    await contacts(harness, "Family Doctor")
    harness.whatsapp.group_list = [WhatsAppGroup(id=FAMILY_ID, name="Family", participants=())]
    await harness.whatsapp.go_down()  # connection refused, as when the sidecar is down
    refusal = await harness.ask("/schedule Family | tomorrow 9:00 | Dinner", "Family")
    assert "does not answer" in refusal.text and "full name" in refusal.text
    assert not refusal.buttons()
    assert await harness.service.schedules.list_schedules() == []


async def test_a_bad_time_is_refused_before_the_question_with_a_field_only_one_has(
    harness: Harness,
) -> None:
    await harness.service.contacts.add_contact(
        "Anna Schmidt", "+4915100000001", fields={"city": "Bonn"}
    )
    await harness.service.contacts.add_contact("Andreas", "+4915100000002")
    refusal = await harness.ask("/schedule An | someday | Hi from {city}", "someday")
    assert not refusal.buttons()
    assert await harness.service.schedules.list_schedules() == []


OTHER_FAMILY_ID = "120363049999991111@g.us"


async def test_two_groups_of_the_same_name_are_told_apart_and_the_pick_keeps_its_id(
    harness: Harness,
) -> None:
    harness.whatsapp.group_list = [
        WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a", "b")),
        WhatsAppGroup(id=OTHER_FAMILY_ID, name="Family", participants=("c",)),
    ]
    question = await harness.ask("/schedule Family | tomorrow 9:00 | Dinner", "which one")
    texts = [b["text"] for b in question.buttons()]
    assert texts == ["Family (group …7890)", "Family (group …1111)", "Cancel"]
    since = harness.telegram.cursor()
    await harness.press(question, "Family (group …1111)")
    saved = await harness.telegram.reply(ADMIN, "Saved", since=since)
    assert "Family (group)" in saved.text
    [schedule] = await harness.service.schedules.list_schedules(ADMIN)
    assert [r.address for r in schedule.recipients] == [OTHER_FAMILY_ID]


async def test_groups_shows_each_id_to_type_and_an_example_that_can_be_typed(
    harness: Harness,
) -> None:
    harness.whatsapp.group_list = [
        WhatsAppGroup(id=FAMILY_ID, name="A | B", participants=("a", "b")),
    ]
    listing = await harness.ask("/groups", "WhatsApp groups")
    assert f"• A | B (2 people): <code>{FAMILY_ID}</code>" in listing.source
    assert f"/schedule {FAMILY_ID} | tomorrow 9:00 | Hello!" in listing.text  # not A | B
    harness.whatsapp.group_list = [
        WhatsAppGroup(id=OTHER_FAMILY_ID, name="Friends", participants=("c",)),
        WhatsAppGroup(id=FAMILY_ID, name="friends", participants=()),
        WhatsAppGroup(id="120363040000002222@g.us", name="Work; team", participants=()),
    ]
    listing = await harness.ask("/groups", "WhatsApp groups")
    assert f"• Friends (1 person): <code>{OTHER_FAMILY_ID}</code>" in listing.source
    assert "/schedule Friends |" not in listing.text  # shared by two: an id is the example
    assert f"/schedule {OTHER_FAMILY_ID} |" in listing.text
