"""`/metrics` times each message from sent to delivered and to read, observed as its acks
arrive through `POST /whatsapp/events`; an ack heard twice counts once."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from core.app import Core
from core.domain.clock import FakeClock
from core.domain.models import DeliveryStatus
from tests.adapters.test_http import post
from tests.store.factories import add_delivery_at, add_run, add_schedule

METRIC = "wasched_delivery_time_to_ack_seconds"


async def scrape(core: Core) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{core.url}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        sample.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) + "}": (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def ack(core: Core, whatsapp_id: str, value: int) -> None:
    body = f'{{"event": "message.ack", "payload": {{"id": "{whatsapp_id}", "ack": {value}}}}}'
    status, _ = await post(core, body)
    assert status == 200


async def sent_now(core: Core, clock: FakeClock, whatsapp_id: str) -> None:
    """A message WhatsApp took just now, as message `whatsapp_id`."""
    run = await add_run(core.store, await add_schedule(core.store))
    await add_delivery_at(
        core.store,
        run,
        f"key-{whatsapp_id}",
        DeliveryStatus.sent,
        sent_at=clock.now(),
        whatsapp_id=whatsapp_id,
    )


async def test_acks_are_timed_from_sent_to_delivered_and_to_read(
    core: Core, clock: FakeClock
) -> None:
    await sent_now(core, clock, "wa-1")
    before = await scrape(core)

    await clock.advance(90)
    await ack(core, "wa-1", 2)
    await clock.advance(600)
    await ack(core, "wa-1", 3)
    await ack(core, "wa-1", 3)  # heard again (a reconcile after the event): counted once
    after = await scrape(core)

    def delta(name: str) -> float:
        return after[name] - before.get(name, 0.0)

    assert delta(f"{METRIC}_count{{ack=delivered}}") == 1
    assert delta(f"{METRIC}_sum{{ack=delivered}}") == 90
    assert delta(f"{METRIC}_count{{ack=read}}") == 1
    assert delta(f"{METRIC}_sum{{ack=read}}") == 690
    # 90 s lies between the 60 s and 300 s buckets; 690 s between 300 s and 900 s.
    assert delta(f"{METRIC}_bucket{{ack=delivered,le=60.0}}") == 0
    assert delta(f"{METRIC}_bucket{{ack=delivered,le=300.0}}") == 1
    assert delta(f"{METRIC}_bucket{{ack=read,le=300.0}}") == 0
    assert delta(f"{METRIC}_bucket{{ack=read,le=900.0}}") == 1
    stored = await core.store.find_delivery_by_whatsapp_id("wa-1")
    assert stored is not None and stored.status is DeliveryStatus.read


async def test_a_message_read_at_once_is_timed_as_delivered_and_read(
    core: Core, clock: FakeClock
) -> None:
    await sent_now(core, clock, "wa-2")
    before = await scrape(core)
    await clock.advance(30)
    await ack(core, "wa-2", 3)  # the delivered ack never came
    after = await scrape(core)
    for stage in ("delivered", "read"):
        name = f"{METRIC}_sum{{ack={stage}}}"
        assert after[name] - before.get(name, 0.0) == 30, stage
