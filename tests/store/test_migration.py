"""Contract: `export_all` of one store imports into another giving identical records."""

from __future__ import annotations

import itertools
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from core.adapters.store import Store
from core.domain.errors import AlreadyExists, DuplicateRun, TargetNotEmpty
from core.domain.models import (
    AskChoice,
    CheckedNumber,
    DeliveryFilter,
    DeliveryStatus,
    Media,
    NoAnswer,
    Recipient,
    RecipientKind,
    Rule,
    RuleKind,
    RunTrigger,
    ScheduleState,
)
from tests.store.conftest import REAL_MONGO, backend_store
from tests.store.factories import OWNER, T0, add_deliveries, add_run, add_schedule, minutes


def _pair(source: str, target: str) -> Any:
    marks = [pytest.mark.mongo] if "mongo" in (source, target) else []
    return pytest.param(source, target, id=f"{source}-to-{target}", marks=marks)


PAIRS = [_pair(s, t) for s, t in itertools.product(["sqlite", "mongo"], repeat=2)]


async def _fill(store: Store) -> None:
    """A bit of every record, in every shape a field can take."""
    await store.upsert_user(OWNER, timezone="Europe/Berlin", is_owner=True)
    await store.upsert_user(2002)
    await store.set_value("owner_code", "123456")
    await store.set_value("schema", "1")
    anna = await store.add_contact(
        "Anna", "+491511234567", whatsapp_id="491511234567@c.us", fields={"city": "Köln"}
    )
    await store.add_contact("bob", "+491510000002")
    gone = await store.add_contact("Zed", "+491510000009")
    await store.delete_contact(gone.id)
    template = await store.add_template("Greeting", "Hello {name}")
    rich = await store.add_schedule(
        owner_id=OWNER,
        recipients=[
            Recipient(
                kind=RecipientKind.contact, address=anna.phone, name="Anna", contact_id=anna.id
            ),
            Recipient(kind=RecipientKind.group, address="12036304@g.us", name="Family"),
        ],
        rule=Rule(
            kind=RuleKind.interval,
            timezone="America/New_York",
            every_seconds=3600,
            start=T0 - minutes(60),
        ),
        next_run_at=T0 + minutes(60),
        template_id=template.id,
        media=Media(mimetype="image/png", filename="cat.png", data_base64="iVBORw0KGgo="),
        misfire_grace_s=300,
    )
    paused = await add_schedule(store, next_run_at=None, state=ScheduleState.paused)
    run = await add_run(store, rich, scheduled_for=T0)
    await store.mark_run_fanned_out(run.id)
    await store.set_run_outcome(run.id, "1 sent")
    await add_run(store, rich, scheduled_for=T0, trigger=RunTrigger.manual)
    await add_run(store, paused, scheduled_for=T0 - minutes(5), trigger=RunTrigger.catch_up)
    delivered = await add_deliveries(store, 3, now=T0, run=run)
    await store.claim_delivery(now=T0, lease_s=60, worker="w1")
    await store.update_delivery(
        delivered[1].id,
        status=DeliveryStatus.read,
        attempts=1,
        whatsapp_id="true_4915@c.us_ABC",
        sent_at=T0 + minutes(1),
        delivered_at=T0 + minutes(2),
        read_at=T0 + minutes(3),
    )
    later = await add_run(store, rich, scheduled_for=T0 + minutes(1))
    await add_deliveries(store, 2, now=T0 + minutes(1), status=DeliveryStatus.held, run=later)
    await store.delete_schedule(paused.id)
    await store.save_number_checks(
        [
            CheckedNumber(
                number="+491511234567",
                on_whatsapp=True,
                whatsapp_id="491511234567@c.us",
                checked_at=T0,
            ),
            CheckedNumber(number="+491510000002", on_whatsapp=False, checked_at=T0 - minutes(1)),
        ]
    )

    # Ask me first: the schedule's setting, an answered question and an untold one.
    asking = await store.set_ask_first(
        rich.id, ask_first=True, ask_lead_s=600, on_no_answer=NoAnswer.skip
    )
    answered = await store.insert_ask(asking, T0, now=T0 - minutes(10))
    assert answered is not None
    await store.mark_ask_told(answered.id)
    await store.choose(
        answered.id, AskChoice.snooze, by=OWNER, at=T0 - minutes(5), snoozed_until=T0 + minutes(15)
    )
    await store.insert_ask(asking, T0 + minutes(60), now=T0)


@pytest.mark.parametrize(("source_backend", "target_backend"), PAIRS)
async def test_export_imports_into_any_store_with_ids_and_records_intact(
    source_backend: str, target_backend: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        (tmp_path / "source").mkdir()
        (tmp_path / "target").mkdir()
        source = await stack.enter_async_context(
            backend_store(source_backend, tmp_path / "source")
        )
        target = await stack.enter_async_context(
            backend_store(target_backend, tmp_path / "target")
        )

        await _fill(source)
        exported = await source.export_all()
        assert await target.is_empty()
        await target.import_all(exported)
        assert not await target.is_empty()

        assert await target.export_all() == exported
        assert await target.list_schedules() == await source.list_schedules()
        assert await target.list_deliveries(DeliveryFilter()) == await source.list_deliveries(
            DeliveryFilter()
        )
        assert await target.list_runs() == await source.list_runs()
        assert await target.open_asks() == await source.open_asks() != []
        assert await target.unfinished_runs() == await source.unfinished_runs()
        assert await target.list_users() == await source.list_users()
        assert await target.get_value("owner_code") == "123456"
        numbers = ["+491511234567", "+491510000002"]
        assert await target.number_checks(numbers) == await source.number_checks(numbers)
        assert len(exported["number_checks"]) == 2
        assert await target.count_deliveries() == await source.count_deliveries()
        assert await target.next_due_at() == await source.next_due_at()
        assert await target.next_delivery_due_at() == await source.next_delivery_due_at()

        # The rules hold on imported records too.
        run = await target.find_run(1, T0)
        assert run is not None and run.fanned_out
        with pytest.raises(DuplicateRun):
            await target.insert_run(
                schedule_id=run.schedule_id,
                owner_id=run.owner_id,
                scheduled_for=run.scheduled_for,
                trigger=RunTrigger.schedule,
            )
        with pytest.raises(AlreadyExists):
            await target.add_contact("ANNA", "+491510000003")
        anna = await target.find_contact("anna")
        assert anna is not None and anna.fields == {"city": "Köln"}
        # New ids continue past every id the source ever gave, deleted ones included.
        contact = await target.add_contact("Carl", "+491510000004")
        assert contact.id == 4
        schedule = await add_schedule(target)
        assert schedule.id == 3
        assert (await target.get_schedule(2)) is None
        claimed = await target.claim_delivery(now=T0 + minutes(1), lease_s=60, worker="w2")
        assert claimed is not None and claimed.id == delivered_id(exported, 0)


def delivered_id(exported: dict[str, list[dict[str, Any]]], index: int) -> int:
    """The id of the `index`-th delivery of the export, the one left with an ended lease."""
    return int(exported["deliveries"][index]["id"])


@pytest.mark.parametrize("backend", ["sqlite", REAL_MONGO])
async def test_import_refuses_a_store_holding_data(backend: str, tmp_path: Path) -> None:
    async with backend_store(backend, tmp_path) as store:
        await store.set_value("owner_code", "1")
        assert not await store.is_empty()
        with pytest.raises(TargetNotEmpty):
            await store.import_all({"users": [], "values": []})
        assert await store.get_value("owner_code") == "1"


async def test_empty_export_round_trips(store: Store) -> None:
    assert await store.is_empty()
    exported = await store.export_all()
    assert {name for name, rows in exported.items() if rows} == {"counters"}
    await store.import_all(exported)
    assert await store.is_empty()
