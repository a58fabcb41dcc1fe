"""Hostile input at the service: ids no store can hold, names made of separators, and numbers
written in other digit systems are refused or normalised, never stored as they came."""

from __future__ import annotations

import csv
import io

import pytest

from core.adapters.store import Store
from core.domain.errors import InvalidInput, InvalidRecipient, NotFound
from core.domain.recipients import parse_phone, parse_recipients
from core.services import MAX_ID, Services

from .conftest import OWNER

HUGE = 99999999999999999999  # the fuzz run's id: past SQLite INTEGER and BSON int64


@pytest.mark.parametrize("schedule_id", [HUGE, MAX_ID + 1, 0, -(2**70)])
async def test_ids_beyond_the_stores_range_are_no_such_schedule(
    service: Services, schedule_id: int
) -> None:
    await service.schedules.create_schedule(
        OWNER, recipients="+4915123456789", when="in 2h", text="hi"
    )
    for call in (
        service.schedules.get_schedule,
        service.schedules.pause,
        service.schedules.resume,
        service.schedules.delete,
        service.runs.run_now,
        service.schedules.preview,
    ):
        with pytest.raises(NotFound, match=f"no schedule #{schedule_id}"):
            await call(OWNER, schedule_id)
    with pytest.raises(NotFound, match=f"no schedule #{schedule_id}"):
        await service.schedules.edit_schedule(OWNER, schedule_id, text="new")
    assert await service.logs.logs(OWNER, schedule_id=schedule_id) == []
    rows = list(
        csv.reader(
            io.StringIO((await service.logs.export_csv(None, schedule_id=schedule_id)).decode())
        )
    )
    assert len(rows) == 1  # the header only
    assert len(await service.schedules.list_schedules(OWNER)) == 1


async def test_runs_and_deliveries_beyond_the_stores_range_are_not_found(
    service: Services,
) -> None:
    for call in (service.runs.get_run, service.runs.retry_run, service.runs.check_unacked):
        with pytest.raises(NotFound, match=f"no run #{HUGE}"):
            await call(OWNER, HUGE)
    with pytest.raises(NotFound, match=f"no delivery #{HUGE}"):
        await service.runs.retry_delivery(OWNER, HUGE)


async def test_the_largest_id_a_store_holds_is_looked_up_not_refused(service: Services) -> None:
    with pytest.raises(NotFound, match=f"no schedule #{MAX_ID}"):
        await service.schedules.get_schedule(OWNER, MAX_ID)


@pytest.mark.parametrize("name", [", ,", ";", " | ", ",;,"])
async def test_a_name_of_only_separators_is_refused_saying_what_to_type(
    service: Services, store: Store, name: str
) -> None:
    with pytest.raises(InvalidInput, match="/addcontact Anna "):
        await service.contacts.add_contact(name, "+4915112345678")
    with pytest.raises(InvalidInput, match=r"/addtemplate greeting \| Hello"):
        await service.templates.add_template(name, "Hello {first_name}!")
    assert await store.list_contacts() == [] and await store.list_templates() == []


async def test_a_name_with_separators_suggests_its_first_word(service: Services) -> None:
    with pytest.raises(InvalidInput, match="try 'Anna'"):
        await service.contacts.add_contact("Anna, Maria", "+4915112345678")


@pytest.mark.parametrize(
    "typed",
    [
        "+٤٩١٥١١٢٣٤٥٦٧",  # Arabic-Indic
        "+۴۹۱۵۱۱۲۳۴۵۶۷",  # Extended Arabic-Indic (Persian)
        "+４９１５１１２３４５６７",  # fullwidth digits
        "＋４９ １５１ １２３４５６７",  # fullwidth plus too, with spaces
        "+४९१५११२३४५६७",  # Devanagari
        "٠٠٤٩١٥١١٢٣٤٥٦٧",  # 00 instead of +
    ],
)
async def test_numbers_in_other_digit_systems_are_saved_in_ascii(
    service: Services, store: Store, typed: str
) -> None:
    assert parse_phone(typed) == "+491511234567"
    contact = await service.contacts.add_contact("Karim", typed)
    assert contact.phone == "+491511234567"
    schedule = await service.schedules.create_schedule(
        OWNER, recipients=typed, when="in 2h", text="hi"
    )
    assert [r.address for r in schedule.recipients] == ["+491511234567"]
    [stored] = await store.list_schedules()
    assert [r.address for r in stored.recipients] == ["+491511234567"]


async def test_group_ids_in_other_digit_systems_are_saved_in_ascii(store: Store) -> None:
    [group] = await parse_recipients("١٢٠٣٦٣٠٤١٢٣٤٥٦٧٨٩٠@g.us", store)
    assert group.address == "120363041234567890@g.us"


@pytest.mark.parametrize("typed", ["+⁴⁹¹⁵¹¹²³⁴⁵⁶⁷", "+49¹5112345678", "+49 151 1234 567²"])
async def test_superscript_digits_are_refused_not_stored(
    service: Services, store: Store, typed: str
) -> None:
    with pytest.raises(InvalidRecipient, match="not a phone number"):
        await service.contacts.add_contact("Karim", typed)
    with pytest.raises(InvalidRecipient):
        await service.schedules.create_schedule(OWNER, recipients=typed, when="in 2h", text="hi")
    assert await store.list_contacts() == [] and await store.list_schedules() == []
