"""Numbers are checked with WhatsApp when a schedule or contact is saved: one without an
account is refused with the reason and what to do, nothing stored; while WhatsApp cannot be
asked the save goes through and says the numbers will be checked before the first send."""

from __future__ import annotations

from core.adapters.whatsapp import WhatsAppContact
from tests.bot.conftest import ADMIN, Harness

GOOD = "+4915123456789"
GONE = "+4915199999999"


async def test_a_schedule_to_a_number_without_whatsapp_is_refused_and_nothing_stored(
    harness: Harness,
) -> None:
    harness.whatsapp.not_on_whatsapp = {GONE}
    refused = await harness.ask(f"/schedule {GOOD}, {GONE} | tomorrow 9:00 | Hi", "Not saved")
    assert f"{GONE} has no WhatsApp account" in refused.text
    assert "Fix the number, or leave it out" in refused.text
    assert await harness.store.list_schedules() == []

    saved = await harness.ask(f"/schedule {GOOD} | tomorrow 9:00 | Hi", "Saved")
    assert "⚠️" not in saved.text
    assert len(await harness.store.list_schedules()) == 1
    # GOOD was answered with the first request and is remembered: not asked again.
    await harness.ask(f"/schedule {GOOD} | tomorrow 10:00 | Hi again", "Saved")
    assert harness.whatsapp.checks == [[GOOD, GONE]]


async def test_while_whatsapp_is_unlinked_the_save_goes_through_and_says_so(
    harness: Harness,
) -> None:
    harness.whatsapp.state = "SCAN_QR_CODE"
    harness.whatsapp.not_on_whatsapp = {GONE}
    saved = await harness.ask(f"/schedule {GONE} | tomorrow 9:00 | Hi", "Saved")
    assert "⚠️ WhatsApp could not be asked now whether" in saved.text
    assert GONE in saved.text and "checked before the first send" in saved.text
    assert len(await harness.store.list_schedules()) == 1
    assert harness.whatsapp.checks == []


async def test_the_wizard_save_checks_a_contact_saved_while_unlinked(harness: Harness) -> None:
    harness.whatsapp.state = "SCAN_QR_CODE"
    added = await harness.ask(f"/addcontact Anna {GOOD}", "Saved Anna")
    assert "⚠️ WhatsApp could not be asked now" in added.text
    harness.whatsapp.state = "WORKING"
    harness.whatsapp.not_on_whatsapp = {GOOD}  # WhatsApp says so once it can be asked

    step1 = await harness.ask("/schedule", "Who gets it")
    await harness.press(step1, "Anna")
    since = harness.telegram.cursor()
    await harness.press(step1, "Done")
    await harness.telegram.reply(ADMIN, "What should it say", since=since)
    step3 = await harness.ask("Hi {first_name}!", "When?")
    since = harness.telegram.cursor()
    await harness.press(step3, "every day at 9:00")
    preview = await harness.telegram.reply(ADMIN, "Preview", since=since)
    since = harness.telegram.cursor()
    await harness.press(preview, "Save")
    # An alert on the button (the preview stays, with Edit to change the recipients).
    refused = await harness.telegram.wait_event(lambda e: "Not saved" in e.text, since=since)
    assert refused.kind == "answer" and f"Anna ({GOOD}) has no WhatsApp account" in refused.text
    assert await harness.store.list_schedules() == []
    assert harness.whatsapp.checks == [[GOOD]]


async def test_a_contact_without_whatsapp_is_refused_and_not_saved(harness: Harness) -> None:
    harness.whatsapp.not_on_whatsapp = {GONE}
    refused = await harness.ask(f"/addcontact Bob {GONE}", "Not saved")
    assert f"Bob ({GONE}) has no WhatsApp account" in refused.text
    assert "/addcontact Bob +49" in refused.text
    assert await harness.store.list_contacts() == []
    added = await harness.ask(f"/addcontact Anna {GOOD}", "Saved Anna")
    assert "⚠️" not in added.text
    assert [c.name for c in await harness.store.list_contacts()] == ["Anna"]


async def test_editing_the_recipients_to_a_number_without_whatsapp_changes_nothing(
    harness: Harness,
) -> None:
    harness.whatsapp.not_on_whatsapp = {GONE}
    await harness.ask(f"/schedule {GOOD} | tomorrow 9:00 | Hi", "Saved")
    [before] = await harness.store.list_schedules()
    refused = await harness.ask(f"/edit {before.id} recipients {GONE}", "Not saved")
    assert f"{GONE} has no WhatsApp account" in refused.text
    assert f"/edit {before.id} recipients" in refused.text
    assert await harness.store.list_schedules() == [before]


async def test_imported_contacts_without_whatsapp_are_left_out(harness: Harness) -> None:
    harness.whatsapp.address_book = [
        WhatsAppContact(id="4915123456789@c.us", name="Anna", number="4915123456789"),
        WhatsAppContact(id="4915199999999@c.us", name="Old Phone", number="4915199999999"),
    ]
    harness.whatsapp.not_on_whatsapp = {GONE}
    imported = await harness.ask("/importcontacts", "Imported 1 contact")
    assert "Left out 1 number that has no WhatsApp account" in imported.text
    assert [c.name for c in await harness.store.list_contacts()] == ["Anna"]
    assert harness.whatsapp.checks == [[GOOD, GONE]]
