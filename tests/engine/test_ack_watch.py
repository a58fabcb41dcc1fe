"""Messages WhatsApp took (`sent`) that never reach the phone: noticed by core on its clock,
told once per run, counted in /metrics, checked again or sent again on request."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.app import Core, open_core
from core.delivery.ack_watch import AckWatch
from core.delivery.ack_watch import unacked as past
from core.domain.clock import FakeClock
from core.domain.errors import InvalidState
from core.domain.models import Delivery, DeliveryStatus, RunTrigger
from tests.engine.conftest import (
    CoreFactory,
    RecordingNotifier,
    deliveries,
    eventually,
    settings_for,
)
from tests.fakes.sidecar import FakeSidecar

ANNA = "+4915100000001"
BEN = "+4915100000002"
OWNER = 1001


async def sent_run(core: Core, recipients: str = f"{ANNA}, {BEN}") -> int:
    """Run a schedule now and wait until WhatsApp took every message; the run's id."""
    schedule = await core.services.schedules.create_schedule(
        OWNER, recipients=recipients, when="every day at 9:00", text="See you at {time}"
    )
    run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)
    count = len(recipients.split(","))

    async def all_sent() -> bool:
        found = await deliveries(core, run_id=run.id)
        return len(found) == count and all(d.sent_at is not None for d in found)

    await eventually(all_sent, what="every message sent")
    return run.id


def passed(watch: AckWatch, before: int) -> bool:
    return watch.passes > before


async def passes(core: Core, clock: FakeClock, count: int, step_s: float = 60.0) -> None:
    """Move the clock `count` times by `step_s`, each time until the watcher's pass ran."""
    await eventually(lambda: core.ack_watch.passes >= 1, what="the first pass")
    for _ in range(count):
        before = core.ack_watch.passes
        await clock.advance(step_s)
        await eventually(partial(passed, core.ack_watch, before), what="a pass")


async def scrape(core: Core) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"{core.url}/metrics") as answer:
        text = await answer.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_message_stuck_at_sent_is_told_once_per_run_over_many_passes(
    start_core: CoreFactory,
    sidecar: FakeSidecar,
    clock: FakeClock,
    notifier: RecordingNotifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sidecar.ack_up_to = 1  # WhatsApp's server took them; the phones never ack
    core = await start_core(ACK_ALERT_AFTER_S=600)
    assert core.ack_watch.every_s == 60
    queries: list[dict[str, Any]] = []
    query = core.store.sent_deliveries

    async def counted(**kwargs: Any) -> list[Delivery]:
        # The watcher's (bounded by its cutoff), not the receipts' passes.
        if kwargs["statuses"] == (DeliveryStatus.sent,) and kwargs.get("until") is not None:
            queries.append(kwargs)
        return await query(**kwargs)

    await eventually(lambda: core.ack_watch.passes >= 1, what="the first pass")
    counted_from = core.ack_watch.passes
    monkeypatch.setattr(core.store, "sent_deliveries", counted)
    run_id = await sent_run(core)
    caplog.set_level(logging.DEBUG, logger="core.delivery.ack_watch")

    await passes(core, clock, 9)  # 9 min after sending: not yet
    assert notifier.unacked == []
    await passes(core, clock, 1)
    [(run, told, now, tell)] = notifier.unacked
    assert (run.id, now, tell) == (run_id, clock.now(), True)
    assert [d.recipient for d in told] == [ANNA, BEN]
    # An hour of passes later it was still told once, one store query per pass, no log lines.
    await passes(core, clock, 60)
    assert len(notifier.unacked) == 1
    assert len(queries) == core.ack_watch.passes - counted_from
    assert [r for r in caplog.records if r.name == "core.delivery.ack_watch"] == []


async def test_a_backlog_sent_in_one_instant_is_read_on_not_again(
    start_core: CoreFactory,
    sidecar: FakeSidecar,
    clock: FakeClock,
    notifier: RecordingNotifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three runs sent in one millisecond, a pass reading one message: each pass reads on from
    # (sent_at, id); paging on sent_at alone read the first one again and again.
    monkeypatch.setattr("core.delivery.ack_watch.PASS_LIMIT", 1)
    sidecar.ack_up_to = 1
    core = await start_core(ACK_ALERT_AFTER_S=600)
    runs = [await sent_run(core, ANNA) for _ in range(3)]
    sent_at = {d.sent_at for run_id in runs for d in await deliveries(core, run_id=run_id)}
    assert len(sent_at) == 1  # the fake clock did not move

    await passes(core, clock, 10)  # past the threshold: one message per pass from here
    await passes(core, clock, 3)
    assert sorted(run.id for run, *_ in notifier.unacked) == runs


async def test_a_paced_run_is_told_once_and_its_later_messages_only_marked(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core(ACK_ALERT_AFTER_S=600, SEND_GAP_MIN_S=120, SEND_GAP_MAX_S=120)
    schedule = await core.services.schedules.create_schedule(
        1001, recipients=f"{ANNA}, {BEN}", when="every day at 9:00", text="Hi"
    )
    run, _ = await core.services.runs.run_now(schedule.owner_id, schedule.id)
    await eventually(lambda: len(sidecar.outbox) == 1, what="Anna's message")
    await passes(core, clock, 2)  # the gap: Ben's goes out 2 minutes later
    await eventually(lambda: len(sidecar.outbox) == 2, what="Ben's message")

    await passes(core, clock, 30)

    told = [
        (r.id, [d.recipient for d in past(ds, now=now, after_s=600)], tell)
        for r, ds, now, tell in notifier.unacked
    ]
    assert told == [(run.id, [ANNA], True), (run.id, [ANNA, BEN], False)]


async def test_messages_that_reach_the_phone_are_never_told(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    sidecar.ack_up_to = 2
    core = await start_core(ACK_ALERT_AFTER_S=600)
    run_id = await sent_run(core)

    async def delivered() -> bool:
        found = await deliveries(core, run_id=run_id)
        return all(d.status is DeliveryStatus.delivered for d in found)

    await eventually(delivered, what="device acks")
    await passes(core, clock, 30)
    assert notifier.unacked == []
    assert (await scrape(core))["wasched_deliveries_unacked"] == 0


async def test_a_restart_does_not_tell_again(
    database_url: str, sidecar: FakeSidecar, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    sidecar.ack_up_to = 1
    settings = settings_for(database_url, sidecar, ACK_ALERT_AFTER_S=600)
    async with open_core(settings, notifier=notifier, clock=clock) as core:
        sidecar.events_url = f"{core.url}/whatsapp/events"
        await sent_run(core)
        await passes(core, clock, 10)
        assert len(notifier.unacked) == 1
    again = settings_for(database_url, sidecar, ACK_ALERT_AFTER_S=600)
    async with open_core(again, notifier=notifier, clock=clock) as core:
        # The first pass after start-up looks back over what was sent before: the run's card
        # is marked again, its owner is not told again.
        await passes(core, clock, 30)
    assert [tell for *_, tell in notifier.unacked] == [True, False]


async def test_with_the_setting_at_zero_nothing_is_watched_or_told(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock, notifier: RecordingNotifier
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core(ACK_ALERT_AFTER_S=0)
    await sent_run(core)
    for _ in range(48):
        await clock.advance(1800)
    assert core.ack_watch.passes == 0
    assert notifier.unacked == []
    assert "wasched_deliveries_unacked" not in await scrape(core)


async def test_metrics_count_the_messages_past_the_threshold(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core(ACK_ALERT_AFTER_S=600)
    run_id = await sent_run(core)
    await clock.advance(599)
    assert (await scrape(core))["wasched_deliveries_unacked"] == 0
    await clock.advance(1)
    assert (await scrape(core))["wasched_deliveries_unacked"] == 2
    # The phone acks one of them late: it leaves the gauge.
    [anna, _] = await deliveries(core, run_id=run_id)
    assert anna.whatsapp_id is not None
    await sidecar.post_event("message.ack", {"id": anna.whatsapp_id, "ack": 2})

    async def one_left() -> bool:
        return (await scrape(core))["wasched_deliveries_unacked"] == 1

    await eventually(one_left, what="the gauge to drop")


async def test_check_again_records_what_the_sidecar_says_now(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core(ACK_ALERT_AFTER_S=600)
    run_id = await sent_run(core)
    await clock.advance(900)
    # Anna's phone came back and read it, but the event never came; Ben's is still off.
    [anna_record, _] = sidecar.outbox
    anna_record.ack = 3

    result = await core.services.runs.check_unacked(OWNER, run_id)

    assert (result.checked, result.statuses, result.unknown) == (
        2,
        {DeliveryStatus.read: 1, DeliveryStatus.sent: 1},
        0,
    )
    [anna, ben] = await deliveries(core, run_id=run_id)
    assert (anna.status, ben.status) == (DeliveryStatus.read, DeliveryStatus.sent)
    assert anna.read_at == clock.now()
    # A message the sidecar does not know (any more) is counted as such and left as it is.
    sidecar.outbox.remove(sidecar.outbox[1])
    result = await core.services.runs.check_unacked(OWNER, run_id)
    assert (result.checked, result.statuses, result.unknown) == (1, {}, 1)


async def test_send_again_sends_a_second_copy_to_those_recipients_only_once(
    start_core: CoreFactory, sidecar: FakeSidecar, clock: FakeClock
) -> None:
    sidecar.ack_up_to = 1
    core = await start_core(ACK_ALERT_AFTER_S=600)
    run_id = await sent_run(core)
    [anna, ben] = await deliveries(core, run_id=run_id)
    assert anna.whatsapp_id is not None
    await sidecar.post_event("message.ack", {"id": anna.whatsapp_id, "ack": 2})
    await eventually(
        lambda: len([r for r in sidecar.outbox if r.to == BEN]) == 1, what="the first copy"
    )
    await clock.advance(900)

    copy, copies = await core.services.runs.send_unacked_again(OWNER, run_id)

    assert copy.id != run_id and copy.trigger is RunTrigger.manual
    assert copy.scheduled_for == (await core.store.get_run(run_id)).scheduled_for  # type: ignore[union-attr]
    assert [(d.recipient, d.text) for d in copies] == [(BEN, ben.text)]
    assert copies[0].idempotency_key != ben.idempotency_key
    await eventually(lambda: len(sidecar.outbox) == 3, what="the second copy")
    assert [r.to for r in sidecar.outbox] == [ANNA, BEN, BEN]
    assert sidecar.outbox[2].text == ben.text
    # Pressed again: refused in words, nothing more is sent.
    with pytest.raises(InvalidState, match=f"as run {copy.id}"):
        await core.services.runs.send_unacked_again(OWNER, run_id)
    runs = await core.store.list_runs()
    assert len(runs) == 2
    assert len(sidecar.outbox) == 3
