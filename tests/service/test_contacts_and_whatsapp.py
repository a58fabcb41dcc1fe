"""Contacts, templates, WhatsApp groups and linking, and /status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from core import __version__
from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppClient, WhatsAppContact, WhatsAppGroup
from core.domain.clock import FakeClock
from core.domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidRecipient,
    InvalidState,
    InvalidTemplate,
    MessageTooLong,
    NotFound,
    WhatsAppUnavailable,
)
from core.domain.models import WHATSAPP_TEXT_LIMIT, DeliveryStatus, ScheduleState
from core.domain.session import Remedy, SessionFailure
from core.services import Services
from tests.fakes.sidecar import FakeSidecar, scripted_sidecar

from .conftest import OWNER

# --- contacts --------------------------------------------------------------------------------


async def test_add_contact_normalizes_the_number_and_keeps_fields(service: Services) -> None:
    contact = await service.contacts.add_contact(
        "  Anna   Maria ", "+49 (151) 2345-6789", {"city": "Köln"}
    )
    assert contact.name == "Anna Maria"
    assert contact.phone == "+4915123456789"
    assert contact.fields == {"city": "Köln"}
    assert await service.contacts.list_contacts() == [contact]


@pytest.mark.parametrize(
    ("name", "phone", "fields", "error", "match"),
    [
        ("Anna", "0151 2345678", None, InvalidRecipient, "country code"),
        ("Anna", "+49 15", None, InvalidRecipient, "digits"),
        ("", "+4915123456789", None, InvalidInput, "name"),
        ("+49 151 2345678", "+4915123456789", None, InvalidInput, "looks like a number"),
        ("Anna, Bob", "+4915123456789", None, InvalidInput, "commas"),
        ("A" * 65, "+4915123456789", None, InvalidInput, "at most 64"),
        ("Anna", "+4915123456789", {"first name": "x"}, InvalidInput, "contact field"),
        ("Anna", "+4915123456789", {"name": "x"}, InvalidInput, "contact field"),
    ],
)
async def test_refused_contacts_are_not_stored(
    service: Services,
    store: Store,
    name: str,
    phone: str,
    fields: dict[str, str] | None,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        await service.contacts.add_contact(name, phone, fields)
    assert await store.list_contacts() == []


async def test_a_second_contact_of_the_same_name_is_refused(service: Services) -> None:
    await service.contacts.add_contact("Anna", "+4915123456789")
    with pytest.raises(AlreadyExists, match="/delcontact anna"):
        await service.contacts.add_contact("anna", "+12025550143")
    assert len(await service.contacts.list_contacts()) == 1


async def test_delete_contact_by_name_case_insensitively(service: Services) -> None:
    contact = await service.contacts.add_contact("Anna", "+4915123456789")
    assert await service.contacts.delete_contact("ANNA") == contact
    assert await service.contacts.list_contacts() == []
    with pytest.raises(NotFound, match="/contacts"):
        await service.contacts.delete_contact("Anna")


async def test_a_schedule_still_sends_to_a_deleted_contact(service: Services) -> None:
    await service.contacts.add_contact("Anna", "+4915123456789")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="Anna", when="in 1 hour", text="Hi {name}"
    )
    await service.contacts.delete_contact("Anna")
    _, [delivery] = await service.runs.run_now(schedule.owner_id, schedule.id)
    assert delivery.recipient == "+4915123456789"
    assert delivery.text == "Hi Anna"


async def test_import_contacts_adds_new_ones_and_counts_the_rest(
    service: Services, whatsapp: FakeSidecar
) -> None:
    await service.contacts.add_contact("Anna", "+4915123456789")
    whatsapp.address_book = [
        WhatsAppContact(id="12025550143@c.us", name="Bob", number="12025550143"),
        WhatsAppContact(
            id="4915123456789@c.us", name="Anna M", number="4915123456789"
        ),  # same number
        WhatsAppContact(id="4915100000001@c.us", name="anna", number="4915100000001"),  # same name
        WhatsAppContact(id="4915100000002@c.us", name="", number="4915100000002"),  # no name
        WhatsAppContact(id="123@lid", name="Ghost", number=None),  # no number
        WhatsAppContact(id="4915100000003@c.us", name="Carol, Jr.", number=None),  # number from id
    ]
    result = await service.whatsapp.import_contacts()
    assert (result.imported, result.existing, result.skipped) == (2, 2, 2)
    assert [(c.name, c.phone, c.whatsapp_id) for c in result.contacts] == [
        ("Bob", "+12025550143", "12025550143@c.us"),
        ("Carol Jr.", "+4915100000003", "4915100000003@c.us"),
    ]
    again = await service.whatsapp.import_contacts()
    assert (again.imported, again.existing) == (0, 4)


# --- templates -------------------------------------------------------------------------------


async def test_templates_add_list_delete(service: Services) -> None:
    template = await service.templates.add_template("Greeting", "Hello {name}, {{literal}}")
    assert await service.templates.list_templates() == [template]
    assert await service.templates.delete_template("greeting") == template
    assert await service.templates.list_templates() == []
    with pytest.raises(NotFound, match="/templates"):
        await service.templates.delete_template("greeting")


@pytest.mark.parametrize(
    ("name", "text", "error", "match"),
    [
        ("t", "Hello {name", InvalidTemplate, "lone"),
        ("t", "Hello name}", InvalidTemplate, "lone"),
        ("t", "Hello {first name}", InvalidTemplate, "lone"),
        ("t", "  ", InvalidInput, "empty"),
        ("", "Hello", InvalidInput, "name"),
        ("a|b", "Hello", InvalidInput, r"\|"),
        ("t", "x" * (WHATSAPP_TEXT_LIMIT + 1), MessageTooLong, "characters"),
    ],
)
async def test_refused_templates_are_not_stored(
    service: Services, store: Store, name: str, text: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await service.templates.add_template(name, text)
    assert await store.list_templates() == []


async def test_a_second_template_of_the_same_name_is_refused(service: Services) -> None:
    await service.templates.add_template("greeting", "Hi")
    with pytest.raises(AlreadyExists, match="/deltemplate"):
        await service.templates.add_template("Greeting", "Hello")


async def test_a_template_in_use_cannot_be_deleted(service: Services) -> None:
    await service.templates.add_template("greeting", "Hi {weekday}")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 1 hour", template="greeting"
    )
    with pytest.raises(InvalidState, match=f"#{schedule.id}"):
        await service.templates.delete_template("greeting")
    assert len(await service.templates.list_templates()) == 1


async def test_template_fields_are_checked_against_recipients_when_used(
    service: Services,
) -> None:
    await service.templates.add_template("offer", "Dear {name} of {company}")
    await service.contacts.add_contact("Bob Stone", "+12025550143")
    with pytest.raises(InvalidTemplate, match="company"):
        await service.schedules.create_schedule(
            OWNER, recipients="Bob Stone", when="in 1 hour", template="offer"
        )


# --- WhatsApp --------------------------------------------------------------------------------


async def test_groups_sorted_by_name_with_participant_counts(
    service: Services, whatsapp: FakeSidecar
) -> None:
    whatsapp.group_list = [
        WhatsAppGroup(id="2@g.us", name="work", participants=("a", "b", "c")),
        WhatsAppGroup(id="1@g.us", name="Family", participants=("a",)),
    ]
    groups = await service.whatsapp.groups()
    assert [(g.id, g.name, g.participants) for g in groups] == [
        ("1@g.us", "Family", 1),
        ("2@g.us", "work", 3),
    ]


async def test_link_qr_pairing_code_and_logout(service: Services, whatsapp: FakeSidecar) -> None:
    whatsapp.state = "SCAN_QR_CODE"
    qr = await service.whatsapp.link_qr()
    assert qr.qr == "2@abc"
    assert qr.png.startswith(b"\x89PNG")
    assert await service.whatsapp.pairing_code("+49 151 2345 6789") == "ABCD-EFGH"
    with pytest.raises(InvalidRecipient):
        await service.whatsapp.pairing_code("0151")
    await service.whatsapp.logout()
    assert [(call.method, call.path, call.body) for call in whatsapp.asked()] == [
        ("GET", "/session/qr", None),
        ("POST", "/session/pairing-code", {"phone": "+4915123456789"}),
        ("POST", "/session/logout", None),
    ]


async def test_whatsapp_calls_without_a_sidecar_say_how_to_set_it_up(
    store: Store, clock: FakeClock
) -> None:
    service = Services(store, clock, default_timezone="UTC")
    with pytest.raises(WhatsAppUnavailable, match="WHATSAPP_URL"):
        await service.whatsapp.groups()
    with pytest.raises(WhatsAppUnavailable, match="WHATSAPP_URL"):
        await service.whatsapp.import_contacts()


# --- status ----------------------------------------------------------------------------------


async def test_status_reports_whatsapp_scheduler_counts_and_next_run(
    service: Services, store: Store
) -> None:
    daily = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00", text="a"
    )
    other = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 7:00", text="b"
    )
    await service.schedules.pause(other.owner_id, other.id)
    await service.runs.run_now(daily.owner_id, daily.id)
    status = await service.whatsapp.status()
    assert status.whatsapp_state == "WORKING"
    assert status.whatsapp_number == "+4915199999999"
    assert status.whatsapp_name == "Me"
    assert status.whatsapp_error is None
    assert status.scheduler == "running, 2 jobs"
    assert status.schedules.get(ScheduleState.active) == 1
    assert status.schedules.get(ScheduleState.paused) == 1
    assert status.deliveries.get(DeliveryStatus.queued) == 1
    assert status.next_run_at == daily.next_run_at
    assert status.version == __version__


async def test_status_when_the_sidecar_is_down(
    service: Services, whatsapp: FakeSidecar, whatsapp_client: WhatsAppClient
) -> None:
    await whatsapp.go_down()
    with pytest.raises(WhatsAppUnavailable) as down:
        await whatsapp_client.health()
    status = await service.whatsapp.status()
    assert status.whatsapp_state == "unreachable"
    assert status.whatsapp_number is None
    assert status.whatsapp_error == str(down.value)
    assert "cannot be reached" in str(down.value)


async def test_status_carries_why_whatsapp_fails_and_what_to_do(
    service: Services, whatsapp: FakeSidecar
) -> None:
    whatsapp.state = "FAILED"
    whatsapp.failure = {
        "code": "profile_locked",
        "message": "The browser is already running",
        "since": "2026-11-28T09:59:00.000Z",
    }
    status = await service.whatsapp.status()
    assert status.whatsapp_failure == SessionFailure(
        "profile_locked",
        "The browser is already running",
        datetime(2026, 11, 28, 9, 59, tzinfo=UTC),
    )
    words = status.whatsapp_words
    assert (words.code, words.remedy) == ("profile_locked", Remedy.fix_server)
    assert words.detail == "The browser is already running"
    assert "WHATSAPP_DATA_DIR" in words.fix

    # Once it works a stale failure says nothing.
    whatsapp.state = "WORKING"
    assert (await service.whatsapp.status()).whatsapp_words.working


async def test_status_when_the_sidecar_is_down_says_how_to_reach_it(
    service: Services, whatsapp: FakeSidecar, whatsapp_client: WhatsAppClient
) -> None:
    await whatsapp.go_down()
    with pytest.raises(WhatsAppUnavailable) as down:
        await whatsapp_client.health()
    words = (await service.whatsapp.status()).whatsapp_words
    assert words.remedy is Remedy.fix_server and "WHATSAPP_URL" in words.fix
    assert words.detail == str(down.value)


async def test_status_without_a_sidecar_or_engine(store: Store, clock: FakeClock) -> None:
    status = await Services(store, clock, default_timezone="UTC").whatsapp.status()
    assert status.whatsapp_state == "not configured"
    assert "Set WHATSAPP_URL" in status.whatsapp_words.fix
    assert status.scheduler == "not running"
    assert status.next_run_at is None


async def test_the_service_reads_the_sidecars_own_answers(store: Store, clock: FakeClock) -> None:
    """The service reads what the sidecar answers in its own JSON, through the real client."""

    def sidecar(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(
                200,
                json={
                    "status": "ok",
                    "engine": "fake",
                    "state": "SCAN_QR_CODE",
                    "me": None,
                },
            )
        if request.url.path == "/groups":
            return httpx.Response(
                200, json=[{"id": "1@g.us", "name": "Family", "participants": ["a", "b"]}]
            )
        if request.url.path == "/session/pairing-code":
            assert json.loads(request.content) == {"phone": "+4915123456789"}
            return httpx.Response(200, json={"code": "WXYZ-1234"})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    async with scripted_sidecar(sidecar) as url:
        client = WhatsAppClient(url)
        try:
            service = Services(store, clock, default_timezone="UTC", whatsapp=client)
            status = await service.whatsapp.status()
            assert (status.whatsapp_state, status.whatsapp_number) == ("SCAN_QR_CODE", None)
            assert [g.participants for g in await service.whatsapp.groups()] == [2]
            assert await service.whatsapp.pairing_code("+49 151 23456789") == "WXYZ-1234"
        finally:
            await client.aclose()
