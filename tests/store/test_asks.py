"""Contract: one question per occurrence, one answer per question, and what is left to do
(untold questions, snoozed occurrences not sent) found again after a restart."""

from __future__ import annotations

from datetime import timedelta

from core.adapters.store import Store
from core.domain.models import AskChoice, NoAnswer
from tests.store.factories import OWNER, T0, add_schedule, minutes


async def test_an_occurrence_is_asked_about_once(store: Store) -> None:
    schedule = await add_schedule(store)
    first = await store.insert_ask(schedule, T0, now=T0 - minutes(15))
    assert first is not None
    assert (first.schedule_id, first.owner_id, first.occurrence, first.told) == (
        schedule.id,
        OWNER,
        T0,
        False,
    )
    assert await store.insert_ask(schedule, T0, now=T0 - minutes(14)) is None
    assert await store.find_ask(schedule.id, T0) == first
    assert await store.get_ask(first.id) == first
    other = await store.insert_ask(schedule, T0 + timedelta(days=1), now=T0)
    assert other is not None and other.id != first.id


async def test_the_first_answer_is_the_only_one(store: Store) -> None:
    schedule = await add_schedule(store)
    ask = await store.insert_ask(schedule, T0, now=T0 - minutes(15))
    assert ask is not None
    chosen = await store.choose(ask.id, AskChoice.skip, by=OWNER, at=T0 - minutes(10))
    assert chosen is not None
    assert (chosen.choice, chosen.chosen_by, chosen.chosen_at) == (
        AskChoice.skip,
        OWNER,
        T0 - minutes(10),
    )
    assert await store.choose(ask.id, AskChoice.send_now, by=OWNER, at=T0) is None
    assert await store.choose(ask.id, AskChoice.no_answer_sent, by=None, at=T0) is None
    assert await store.get_ask(ask.id) == chosen


async def test_open_asks_are_the_untold_and_the_snoozed_not_sent(store: Store) -> None:
    schedule = await add_schedule(store)
    untold = await store.insert_ask(schedule, T0, now=T0)
    told = await store.insert_ask(schedule, T0 + minutes(60), now=T0)
    snoozed = await store.insert_ask(schedule, T0 + minutes(120), now=T0)
    assert untold is not None and told is not None and snoozed is not None
    for done in (told, snoozed):
        await store.mark_ask_told(done.id)
    until = T0 + minutes(135)
    await store.choose(snoozed.id, AskChoice.snooze, by=OWNER, at=T0, snoozed_until=until)
    assert [a.id for a in await store.open_asks()] == [untold.id, snoozed.id]
    assert (await store.open_asks())[1].snoozed_until == until
    await store.mark_ask_told(untold.id)
    await store.set_ask_run(snoozed.id, 7)
    assert await store.open_asks() == []


async def test_ask_first_is_set_and_read_back(store: Store) -> None:
    schedule = await add_schedule(store)
    assert (schedule.ask_first, schedule.ask_lead_s, schedule.on_no_answer) == (
        False,
        None,
        NoAnswer.send,
    )
    changed = await store.set_ask_first(
        schedule.id, ask_first=True, ask_lead_s=600, on_no_answer=NoAnswer.skip
    )
    assert (changed.ask_first, changed.ask_lead_s, changed.on_no_answer) == (
        True,
        600,
        NoAnswer.skip,
    )
    assert await store.get_schedule(schedule.id) == changed


async def test_the_asks_of_runs_are_found_by_run(store: Store) -> None:
    schedule = await add_schedule(store)
    first = await store.insert_ask(schedule, T0, now=T0)
    second = await store.insert_ask(schedule, T0 + minutes(60), now=T0)
    assert first is not None and second is not None
    await store.set_ask_run(first.id, 11)
    await store.set_ask_run(second.id, 12)
    found = await store.asks_of_runs([11, 12, 13, 11])
    assert {run: ask.id for run, ask in found.items()} == {11: first.id, 12: second.id}
    assert await store.asks_of_runs([]) == {}
