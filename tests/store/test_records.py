"""Contract: users, values, contacts, templates and schedules behave alike on every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.adapters.store import Store
from core.domain.errors import AlreadyExists, NotFound
from core.domain.models import Media, Recipient, RecipientKind, Rule, RuleKind, ScheduleState
from tests.store.conftest import FERRETDB_UPDATE_DUPLICATE, backend_of, expect_ferretdb_gap
from tests.store.factories import OWNER, T0, add_run, add_schedule, minutes, phone


async def test_ping_answers_on_an_open_store(store: Store) -> None:
    await store.ping()


# users ------------------------------------------------------------------------------------


async def test_upsert_user_creates_then_changes_only_the_given_fields(store: Store) -> None:
    assert await store.get_user(42) is None
    created = await store.upsert_user(42, timezone="Europe/Berlin")
    assert (created.telegram_id, created.timezone, created.is_owner) == (
        42,
        "Europe/Berlin",
        False,
    )
    assert created.created_at.tzinfo is not None

    owner = await store.upsert_user(42, is_owner=True)
    assert (owner.timezone, owner.is_owner, owner.created_at) == (
        "Europe/Berlin",
        True,
        created.created_at,
    )
    cleared = await store.upsert_user(42, timezone=None)
    assert (cleared.timezone, cleared.is_owner) == (None, True)
    assert await store.upsert_user(42) == cleared
    assert await store.get_user(42) == cleared


async def test_list_users_orders_by_telegram_id(store: Store) -> None:
    for telegram_id in (30, 10, 20):
        await store.upsert_user(telegram_id)
    assert [user.telegram_id for user in await store.list_users()] == [10, 20, 30]


# values -----------------------------------------------------------------------------------


async def test_values_are_set_overwritten_and_removed_with_none(store: Store) -> None:
    assert await store.get_value("owner_code") is None
    await store.set_value("owner_code", "123456")
    await store.set_value("owner_code", "654321")
    assert await store.get_value("owner_code") == "654321"
    await store.set_value("owner_code", None)
    assert await store.get_value("owner_code") is None
    await store.set_value("owner_code", None)


# contacts ---------------------------------------------------------------------------------


async def test_contact_round_trips_every_field(store: Store) -> None:
    contact = await store.add_contact(
        "Anna Müller", "+491511234567", whatsapp_id="491511234567@c.us", fields={"city": "Köln"}
    )
    assert contact.id > 0
    assert (contact.name, contact.phone, contact.whatsapp_id, contact.fields) == (
        "Anna Müller",
        "+491511234567",
        "491511234567@c.us",
        {"city": "Köln"},
    )
    assert await store.get_contact(contact.id) == contact
    assert await store.get_contact(contact.id + 100) is None


async def test_contact_names_are_unique_and_found_ignoring_case(store: Store) -> None:
    anna = await store.add_contact("Anna", "+491511234567")
    assert await store.find_contact("aNNA") == anna
    assert await store.find_contact("Ann") is None
    with pytest.raises(AlreadyExists):
        await store.add_contact("ANNA", "+491519999999")
    assert [c.name for c in await store.list_contacts()] == ["Anna"]


async def test_contacts_get_distinct_ids_and_list_by_name(store: Store) -> None:
    bob = await store.add_contact("bob", "+491510000002")
    anna = await store.add_contact("Anna", "+491510000001")
    assert bob.id != anna.id
    assert [c.name for c in await store.list_contacts()] == ["Anna", "bob"]


async def test_update_contact_changes_given_fields_and_refuses_a_taken_name(
    store: Store, request: pytest.FixtureRequest
) -> None:
    expect_ferretdb_gap(request, backend_of(request), FERRETDB_UPDATE_DUPLICATE)
    anna = await store.add_contact("Anna", "+491510000001", fields={"city": "Köln"})
    await store.add_contact("Bob", "+491510000002")

    renamed = await store.update_contact(anna.id, name="Anne", whatsapp_id="x@c.us")
    assert (renamed.name, renamed.phone, renamed.whatsapp_id, renamed.fields) == (
        "Anne",
        "+491510000001",
        "x@c.us",
        {"city": "Köln"},
    )
    assert await store.find_contact("anne") == renamed
    assert await store.find_contact("anna") is None

    refilled = await store.update_contact(anna.id, fields={}, whatsapp_id=None)
    assert (refilled.fields, refilled.whatsapp_id) == ({}, None)
    assert await store.update_contact(anna.id) == refilled
    # Changing only the case of one's own name is no clash.
    assert (await store.update_contact(anna.id, name="ANNE")).name == "ANNE"

    with pytest.raises(AlreadyExists):
        await store.update_contact(anna.id, name="bob")
    with pytest.raises(NotFound):
        await store.update_contact(anna.id + 100, phone="+491510000003")


async def test_delete_contact_says_whether_it_existed(store: Store) -> None:
    anna = await store.add_contact("Anna", "+491510000001")
    assert await store.delete_contact(anna.id) is True
    assert await store.delete_contact(anna.id) is False
    assert await store.get_contact(anna.id) is None
    # The name is free again.
    assert (await store.add_contact("anna", "+491510000001")).id != anna.id


# templates --------------------------------------------------------------------------------


async def test_templates_are_unique_by_name_ignoring_case(store: Store) -> None:
    greeting = await store.add_template("Greeting", "Hello {name}")
    assert await store.get_template(greeting.id) == greeting
    assert await store.find_template("GREETING") == greeting
    with pytest.raises(AlreadyExists):
        await store.add_template("greeting", "Hi")
    other = await store.add_template("Birthday", "Happy birthday {first_name}")
    assert [t.name for t in await store.list_templates()] == ["Birthday", "Greeting"]
    assert await store.delete_template(other.id) is True
    assert await store.delete_template(other.id) is False
    assert await store.get_template(other.id) is None
    assert await store.find_template("birthday") is None


# schedules --------------------------------------------------------------------------------


async def test_schedule_round_trips_every_field(store: Store) -> None:
    template = await store.add_template("Greeting", "Hello {name}")
    recipients = [
        Recipient(kind=RecipientKind.phone, address="+491511234567"),
        Recipient(kind=RecipientKind.contact, address="+491517654321", name="Anna", contact_id=3),
        Recipient(kind=RecipientKind.group, address="12036304@g.us", name="Family"),
    ]
    rule = Rule(
        kind=RuleKind.interval,
        timezone="America/New_York",
        every_seconds=7200,
        start=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    )
    media = Media(mimetype="image/png", filename="cat.png", data_base64="iVBORw0KGgo=")
    schedule = await store.add_schedule(
        owner_id=OWNER,
        recipients=recipients,
        rule=rule,
        next_run_at=T0,
        template_id=template.id,
        media=media,
        state=ScheduleState.paused,
        misfire_grace_s=600,
    )
    assert schedule.recipients == tuple(recipients)
    assert (schedule.rule, schedule.media, schedule.template_id) == (rule, media, template.id)
    assert (schedule.state, schedule.next_run_at, schedule.misfire_grace_s) == (
        ScheduleState.paused,
        T0,
        600,
    )
    assert schedule.text is None
    assert schedule.owner_id == OWNER
    assert schedule.created_at == schedule.updated_at
    assert await store.get_schedule(schedule.id) == schedule
    assert await store.get_schedule(schedule.id + 100) is None


async def test_once_rule_instant_comes_back_as_the_same_utc_instant(store: Store) -> None:
    berlin_evening = datetime(2026, 12, 24, 18, 0, tzinfo=timezone(timedelta(hours=1)))
    rule = Rule(kind=RuleKind.once, timezone="Europe/Berlin", at=berlin_evening)
    schedule = await store.add_schedule(
        owner_id=OWNER, recipients=[phone(1)], rule=rule, next_run_at=berlin_evening, text="Hi"
    )
    loaded = await store.get_schedule(schedule.id)
    assert loaded is not None
    assert loaded.rule.at == berlin_evening
    assert loaded.next_run_at == berlin_evening
    assert loaded.next_run_at is not None and loaded.next_run_at.utcoffset() == timedelta(0)


async def test_list_schedules_filters_by_owner_and_state_in_id_order(store: Store) -> None:
    a = await add_schedule(store, owner_id=1)
    b = await add_schedule(store, owner_id=2, state=ScheduleState.paused)
    c = await add_schedule(store, owner_id=1, state=ScheduleState.done)
    assert [s.id for s in await store.list_schedules()] == [a.id, b.id, c.id]
    assert [s.id for s in await store.list_schedules(owner_id=1)] == [a.id, c.id]
    both = await store.list_schedules(states=[ScheduleState.active, ScheduleState.paused])
    assert [s.id for s in both] == [a.id, b.id]
    assert await store.list_schedules(owner_id=2, states=[ScheduleState.done]) == []
    assert await store.list_schedules(states=[]) == []


async def test_update_schedule_changes_given_fields_only(store: Store) -> None:
    schedule = await add_schedule(store)
    rule = Rule(kind=RuleKind.once, timezone="UTC", at=T0 + minutes(30))
    updated = await store.update_schedule(
        schedule.id,
        text="Bye",
        rule=rule,
        recipients=[phone(2), phone(3)],
        next_run_at=T0 + minutes(30),
    )
    assert (updated.text, updated.rule, updated.recipients) == ("Bye", rule, (phone(2), phone(3)))
    assert updated.next_run_at == T0 + minutes(30)
    assert (updated.state, updated.created_at) == (schedule.state, schedule.created_at)
    assert updated.updated_at >= schedule.updated_at
    media = Media(mimetype="image/png", filename="a.png", data_base64="AA==")
    paused = await store.update_schedule(
        schedule.id, state=ScheduleState.paused, next_run_at=None, media=media
    )
    assert (paused.state, paused.next_run_at, paused.media, paused.text) == (
        ScheduleState.paused,
        None,
        media,
        "Bye",
    )
    cleared = await store.update_schedule(schedule.id, media=None, text=None, template_id=7)
    assert (cleared.media, cleared.text, cleared.template_id) == (None, None, 7)
    assert await store.get_schedule(schedule.id) == cleared
    with pytest.raises(NotFound):
        await store.update_schedule(schedule.id + 100, text="x")


async def test_delete_schedule_keeps_its_runs_for_the_logs(store: Store) -> None:
    schedule = await add_schedule(store)
    run = await add_run(store, schedule)
    assert await store.delete_schedule(schedule.id) is True
    assert await store.delete_schedule(schedule.id) is False
    assert await store.get_schedule(schedule.id) is None
    assert await store.get_run(run.id) == run
    # A deleted schedule's id is never given again, so old runs never point at a new one.
    assert (await add_schedule(store)).id > schedule.id


async def test_advance_schedule_is_a_compare_and_set_on_next_run_at(store: Store) -> None:
    schedule = await add_schedule(store, next_run_at=T0)
    assert await store.advance_schedule(
        schedule.id, expected_next_run_at=T0, next_run_at=T0 + minutes(60)
    )
    # A second process still holding the old value loses.
    assert not await store.advance_schedule(
        schedule.id, expected_next_run_at=T0, next_run_at=T0 + minutes(60)
    )
    loaded = await store.get_schedule(schedule.id)
    assert loaded is not None
    assert (loaded.next_run_at, loaded.state) == (T0 + minutes(60), ScheduleState.active)

    assert await store.advance_schedule(
        schedule.id,
        expected_next_run_at=T0 + minutes(60),
        next_run_at=None,
        state=ScheduleState.done,
    )
    loaded = await store.get_schedule(schedule.id)
    assert loaded is not None
    assert (loaded.next_run_at, loaded.state) == (None, ScheduleState.done)
    # None is a value to compare too.
    assert await store.advance_schedule(
        schedule.id, expected_next_run_at=None, next_run_at=T0, state=ScheduleState.active
    )
    assert not await store.advance_schedule(
        schedule.id + 100, expected_next_run_at=T0, next_run_at=None
    )


async def test_advance_schedule_compares_instants_not_time_zones(store: Store) -> None:
    schedule = await add_schedule(store, next_run_at=T0)
    same_instant = T0.astimezone(timezone(timedelta(hours=-5)))
    assert await store.advance_schedule(
        schedule.id, expected_next_run_at=same_instant, next_run_at=T0 + minutes(1)
    )


async def test_due_schedules_are_active_and_due_earliest_first(store: Store) -> None:
    late = await add_schedule(store, next_run_at=T0 - minutes(1))
    early = await add_schedule(store, next_run_at=T0 - minutes(10))
    exactly_now = await add_schedule(store, next_run_at=T0)
    tie = await add_schedule(store, next_run_at=T0 - minutes(10))
    await add_schedule(store, next_run_at=T0 + minutes(1))
    await add_schedule(store, next_run_at=T0 - minutes(5), state=ScheduleState.paused)
    await add_schedule(store, next_run_at=T0 - minutes(5), state=ScheduleState.done)
    await add_schedule(store, next_run_at=None)

    due = await store.due_schedules(T0)
    assert [s.id for s in due] == [early.id, tie.id, late.id, exactly_now.id]
    assert [s.id for s in await store.due_schedules(T0, limit=2)] == [early.id, tie.id]
    assert await store.due_schedules(T0 - minutes(11)) == []


async def test_next_due_at_is_the_earliest_active_next_run(store: Store) -> None:
    assert await store.next_due_at() is None
    await add_schedule(store, next_run_at=None)
    assert await store.next_due_at() is None
    await add_schedule(store, next_run_at=T0 + minutes(5))
    await add_schedule(store, next_run_at=T0 - minutes(5), state=ScheduleState.paused)
    await add_schedule(store, next_run_at=T0 + minutes(2))
    assert await store.next_due_at() == T0 + minutes(2)


async def test_count_schedules_counts_every_state(store: Store) -> None:
    assert await store.count_schedules() == {state: 0 for state in ScheduleState}
    await add_schedule(store)
    await add_schedule(store)
    await add_schedule(store, state=ScheduleState.paused)
    assert await store.count_schedules() == {
        ScheduleState.active: 2,
        ScheduleState.paused: 1,
        ScheduleState.done: 0,
    }


async def test_datetimes_come_back_aware_utc_to_the_millisecond(store: Store) -> None:
    precise = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    schedule = await add_schedule(store, next_run_at=precise)
    loaded = await store.get_schedule(schedule.id)
    assert loaded is not None and loaded.next_run_at is not None
    assert loaded.next_run_at == datetime(2026, 11, 28, 10, 0, 0, 123000, tzinfo=UTC)
    assert loaded.next_run_at.utcoffset() == timedelta(0)
    assert loaded.created_at.utcoffset() == timedelta(0)
    # Comparing with the precise value works too: both sides are truncated alike.
    assert await store.advance_schedule(
        schedule.id, expected_next_run_at=precise, next_run_at=None
    )


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await add_schedule(store, next_run_at=datetime(2026, 11, 28, 10, 0))


async def test_a_limit_of_zero_or_less_returns_nothing(store: Store) -> None:
    await add_schedule(store, next_run_at=T0)
    await add_run(store)
    assert await store.due_schedules(T0, limit=0) == []
    assert await store.due_schedules(T0, limit=-1) == []
    assert await store.list_runs(limit=0) == []
    assert await store.list_runs(limit=-5) == []
