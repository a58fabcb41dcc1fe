"""Before a run's messages go out, numbers WhatsApp was not asked about yet are checked; one
without WhatsApp fails at once (not sent, not retried, no attempt) and the rest go out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.adapters.whatsapp import WhatsAppClient
from core.app import Core
from core.delivery.numbers import (
    NOT_ON_WHATSAPP_KEPT,
    ON_WHATSAPP_KEPT,
    NumberGuard,
    NumberVerdict,
)
from core.domain.clock import FakeClock, SystemClock
from core.domain.models import DeliveryStatus, Recipient, RecipientKind, Rule, RuleKind
from tests.engine.conftest import PHONE, CoreFactory, deliveries, eventually
from tests.fakes.sidecar import FakeSidecar

GONE = "+4915199999999"  # a number the sidecar says has no WhatsApp account


async def saved_while_unlinked(core: Core, sidecar: FakeSidecar) -> int:
    """A schedule to PHONE and GONE saved while WhatsApp could not be asked (both unchecked),
    then WhatsApp linked again, GONE now known to it as a number without an account."""
    sidecar.state = "SCAN_QR_CODE"
    schedule = await core.services.schedules.create_schedule(
        7, recipients=f"{PHONE}, {GONE}", when="tomorrow 9:00", text="Hello"
    )
    assert await core.services.schedules.unchecked_numbers(schedule) == [PHONE, GONE]
    assert sidecar.checks == []  # refused (409) before any lookup
    sidecar.state, sidecar.not_on_whatsapp = "WORKING", {GONE}
    return schedule.id


async def test_a_number_without_whatsapp_fails_at_fan_out_and_the_rest_go_out(
    core: Core, sidecar: FakeSidecar
) -> None:
    schedule_id = await saved_while_unlinked(core, sidecar)

    run, _ = await core.services.runs.run_now(7, schedule_id)

    await eventually(lambda: len(sidecar.outbox) == 1, what="the good number's send")
    sent, gone = await deliveries(core, run_id=run.id)
    assert gone.recipient == GONE and gone.status is DeliveryStatus.failed
    assert gone.error_code == "not_on_whatsapp" and gone.attempts == 0
    assert gone.last_error is not None and "has no WhatsApp account" in gone.last_error
    assert f"/edit {schedule_id}" in gone.last_error
    assert sent.recipient == PHONE
    assert [record.to for record in sidecar.outbox] == [PHONE]
    assert sidecar.requests == 1  # no POST /messages for GONE
    assert sidecar.checks == [[PHONE, GONE]]


async def test_numbers_checked_once_are_not_asked_again_by_the_next_run(
    core: Core, sidecar: FakeSidecar
) -> None:
    schedule_id = await saved_while_unlinked(core, sidecar)
    for sends in (1, 2, 3):
        run, _ = await core.services.runs.run_now(7, schedule_id)
        await eventually(lambda: len(sidecar.outbox) == sends, what=f"send {sends}")  # noqa: B023
        statuses = [d.status for d in await deliveries(core, run_id=run.id)]
        assert DeliveryStatus.failed in statuses
    assert sidecar.checks == [[PHONE, GONE]]  # one lookup, remembered for the next runs
    assert sidecar.requests == 3


async def test_a_scheduled_run_checks_its_numbers_as_the_engine_fans_it_out(
    start_core: CoreFactory, sidecar: FakeSidecar
) -> None:
    """The engine's own path (APScheduler firing), not run now."""
    core = await start_core(clock_=SystemClock())
    sidecar.not_on_whatsapp = {GONE}
    at = datetime.now(UTC) + timedelta(seconds=1)
    await core.store.add_schedule(
        owner_id=7,
        recipients=[
            Recipient(kind=RecipientKind.phone, address=PHONE),
            Recipient(kind=RecipientKind.phone, address=GONE),
            Recipient(kind=RecipientKind.group, address="1203630@g.us", name="Family"),
        ],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=at),
        next_run_at=at,
        text="on time",
    )
    core.engine.schedules_changed()

    await eventually(lambda: len(sidecar.outbox) == 2, within_s=15, what="the two sends")
    assert sorted(record.to for record in sidecar.outbox) == [PHONE, "1203630@g.us"]
    assert sidecar.checks == [[PHONE, GONE]]  # the group is not looked up
    [gone] = [d for d in await deliveries(core) if d.recipient == GONE]
    assert gone.status is DeliveryStatus.failed and gone.error_code == "not_on_whatsapp"


async def test_a_run_whose_numbers_cannot_be_checked_is_sent_and_the_sidecar_refuses_the_bad_one(
    core: Core, sidecar: FakeSidecar
) -> None:
    """A failing lookup never blocks a run: the sidecar's own lookup at send time still
    refuses a number without WhatsApp (permanent: one request, no retry)."""
    schedule_id = await saved_while_unlinked(core, sidecar)
    sidecar.check_fails = True

    run, _ = await core.services.runs.run_now(7, schedule_id)

    async def both_final() -> bool:
        found = await deliveries(core, run_id=run.id)
        return all(d.status in (DeliveryStatus.read, DeliveryStatus.failed) for d in found)

    await eventually(both_final, what="both deliveries final")
    sent, gone = await deliveries(core, run_id=run.id)
    assert sent.status is DeliveryStatus.read
    assert gone.status is DeliveryStatus.failed and gone.error_code == "not_on_whatsapp"
    assert gone.attempts == 1
    assert sidecar.requests == 2
    assert await core.services.schedules.unchecked_numbers(
        await core.services.schedules.get_schedule(7, schedule_id)
    ) == [PHONE, GONE]


async def test_an_answer_is_remembered_for_its_time_then_asked_again(
    core: Core, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    """Has WhatsApp: 30 days; has none: a day (people join later)."""
    client = WhatsAppClient(sidecar.url, sidecar.api_key)
    guard = NumberGuard(core.store, clock, client)
    sidecar.not_on_whatsapp = {GONE}
    try:
        first = await guard.check([PHONE, GONE])
        await clock.advance(NOT_ON_WHATSAPP_KEPT.total_seconds() - 1)
        await guard.check([PHONE, GONE])
        await clock.advance(2)
        sidecar.not_on_whatsapp = set()  # GONE joined WhatsApp
        joined = await guard.check([PHONE, GONE])
        # 30 days after PHONE's answer, 29 after GONE's new one.
        await clock.advance((ON_WHATSAPP_KEPT - NOT_ON_WHATSAPP_KEPT).total_seconds())
        await guard.check([PHONE, GONE])
    finally:
        await client.aclose()
    assert first == NumberVerdict(not_on_whatsapp=(GONE,))
    assert joined == NumberVerdict()
    assert sidecar.checks == [[PHONE, GONE], [GONE], [PHONE]]


async def test_reachout_limited_fails_the_delivery_at_once_without_a_retry(
    core: Core, sidecar: FakeSidecar
) -> None:
    """WhatsApp's error 463: permanent for the message, so no second request."""
    schedule = await core.services.schedules.create_schedule(
        7, recipients=PHONE, when="tomorrow 9:00", text="Hello"
    )
    sidecar.fail_next("reachout_limited", count=3)

    run, _ = await core.services.runs.run_now(7, schedule.id)

    async def failed() -> bool:
        return [d.status for d in await deliveries(core, run_id=run.id)] == ["failed"]

    await eventually(failed, what="the failure")
    [delivery] = await deliveries(core, run_id=run.id)
    assert delivery.error_code == "reachout_limited" and delivery.attempts == 1
    assert delivery.last_error is not None and "error 463" in delivery.last_error
    assert sidecar.requests == 1


async def test_numbers_are_asked_ten_at_a_time_and_each_answered_batch_is_remembered(
    core: Core, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    """The sidecar looks numbers up one by one: a few dozen in one request outlast a run's
    wait. Asked ten at a time, what came back before a request failed is kept, and the next
    check asks only the rest."""
    numbers = [f"+4915100{n:05d}" for n in range(25)]
    client = WhatsAppClient(sidecar.url, sidecar.api_key)
    guard = NumberGuard(core.store, clock, client)
    sidecar.check_fails_after = 2
    try:
        first = await guard.check(numbers)
        assert [len(asked) for asked in sidecar.checks] == [10, 10, 5]
        assert first == NumberVerdict(unchecked=tuple(numbers[20:]))
        assert sorted(await core.store.number_checks(numbers)) == numbers[:20]
        sidecar.check_fails_after = None
        second = await guard.check(numbers)
    finally:
        await client.aclose()
    assert second == NumberVerdict()
    assert sidecar.checks[3:] == [numbers[20:]]
    assert len(await core.store.number_checks(numbers)) == 25


async def test_the_answers_before_a_failed_lookup_are_kept_and_the_rest_asked_next_time(
    core: Core, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    """The sidecar answers the numbers it looked up before one failed: those are remembered,
    no further batch is asked this time, and the next check asks only the rest."""
    numbers = [f"+4915100{n:05d}" for n in range(15)]
    client = WhatsAppClient(sidecar.url, sidecar.api_key)
    guard = NumberGuard(core.store, clock, client)
    sidecar.lookup_fails_for = {numbers[3]}
    try:
        first = await guard.check(numbers)
        assert sidecar.checks == [numbers[:10]]
        assert first == NumberVerdict(unchecked=tuple(numbers[3:]))
        assert sorted(await core.store.number_checks(numbers)) == numbers[:3]
        sidecar.lookup_fails_for = set()
        second = await guard.check(numbers)
    finally:
        await client.aclose()
    assert second == NumberVerdict()
    assert sidecar.checks[1:] == [numbers[3:13], numbers[13:]]
    assert len(await core.store.number_checks(numbers)) == 15
