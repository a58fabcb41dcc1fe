"""Schedules to contacts by the start of their name and to WhatsApp groups by their name."""

from __future__ import annotations

import pytest

from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppGroup
from core.domain.errors import InvalidRecipient
from core.domain.models import RecipientKind
from core.services import Services
from tests.fakes.sidecar import FakeSidecar
from tests.service.conftest import OWNER

FAMILY_ID = "120363041234567890@g.us"


async def test_the_readme_example_schedules_to_anna_and_ben_by_first_name(
    service: Services,
) -> None:
    await service.contacts.add_contact("Anna Schmidt", "+4915111111111")
    await service.contacts.add_contact("Ben Meyer", "+4915133333333")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="Anna, Ben", when="every monday 9:00", text="Hi {first_name}!"
    )
    assert [(r.name, r.address) for r in schedule.recipients] == [
        ("Anna Schmidt", "+4915111111111"),
        ("Ben Meyer", "+4915133333333"),
    ]
    preview = await service.schedules.preview(schedule.owner_id, schedule.id)
    assert [m.text for m in preview.messages] == ["Hi Anna!", "Hi Ben!"]


async def test_a_group_named_is_stored_with_its_id_and_name_and_its_deliveries_say_it(
    service: Services, whatsapp: FakeSidecar, store: Store
) -> None:
    whatsapp.group_list = [WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a", "b"))]
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="Family", when="tomorrow 9:00", text="Dinner at 8"
    )
    [group] = schedule.recipients
    assert (group.kind, group.address, group.name) == (RecipientKind.group, FAMILY_ID, "Family")
    assert (await store.get_schedule(schedule.id)) == schedule
    _run, [delivery] = await service.runs.run_now(schedule.owner_id, schedule.id)
    assert (delivery.recipient, delivery.recipient_name) == (FAMILY_ID, "Family")


async def test_a_group_name_while_whatsapp_is_not_linked_is_refused_and_nothing_stored(
    service: Services, whatsapp: FakeSidecar
) -> None:
    whatsapp.group_list = [WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a",))]
    whatsapp.state = "SCAN_QR_CODE"
    with pytest.raises(InvalidRecipient, match=r"not linked .* /link") as caught:
        await service.schedules.create_schedule(
            OWNER, recipients="Family", when="tomorrow 9:00", text="x"
        )
    assert "'Family'" in str(caught.value)
    assert await service.schedules.list_schedules() == []


async def test_a_contact_named_exactly_needs_no_question_to_whatsapp(
    service: Services, whatsapp: FakeSidecar
) -> None:
    await service.contacts.add_contact("Anna", "+4915111111111")
    await service.schedules.create_schedule(
        OWNER, recipients="anna", when="tomorrow 9:00", text="x"
    )
    assert whatsapp.asked("GET /groups") == []


async def test_edit_to_a_name_several_match_is_refused_naming_them(service: Services) -> None:
    await service.contacts.add_contact("Anna Schmidt", "+4915111111111")
    await service.contacts.add_contact("Andreas", "+4915122222222")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+4915199999990", when="tomorrow 9:00", text="x"
    )
    with pytest.raises(InvalidRecipient, match="full name") as caught:
        await service.schedules.edit_schedule(schedule.owner_id, schedule.id, recipients="An")
    assert "Anna Schmidt" in str(caught.value) and "Andreas" in str(caught.value)
    assert (
        await service.schedules.get_schedule(schedule.owner_id, schedule.id)
    ).recipients == schedule.recipients


@pytest.mark.parametrize("typed", ["Family", "Fam"])
async def test_a_name_is_not_taken_for_a_contact_it_starts_while_groups_cannot_be_read(
    service: Services, whatsapp: FakeSidecar, typed: str
) -> None:
    # With the sidecar up, "Family" is the group; down, it must not become "Family Doctor".
    await service.contacts.add_contact("Family Doctor", "+4915111111111")
    whatsapp.group_list = [WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a",))]
    await whatsapp.go_down()  # connection refused
    with pytest.raises(InvalidRecipient, match="does not answer") as caught:
        await service.schedules.create_schedule(
            OWNER, recipients=typed, when="tomorrow 9:00", text="x"
        )
    assert f"{typed!r}" in str(caught.value)
    assert "full name" in str(caught.value) and "+49" in str(caught.value)
    with pytest.raises(InvalidRecipient, match="does not answer"):
        await service.schedules.resolve_recipients(typed)
    assert await service.schedules.list_schedules() == []


async def test_a_contact_s_full_name_still_works_while_groups_cannot_be_read(
    service: Services, whatsapp: FakeSidecar
) -> None:
    await service.contacts.add_contact("Family Doctor", "+4915111111111")
    await whatsapp.go_down()  # connection refused
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="family  doctor", when="tomorrow 9:00", text="x"
    )
    assert [r.name for r in schedule.recipients] == ["Family Doctor"]


async def test_edit_to_a_group_name_two_groups_share_says_to_type_its_id(
    service: Services, whatsapp: FakeSidecar
) -> None:
    other = "120363049999991111@g.us"
    whatsapp.group_list = [
        WhatsAppGroup(id=FAMILY_ID, name="Family", participants=("a", "b")),
        WhatsAppGroup(id=other, name="Family", participants=("c",)),
    ]
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+4915199999990", when="tomorrow 9:00", text="x"
    )
    with pytest.raises(InvalidRecipient) as caught:
        await service.schedules.edit_schedule(schedule.owner_id, schedule.id, recipients="Family")
    refusal = str(caught.value)
    assert "Family (group …7890)" in refusal and "Family (group …1111)" in refusal
    assert "full name" not in refusal and "id" in refusal and "/groups" in refusal
    assert (
        await service.schedules.get_schedule(schedule.owner_id, schedule.id)
    ).recipients == schedule.recipients
    edited = await service.schedules.edit_schedule(
        schedule.owner_id, schedule.id, recipients=other
    )
    assert [(r.address, r.name) for r in edited.recipients] == [(other, "Family")]


async def test_a_typed_name_goes_to_the_contact_of_exactly_that_name_not_one_spaced_otherwise(
    service: Services, store: Store
) -> None:
    # The store keeps names as given (an export may carry one spaced twice); only typed names
    # are tidied.
    await store.add_contact("Anna  Schmidt", "+4915111111111")
    await store.add_contact("Anna Schmidt", "+4915122222222")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="anna   schmidt", when="tomorrow 9:00", text="x"
    )
    assert [r.address for r in schedule.recipients] == ["+4915122222222"]
