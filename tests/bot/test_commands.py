"""Logs, export, contacts, templates, groups, status, time zone, link, help and hints."""

from __future__ import annotations

import csv
import io

from bot import ui
from core.adapters.whatsapp import WhatsAppContact, WhatsAppGroup
from core.domain.models import DeliveryStatus
from tests.bot.conftest import ADMIN, Harness


async def test_help_lists_every_command_and_the_menu_is_accepted(harness: Harness) -> None:
    reply = await harness.ask("/help", "wasched")
    for name, _, _ in ui.COMMANDS:
        assert f"/{name}" in reply.text
    await harness.bot.set_my_commands(ui.bot_commands())
    assert [c["command"] for c in harness.telegram.commands] == [c[0] for c in ui.COMMANDS]


async def test_unknown_command_and_free_text_get_a_hint(harness: Harness) -> None:
    unknown = await harness.ask("/frobnicate now", "don't know /frobnicate")
    assert "/help" in unknown.text
    free = await harness.ask("hello there", "/schedule")
    assert "/help" in free.text


async def test_logs_show_status_icons_and_times(harness: Harness) -> None:
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789, +4930123456", when="in 2h", text="hi"
    )
    await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    [first, second] = await harness.service.logs.logs(None, schedule_id=schedule.id)
    await harness.store.update_delivery(
        first.id, status=DeliveryStatus.failed, error_code="not_on_whatsapp", last_error="x"
    )
    logs = await harness.ask("/logs", "Latest deliveries")
    assert "⏳" in logs.text and "❌" in logs.text
    assert "no WhatsApp account" in logs.text
    assert "11:00" in logs.text  # 10:00 UTC shown in Europe/Berlin
    one = await harness.ask(f"/logs {schedule.id}", f"of #{schedule.id}")
    assert second.recipient in one.text
    none = await harness.ask("/logs 42", "no schedule #42")
    assert none


async def test_logs_when_nothing_was_sent(harness: Harness) -> None:
    assert await harness.ask("/logs", "No deliveries")


async def test_export_sends_a_csv_document(harness: Harness) -> None:
    schedule = await harness.service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="in 2h", text="hi"
    )
    await harness.service.runs.run_now(schedule.owner_id, schedule.id)
    since = harness.telegram.cursor()
    await harness.say("/export")
    document = await harness.telegram.reply(ADMIN, "1 delivery", since=since)
    assert document.kind == "document" and document.file is not None
    assert document.file.filename == "wasched-deliveries.csv"
    rows = list(csv.DictReader(io.StringIO(document.file.data.decode("utf-8-sig"))))
    assert len(rows) == 1 and "+4915123456789" in str(rows[0])


async def test_contacts_add_list_delete_and_bad_input(harness: Harness) -> None:
    await harness.ask("/contacts", "No contacts yet")
    await harness.ask("/addcontact Anna Maria +49 151 2345 6789", "Saved Anna Maria")
    listing = await harness.ask("/contacts", "Contacts")
    assert "Anna Maria: +4915123456789" in listing.text
    bad = await harness.ask("/addcontact Anna", "/addcontact Anna +49")
    assert bad
    duplicate = await harness.ask("/addcontact anna maria +4930123456", "exists already")
    assert duplicate
    await harness.ask("/delcontact anna maria", "Deleted Anna Maria")
    assert await harness.service.contacts.list_contacts() == []
    assert await harness.ask("/delcontact Nobody", "no contact named")


async def test_import_contacts_and_groups_from_whatsapp(harness: Harness) -> None:
    harness.whatsapp.address_book = [
        WhatsAppContact(id="4915123456789@c.us", name="Anna", number="4915123456789")
    ]
    harness.whatsapp.group_list = [
        WhatsAppGroup(id="120363041234567890@g.us", name="Family", participants=("a", "b"))
    ]
    imported = await harness.ask("/importcontacts", "Imported 1 contact")
    assert "Anna" in imported.text
    groups = await harness.ask("/groups", "WhatsApp groups")
    assert "Family (2 people): 120363041234567890@g.us" in groups.text


async def test_templates_add_list_delete(harness: Harness) -> None:
    await harness.ask("/templates", "No templates yet")
    await harness.ask("/addtemplate greeting | Hello {first_name}!", "Saved template")
    listing = await harness.ask("/templates", "greeting")
    assert "Hello {first_name}!" in listing.text
    assert await harness.ask("/addtemplate broken | Hello {name", "brace")
    assert await harness.ask("/addtemplate nothing", "/addtemplate greeting |")
    await harness.ask("/deltemplate greeting", "Deleted template")
    assert await harness.service.templates.list_templates() == []


async def test_time_zone_is_shown_set_and_refused_when_unknown(harness: Harness) -> None:
    assert await harness.ask("/tz", "Europe/Berlin")
    await harness.ask("/tz America/New_York", "now America/New_York")
    assert await harness.service.users.timezone_of(ADMIN) == "America/New_York"
    refused = await harness.ask("/tz Mars/Olympus")
    assert "Mars/Olympus" in refused.text
    assert await harness.service.users.timezone_of(ADMIN) == "America/New_York"


async def test_status_shows_whatsapp_scheduler_counts_and_version(harness: Harness) -> None:
    await harness.service.schedules.create_schedule(
        ADMIN, recipients="+4915123456789", when="tomorrow 9:00", text="hi"
    )
    status = await harness.ask("/status", "wasched status")
    assert "WORKING" in status.text and "Me" in status.text
    assert "1 active" in status.text and "Version" in status.text
    assert "Sun 29 Nov 2026 09:00" in status.text


async def test_link_when_linked_says_so(harness: Harness) -> None:
    assert await harness.ask("/link", "linked already as Me")


async def test_link_sends_the_qr_photo_refreshes_it_and_says_when_linked(
    harness: Harness,
) -> None:
    harness.whatsapp.state = "SCAN_QR_CODE"
    since = harness.telegram.cursor()
    await harness.say("/link")
    photo = await harness.telegram.reply(ADMIN, "Scan this", since=since)
    assert photo.kind == "photo" and photo.file is not None
    assert photo.file.data.startswith(b"\x89PNG")

    since = harness.telegram.cursor()
    await harness.notifier.qr_available("2@second-qr-code")
    fresh = await harness.telegram.reply(ADMIN, "Scan this", since=since)
    assert fresh.message_id != photo.message_id and photo.deleted
    assert fresh.file is not None and fresh.file.data != photo.file.data

    since = harness.telegram.cursor()
    await harness.notifier.session_changed("WORKING", {"id": "4915199999999@c.us", "name": "Me"})
    linked = await harness.telegram.reply(ADMIN, "linked", since=since)
    assert "+4915199999999" in linked.text and fresh.deleted


async def test_link_with_a_number_gives_a_pairing_code(harness: Harness) -> None:
    harness.whatsapp.state = "SCAN_QR_CODE"
    reply = await harness.ask("/link +49 151 99999999", "pairing code")
    assert "ABCD-EFGH" in reply.text


async def test_link_with_a_number_when_linked_says_so(harness: Harness) -> None:
    harness.whatsapp.state = "WORKING"
    reply = await harness.ask("/link +49 151 99999999", "linked already")
    assert "pairing code" not in reply.text


async def test_a_reply_held_back_by_flood_control_is_sent_after_the_wait(
    harness: Harness,
) -> None:
    harness.telegram.fail_next("sendMessage", retry_after=1)
    reply = await harness.ask("/help", "wasched")
    assert reply and len(harness.telegram.calls_of("sendmessage")) == 2
