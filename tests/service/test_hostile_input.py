"""Hostile input at the service: ids no store can hold, names made of separators, and numbers
written in other digit systems are refused or normalised, never stored as they came."""

from __future__ import annotations

import csv
import io

import pytest

from core.adapters.store import Store
from core.domain.errors import InvalidInput, InvalidRecipient, NotFound
from core.domain.recipients import parse_phone, parse_recipients
from core.services.scheduling import MAX_ID, Scheduling

from .conftest import OWNER

HUGE = 99999999999999999999  # the fuzz run's id: past SQLite INTEGER and BSON int64


@pytest.mark.parametrize("schedule_id", [HUGE, MAX_ID + 1, 0, -(2**70)])
async def test_ids_beyond_the_stores_range_are_no_such_schedule(
    service: Scheduling, schedule_id: int
) -> None:
    await service.create_schedule(OWNER, recipients="+4915123456789", when="in 2h", text="hi")
    for call in (
        service.get_schedule,
        service.pause,
        service.resume,
        service.delete,
        service.run_now,
        service.preview,
    ):
        with pytest.raises(NotFound, match=f"no schedule #{schedule_id}"):
            await call(schedule_id)
    with pytest.raises(NotFound, match=f"no schedule #{schedule_id}"):
        await service.edit_schedule(schedule_id, text="new")
    assert await service.logs(schedule_id=schedule_id, owner_id=OWNER) == []
    rows = list(
        csv.reader(io.StringIO((await service.export_csv(schedule_id=schedule_id)).decode()))
    )
    assert len(rows) == 1  # the header only
    assert len(await service.list_schedules(OWNER)) == 1


async def test_runs_and_deliveries_beyond_the_stores_range_are_not_found(
    service: Scheduling,
) -> None:
    for call in (service.get_run, service.retry_run, service.check_unacked):
        with pytest.raises(NotFound, match=f"no run #{HUGE}"):
            await call(HUGE)
    with pytest.raises(NotFound, match=f"no delivery #{HUGE}"):
        await service.retry_delivery(HUGE)


async def test_the_largest_id_a_store_holds_is_looked_up_not_refused(service: Scheduling) -> None:
    with pytest.raises(NotFound, match=f"no schedule #{MAX_ID}"):
        await service.get_schedule(MAX_ID)


@pytest.mark.parametrize("name", [", ,", ";", " | ", ",;,"])
async def test_a_name_of_only_separators_is_refused_saying_what_to_type(
    service: Scheduling, store: Store, name: str
) -> None:
    with pytest.raises(InvalidInput, match="/addcontact Anna "):
        await service.add_contact(name, "+4915112345678")
    with pytest.raises(InvalidInput, match=r"/addtemplate greeting \| Hello"):
        await service.add_template(name, "Hello {first_name}!")
    assert await store.list_contacts() == [] and await store.list_templates() == []


async def test_a_name_with_separators_suggests_its_first_word(service: Scheduling) -> None:
    with pytest.raises(InvalidInput, match="try 'Anna'"):
        await service.add_contact("Anna, Maria", "+4915112345678")


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
    service: Scheduling, store: Store, typed: str
) -> None:
    assert parse_phone(typed) == "+491511234567"
    contact = await service.add_contact("Karim", typed)
    assert contact.phone == "+491511234567"
    schedule = await service.create_schedule(OWNER, recipients=typed, when="in 2h", text="hi")
    assert [r.address for r in schedule.recipients] == ["+491511234567"]
    [stored] = await store.list_schedules()
    assert [r.address for r in stored.recipients] == ["+491511234567"]


async def test_group_ids_in_other_digit_systems_are_saved_in_ascii(store: Store) -> None:
    [group] = await parse_recipients("١٢٠٣٦٣٠٤١٢٣٤٥٦٧٨٩٠@g.us", store)
    assert group.address == "120363041234567890@g.us"


@pytest.mark.parametrize("typed", ["+⁴⁹¹⁵¹¹²³⁴⁵⁶⁷", "+49¹5112345678", "+49 151 1234 567²"])
async def test_superscript_digits_are_refused_not_stored(
    service: Scheduling, store: Store, typed: str
) -> None:
    with pytest.raises(InvalidRecipient, match="not a phone number"):
        await service.add_contact("Karim", typed)
    with pytest.raises(InvalidRecipient):
        await service.create_schedule(OWNER, recipients=typed, when="in 2h", text="hi")
    assert await store.list_contacts() == [] and await store.list_schedules() == []
