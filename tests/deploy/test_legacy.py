"""`wasched import-legacy`: the replaced system's MongoDB database, field by field."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from core.adapters.store import Store
from core.commands.legacy import cron_shift, import_legacy, refuse_same_database
from core.domain.errors import WaschedError
from core.domain.models import (
    DeliveryFilter,
    DeliveryStatus,
    Recipient,
    RecipientKind,
    RuleKind,
    RunTrigger,
    ScheduleState,
)
from tests.store.conftest import MONGODB_TEST_URI, REAL_MONGO

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a Saturday
OWNER = 4242
TZ = "Europe/Berlin"

CONTACTS: list[dict[str, Any]] = [
    {
        "id": "c1",
        "name": "Anna Schmidt",
        "phone": "4915112345678",
        "notes": "neighbour",
        "whatsapp_id": "4915112345678@c.us",
    },
    {"id": "c2", "name": "Ben", "phone": "+44 1632 960961", "notes": "", "whatsapp_id": None},
    {"id": "c3", "name": "", "phone": "4915100000003", "notes": None, "whatsapp_id": None},
    {"id": "c4", "name": "Short", "phone": "12345", "notes": None, "whatsapp_id": None},
]
TEMPLATES: list[dict[str, Any]] = [
    {"id": "t1", "title": "Birthday", "content": "Happy birthday, {name}!"},
    {"id": "t2", "title": "Empty", "content": ""},
]


def schedule(legacy_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": legacy_id,
        "contact_id": None,
        "contact_name": None,
        "contact_phone": None,
        "message": f"message of {legacy_id}",
        "schedule_type": "recurring",
        "scheduled_time": None,
        "cron_expression": None,
        "is_active": True,
        "last_run": None,
        "next_run": None,
    }
    base.update(fields)
    return base


SCHEDULES = [
    schedule(
        "s1",
        contact_id="c1",
        contact_name="Anna Schmidt",
        contact_phone="4915112345678",
        schedule_type="once",
        scheduled_time="2026-12-24T09:00:00",
    ),
    schedule(
        "s2",
        contact_id="c1",
        schedule_type="once",
        scheduled_time="2026-11-01T12:00:00+01:00",
        last_run="2026-11-01T12:00:02",
    ),
    schedule(
        "s3",
        contact_id="c2",
        cron_expression="0 9 * * 1-5",
        last_run="2026-11-24T09:00:00",
        next_run="2026-12-01T09:00:00",
    ),
    schedule("s4", contact_id="c2", cron_expression="30 18 * * *", is_active=False),
    schedule(
        "s5",
        contact_id="c9",
        contact_name="Carl",
        contact_phone="4915177777777",
        cron_expression="0 8 1 * sun",
    ),
    schedule("s6", contact_id="c1", cron_expression="61 * * * *"),
    schedule("s7", contact_id="c1", schedule_type="weekly", cron_expression="0 9 * * *"),
    schedule("s8", contact_id="c3", schedule_type="once", scheduled_time="2027-01-01T00:00:00"),
    schedule(
        "s9",
        contact_id="c1",
        schedule_type="once",
        scheduled_time="2027-02-01T10:00:00",
        is_active=False,
    ),
]
LOGS: list[dict[str, Any]] = [
    {
        "id": "l1",
        "contact_name": "Ben",
        "contact_phone": "441632960961",
        "message": "message of s3",
        "status": "sent",
        "error_message": None,
        "scheduled_message_id": "s3",
        "sent_at": "2026-11-24T09:00:05",
    },
    {
        "id": "l2",
        "contact_name": "Ben",
        "contact_phone": "441632960961",
        "message": "message of s3",
        "status": "failed",
        "error_message": "Evaluation failed: No LID for user",
        "scheduled_message_id": "s3",
        "sent_at": "2026-11-25T09:00:01",
    },
    {
        "id": "l3",
        "contact_name": "Anna Schmidt",
        "contact_phone": "4915112345678",
        "message": "message of s2",
        "status": "sent",
        "error_message": None,
        "scheduled_message_id": "s2",
        "sent_at": datetime(2026, 11, 1, 11, 0, 2),  # a BSON date: UTC, read back naive
    },
    {
        "id": "l4",
        "contact_name": "Zed",
        "contact_phone": "4915100000099",
        "message": "orphan",
        "status": "sent",
        "error_message": None,
        "scheduled_message_id": "s99",
        "sent_at": "2026-11-20T10:00:00",
    },
    {
        "id": "l5",
        "contact_name": "Ben",
        "contact_phone": "441632960961",
        "message": "?",
        "status": "queued-maybe",
        "error_message": None,
        "scheduled_message_id": "s3",
        "sent_at": "2026-11-26T09:00:00",
    },
]


@pytest.fixture(params=[REAL_MONGO])
async def legacy_db(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The replaced system's database as it kept it, on the real server (a database of its
    own, dropped afterwards)."""
    assert MONGODB_TEST_URI is not None
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_TEST_URI)
    name = f"whatsapp_scheduler_{uuid.uuid4().hex[:12]}"
    db = client[name]
    try:
        await db["contacts"].insert_many([dict(doc) for doc in CONTACTS])
        await db["templates"].insert_many([dict(doc) for doc in TEMPLATES])
        await db["schedules"].insert_many([dict(doc) for doc in SCHEDULES])
        await db["logs"].insert_many([dict(doc) for doc in LOGS])
        yield db
    finally:
        await client.drop_database(name)
        await client.close()


async def run_import(db: Any, store: Store) -> Any:
    return await import_legacy(db, store, owner_id=OWNER, timezone=TZ, now=NOW)


async def test_contacts_and_templates_keep_every_field(
    legacy_db: Any, sqlite_store: Store
) -> None:
    report = await run_import(legacy_db, sqlite_store)

    anna, ben = await sqlite_store.list_contacts()
    assert (anna.name, anna.phone, anna.whatsapp_id, anna.fields) == (
        "Anna Schmidt",
        "+4915112345678",
        "4915112345678@c.us",
        {"notes": "neighbour"},
    )
    assert (ben.name, ben.phone, ben.whatsapp_id, ben.fields) == (
        "Ben",
        "+441632960961",
        None,
        {},
    )
    (template,) = await sqlite_store.list_templates()
    assert (template.name, template.text) == ("Birthday", "Happy birthday, {name}!")
    assert (report.contacts, report.templates) == (2, 1)


async def test_schedules_map_rule_state_recipient_and_text(
    legacy_db: Any, sqlite_store: Store
) -> None:
    report = await run_import(legacy_db, sqlite_store)
    ids = report.schedule_ids
    anna = await sqlite_store.find_contact("Anna Schmidt")
    assert anna is not None

    async def get(legacy_id: str) -> Any:
        found = await sqlite_store.get_schedule(ids[legacy_id])
        assert found is not None
        assert found.owner_id == OWNER
        assert found.text == f"message of {legacy_id}"
        return found

    s1 = await get("s1")  # future one-time, naive time read in Europe/Berlin
    assert s1.rule.kind is RuleKind.once
    assert s1.rule.at == datetime(2026, 12, 24, 8, 0, tzinfo=UTC)
    assert (s1.state, s1.next_run_at) == (ScheduleState.active, s1.rule.at)
    assert s1.recipients == (
        Recipient(
            kind=RecipientKind.contact,
            address="+4915112345678",
            name="Anna Schmidt",
            contact_id=anna.id,
        ),
    )

    s2 = await get("s2")  # past one-time -> done
    assert (s2.state, s2.next_run_at) == (ScheduleState.done, None)
    assert s2.rule.at == datetime(2026, 11, 1, 11, 0, tzinfo=UTC)

    s3 = await get("s3")  # weekdays at 9:00 Berlin, as written; next one Monday 30 Nov
    assert (s3.rule.kind, s3.rule.cron, s3.rule.timezone) == (RuleKind.cron, "0 9 * * 1-5", TZ)
    assert s3.state is ScheduleState.active
    assert s3.next_run_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    s4 = await get("s4")  # inactive -> paused
    assert s4.state is ScheduleState.paused

    s5 = await get("s5")  # contact not imported: the schedule's own phone and name
    assert s5.recipients == (
        Recipient(kind=RecipientKind.phone, address="+4915177777777", name="Carl"),
    )

    s9 = await get("s9")  # future one-time but inactive -> paused
    assert s9.state is ScheduleState.paused
    assert sorted(report.paused) == sorted([ids["s4"], ids["s9"]])
    assert report.done == [ids["s2"]]
    assert set(ids) == {"s1", "s2", "s3", "s4", "s5", "s9"}


async def test_cron_day_of_week_shift_is_listed_for_each_affected_schedule(
    legacy_db: Any, sqlite_store: Store
) -> None:
    report = await run_import(legacy_db, sqlite_store)

    shifted = {shift.legacy_id: shift for shift in report.cron_shifts}
    assert set(shifted) == {"s3", "s5"}  # s4 runs every day: nothing moved
    s3 = shifted["s3"]
    assert s3.schedule_id == report.schedule_ids["s3"]
    assert s3.written == "on Monday, Tuesday, Wednesday, Thursday, Friday"
    assert s3.legacy_ran == "on Tuesday, Wednesday, Thursday, Friday, Saturday"
    assert shifted["s5"].legacy_ran == "on Monday"
    text = "\n".join(report.lines())
    assert f"#{s3.schedule_id} (legacy s3) '0 9 * * 1-5'" in text
    assert "one day later" in text


async def test_logs_become_run_history_with_deliveries(
    legacy_db: Any, sqlite_store: Store
) -> None:
    report = await run_import(legacy_db, sqlite_store)
    s3 = report.schedule_ids["s3"]

    runs = await sqlite_store.list_runs(schedule_id=s3)
    assert [run.scheduled_for for run in runs] == [
        datetime(2026, 11, 25, 8, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 24, 8, 0, 5, tzinfo=UTC),
    ]
    assert all(run.trigger is RunTrigger.schedule and run.fanned_out for run in runs)
    deliveries = await sqlite_store.list_deliveries(DeliveryFilter(schedule_id=s3, order="oldest"))
    sent, failed = deliveries
    assert (sent.status, sent.recipient, sent.recipient_name, sent.text) == (
        DeliveryStatus.sent,
        "+441632960961",
        "Ben",
        "message of s3",
    )
    assert sent.sent_at == datetime(2026, 11, 24, 8, 0, 5, tzinfo=UTC)
    assert failed.status is DeliveryStatus.failed
    assert failed.last_error == "Evaluation failed: No LID for user"
    assert failed.failed_at == datetime(2026, 11, 25, 8, 0, 1, tzinfo=UTC)

    (old,) = await sqlite_store.list_deliveries(
        DeliveryFilter(schedule_id=report.schedule_ids["s2"])
    )
    assert old.sent_at == datetime(2026, 11, 1, 11, 0, 2, tzinfo=UTC)
    assert (report.runs, report.deliveries) == (3, 3)
    # Imported history is final: nothing is queued to be sent again.
    counts = await sqlite_store.count_deliveries()
    assert counts.get(DeliveryStatus.queued, 0) == 0


async def test_everything_skipped_is_listed_with_its_reason(
    legacy_db: Any, sqlite_store: Store
) -> None:
    report = await run_import(legacy_db, sqlite_store)

    reasons = {(s.collection, s.legacy_id): s.reason for s in report.skipped}
    assert reasons[("contact", "c3")] == "it has no name"
    assert "5 digits" in reasons[("contact", "c4")]
    assert reasons[("template", "t2")] == "'Empty' has no content"
    assert "cannot be read" in reasons[("schedule", "s6")]
    assert "'weekly' is neither 'once' nor 'recurring'" in reasons[("schedule", "s7")]
    assert "contact c3 was not imported" in reasons[("schedule", "s8")]
    assert reasons[("log", "l4")] == "its schedule s99 was not imported"
    assert "'queued-maybe' is unknown" in reasons[("log", "l5")]
    assert len(report.skipped) == 8
    text = "\n".join(report.lines())
    assert "Skipped 8:" in text and "log l4: its schedule s99 was not imported" in text


async def test_a_second_import_into_the_same_store_is_refused(
    legacy_db: Any, sqlite_store: Store
) -> None:
    await run_import(legacy_db, sqlite_store)
    with pytest.raises(WaschedError, match="already received a legacy import"):
        await run_import(legacy_db, sqlite_store)
    assert len(await sqlite_store.list_contacts()) == 2


def test_cron_shift_reads_names_ranges_steps_and_sunday_as_0_or_7() -> None:
    assert cron_shift("0 9 * * *") is None
    assert cron_shift("0 9 * * 0") == ("on Sunday", "on Monday")
    assert cron_shift("0 9 * * 7") == ("on Sunday", "on Monday")
    assert cron_shift("0 9 * * sat") == ("on Saturday", "on Sunday")
    assert cron_shift("0 9 * * */2") == (
        "on Sunday, Tuesday, Thursday, Saturday",
        "on Sunday, Monday, Wednesday, Friday",
    )


def test_import_never_writes_into_the_legacy_database_itself() -> None:
    with pytest.raises(WaschedError, match="old system's database"):
        refuse_same_database("mongodb://db:27017/whatsapp_scheduler", "whatsapp_scheduler")
    refuse_same_database("mongodb://db:27017/wasched", "whatsapp_scheduler")
    refuse_same_database("sqlite:///data/wasched.db", "whatsapp_scheduler")


async def test_name_for_a_number_without_a_name_is_imported_and_listed(
    legacy_db: Any, sqlite_store: Store
) -> None:
    await legacy_db["schedules"].insert_many(
        [
            schedule("s10", contact_phone="4915100000010", message="Hi {first_name}!"),
            schedule("s11", contact_phone="4915100000011", message="Hi {{name}}, no variable"),
            schedule(
                "s12",
                contact_name="Dora",
                contact_phone="4915100000012",
                message="Hi {name}!",
            ),
        ]
    )
    for legacy_id in ("s10", "s11", "s12"):
        await legacy_db["schedules"].update_one(
            {"id": legacy_id}, {"$set": {"cron_expression": "0 9 * * *"}}
        )

    report = await run_import(legacy_db, sqlite_store)

    assert report.unnamed == [(report.schedule_ids["s10"], "+4915100000010")]
    text = "\n".join(report.lines())
    assert "{name} without a name" in text
    assert f"  #{report.schedule_ids['s10']}: +4915100000010" in text
