"""Ask me first: the owner of an ask-first schedule is asked before each occurrence.

The asker wakes at the earliest `next_run_at - lead` of the active ask-first schedules (and
when a snoozed occurrence is due), stores the question for (schedule, occurrence) in `asks` —
unique, so two processes or a restart ask once — and has the notifier tell it; a question
stored but not told (a crash in between) is told after a restart.

Each answer is stored once (`Store.choose` only sets a choice on an ask without one) and acted
on through `act`, which is idempotent: Send now and Skip take the occurrence ahead of the
engine (its run is unique per occurrence, so the engine cannot fire it again), Snooze moves
the schedule on and the asker sends the occurrence at the snoozed time, Send at the time
leaves it to the engine. At the due time the engine calls `at_due_time`: with no answer, the
schedule's policy (`on_no_answer`) is recorded as the choice and followed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from core.adapters.store import Store
from core.delivery import runs
from core.delivery._loop import Loop
from core.delivery.notifier import Notifier
from core.delivery.numbers import NumberGuard
from core.domain.clock import Clock
from core.domain.errors import DuplicateRun, ScheduleMoved
from core.domain.models import (
    Ask,
    AskChoice,
    NoAnswer,
    Record,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)
from core.domain.recipients import label
from core.domain.when import next_fire_time

logger = logging.getLogger(__name__)

# How long the loop sleeps at most when nothing is due sooner (a schedule changed in another
# process is seen by then).
IDLE_S = 300.0
RETRY_S = 30.0
# A question stored by another process is left to it this long before it counts as one a
# crash left untold.
TELL_GRACE_S = 60.0
# The snoozes offered, by name: how long after the due time the occurrence then goes out.
SNOOZES: dict[str, int] = {"15 min": 15 * 60, "1 h": 3600, "tomorrow": 24 * 3600}


class Verdict(StrEnum):
    """What the engine does with an ask-first occurrence at its due time."""

    fire = "fire"  # send it as usual (also: Send now's run exists, DuplicateRun)
    skip = "skip"  # record it as skipped
    hold = "hold"  # snoozed: move on; the asker sends it at the snoozed time


class Question(Record):
    """What the owner is asked: the schedule, the ask, each recipient's message as the
    preview shows it, and the snoozes that land before the following occurrence."""

    schedule: Schedule
    ask: Ask
    messages: tuple[tuple[str, str], ...]
    snoozes: tuple[str, ...]


def lead_s(schedule: Schedule, default_s: int) -> int:
    return schedule.ask_lead_s if schedule.ask_lead_s is not None else default_s


def snoozes(schedule: Schedule, occurrence: datetime) -> tuple[str, ...]:
    """The snoozes that send `occurrence` before the schedule's following one."""
    following = next_fire_time(schedule.rule, after=occurrence)
    return tuple(
        name
        for name, seconds in SNOOZES.items()
        if following is None or occurrence + timedelta(seconds=seconds) < following
    )


async def question(store: Store, schedule: Schedule, ask: Ask) -> Question:
    """The question for `ask`, rendered for its occurrence (as its run will render it)."""
    occurrence = Run(
        id=0,
        schedule_id=ask.schedule_id,
        owner_id=ask.owner_id,
        scheduled_for=ask.occurrence,
        trigger=RunTrigger.schedule,
        created_at=ask.asked_at,
    )
    rendered = await runs.render_deliveries(store, schedule, occurrence)
    names = {r.address: label(r) for r in schedule.recipients}
    return Question(
        schedule=schedule,
        ask=ask,
        messages=tuple((names.get(d.recipient, d.recipient), d.text) for d in rendered),
        snoozes=snoozes(schedule, ask.occurrence),
    )


class Acted(NamedTuple):
    """What `act` did: the id of the run it stored now, if any, and the schedule as it
    ended when moving past the occurrence ended a recurring schedule (its owner is told
    by the caller, `Notifier.schedule_done`)."""

    run_id: int | None = None
    ended: Schedule | None = None


async def act(
    store: Store, clock: Clock, schedule: Schedule, ask: Ask, guard: NumberGuard | None = None
) -> Acted:
    """Do what `ask.choice` says, once (safe to repeat after a crash); `guard` checks the
    numbers of a run Send now stores, as the engine's runs are checked."""
    choice = ask.choice
    taken: runs.Taken | None = None
    ended: Schedule | None = None
    try:
        if choice in (AskChoice.skip, AskChoice.no_answer_skipped):
            taken = await runs.skip_occurrence(store, clock, schedule, ask.occurrence)
        elif choice is AskChoice.send_now:
            taken = await runs.take_occurrence(store, clock, schedule, ask.occurrence, guard=guard)
        elif choice is AskChoice.snooze:
            ended = await runs.advance_past(store, clock, schedule, ask.occurrence)
    except ScheduleMoved:
        logger.info("ask %s: schedule %s moved before the answer", ask.id, schedule.id)
    if taken is None:
        return Acted(None, ended)
    await store.set_ask_run(ask.id, taken.run.id)
    return Acted(taken.run.id, taken.ended)


async def at_due_time(
    store: Store, clock: Clock, schedule: Schedule, due_at: datetime
) -> Ask | None:
    """The ask of the occurrence due now, its choice made: the owner's, or the schedule's
    policy recorded as nobody's. An occurrence never asked about (core down through the time
    to ask, the asker failing) gets its ask now, told already (a question after the due time
    helps nobody), and the policy, as for a question nobody answered."""
    ask = await store.find_ask(schedule.id, due_at)
    if ask is None:
        asked = await store.insert_ask(schedule, due_at, now=clock.now())
        if asked is not None:
            logger.warning(
                "schedule %s was never asked about its run due %s: its policy decides",
                schedule.id,
                due_at.isoformat(),
            )
            await store.mark_ask_told(asked.id)
        ask = asked or await store.find_ask(schedule.id, due_at)
        if ask is None:
            return None
    if ask.choice is not None:
        return ask
    policy = (
        AskChoice.no_answer_skipped
        if schedule.on_no_answer is NoAnswer.skip
        else AskChoice.no_answer_sent
    )
    chosen = await store.choose(ask.id, policy, by=None, at=clock.now())
    return chosen or await store.get_ask(ask.id)


def verdict(ask: Ask | None) -> Verdict:
    if ask is None:
        return Verdict.fire
    if ask.choice in (AskChoice.skip, AskChoice.no_answer_skipped):
        return Verdict.skip
    if ask.choice is AskChoice.snooze:
        return Verdict.hold
    return Verdict.fire


class Asker(Loop):
    """Asks before each occurrence of ask-first schedules; sends snoozed ones when due."""

    name = "asker"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        *,
        lead_s: int,
        on_deliveries: Callable[[], None] = lambda: None,
        numbers: NumberGuard | None = None,
    ) -> None:
        super().__init__(clock, logger)
        self.store = store
        self.notifier = notifier
        # Checks a snoozed run's numbers with WhatsApp as it fans out, as the engine does.
        self.numbers = numbers
        self.lead_s = lead_s
        self.on_deliveries = on_deliveries
        self.passes = 0
        # Asks this process stored: told at once, never left to the grace.
        self._mine: set[int] = set()
        # Asks handed to the notifier that the owner does not have yet (Telegram down): not
        # told again, as the grace's re-tell is for a question a crash lost.
        self._telling: set[int] = set()
        # Schedules whose ask or asking failed in the last pass (logged once until they
        # work again).
        self._failing_items: set[int] = set()

    @property
    def enabled(self) -> bool:
        return True

    async def _run(self) -> None:
        while True:
            try:
                wait = await self.pass_once()
            except Exception:
                self.failed("asker: pass failed; trying again in %.0f s", RETRY_S, traceback=True)
                wait = RETRY_S
            else:
                self.worked("asker: passes work again")
            self.passes += 1
            await self.nap(wait)

    async def pass_once(self) -> float:
        """Tell what is untold, send snoozed occurrences now due, ask what comes due; return
        the seconds until the next thing to do. One ask or schedule that fails is logged
        (once while it keeps failing) and tried again in RETRY_S; the others go on."""
        now = self.clock.now()
        wake = now + timedelta(seconds=IDLE_S)
        retry = now + timedelta(seconds=RETRY_S)
        failed: set[int] = set()  # schedules whose ask or asking failed in this pass
        for ask in await self.store.open_asks():
            try:
                wake = min(wake, await self._open_ask(ask, now))
            except Exception:
                self._item_failed(ask.schedule_id, failed)
                wake = min(wake, retry)
        for schedule in await self.store.list_schedules(states=[ScheduleState.active]):
            try:
                wake = min(wake, await self._ask_if_due(schedule, now))
            except Exception:
                self._item_failed(schedule.id, failed)
                wake = min(wake, retry)
        for schedule_id in self._failing_items - failed:
            logger.info("asker: schedule %s works again", schedule_id)
        self._failing_items = failed
        return max(0.0, (wake - self.clock.now()).total_seconds())

    async def _open_ask(self, ask: Ask, now: datetime) -> datetime:
        """Tell `ask` if it is untold, send its snoozed occurrence if due; return when to
        look at it again (the far future when nothing is waiting)."""
        wake = datetime.max.replace(tzinfo=now.tzinfo)
        if not ask.told and ask.id not in self._telling:
            older = ask.asked_at <= now - timedelta(seconds=TELL_GRACE_S)
            if ask.id in self._mine or older:
                await self._tell(ask)
            else:
                wake = min(wake, ask.asked_at + timedelta(seconds=TELL_GRACE_S))
        if ask.choice is AskChoice.snooze and ask.run_id is None and ask.snoozed_until:
            if ask.snoozed_until <= now:
                await self._send_snoozed(ask)
            else:
                wake = min(wake, ask.snoozed_until)
        return wake

    async def _ask_if_due(self, schedule: Schedule, now: datetime) -> datetime:
        """Ask about the schedule's next occurrence once its time to ask came; return when
        that time comes (the far future when there is nothing to ask)."""
        never = datetime.max.replace(tzinfo=now.tzinfo)
        due = schedule.next_run_at
        if not schedule.ask_first or due is None or due <= now:
            return never
        ask_at = due - timedelta(seconds=lead_s(schedule, self.lead_s))
        if ask_at > now:
            return ask_at
        if await self.store.find_ask(schedule.id, due) is not None:
            return never  # asked already (by this process or another)
        asked = await self.store.insert_ask(schedule, due, now=now)
        if asked is not None:
            self._mine.add(asked.id)
            logger.info("asker: asking about schedule %s due %s", schedule.id, due.isoformat())
            await self._tell(asked, schedule)
        return never

    def _item_failed(self, schedule_id: int, failed: set[int]) -> None:
        """Log a schedule whose ask or asking failed: with its traceback the first time,
        then quietly until it works again. Call from the `except` block."""
        text = "asker: schedule %s failed (its question or its ask); trying again in %.0f s"
        if schedule_id in self._failing_items or schedule_id in failed:
            logger.debug(text, schedule_id, RETRY_S)
        else:
            logger.exception(text, schedule_id, RETRY_S)
        failed.add(schedule_id)

    async def _tell(self, ask: Ask, known: Schedule | None = None) -> None:
        schedule = known or await self.store.get_schedule(ask.schedule_id)
        if schedule is None:
            await self.store.mark_ask_told(ask.id)
            return
        self._telling.add(ask.id)
        try:
            told = functools.partial(self._told, ask.id)
            await self.notifier.ask_before_run(await question(self.store, schedule, ask), told)
        except BaseException:
            self._telling.discard(ask.id)
            raise

    async def _told(self, ask_id: int) -> None:
        """The owner has the question (Telegram accepted it): it is not told again."""
        try:
            await self.store.mark_ask_told(ask_id)
        except Exception:
            # Still held as being told, so this process does not ask twice.
            logger.warning("asker: ask %s was told but could not be marked so", ask_id)
            return
        self._telling.discard(ask_id)
        self._mine.discard(ask_id)

    async def _send_snoozed(self, ask: Ask) -> None:
        """The snoozed occurrence's time came: its run, once (unique per occurrence)."""
        schedule = await self.store.get_schedule(ask.schedule_id)
        if schedule is None or schedule.state is not ScheduleState.active:
            # Deleted, paused or ended since the snooze: nothing goes out, as with any
            # occurrence of a schedule that is not active (resuming does not bring it back).
            logger.info(
                "asker: snoozed occurrence of schedule %s not sent: not active", ask.schedule_id
            )
            await self.store.set_ask_run(ask.id, 0)
            return
        late = (self.clock.now() - ask.occurrence).total_seconds()
        try:
            run, _ = await runs.start_run(
                self.store,
                self.clock,
                schedule,
                scheduled_for=ask.occurrence,
                trigger=RunTrigger.schedule,
                late_by_s=max(0.0, late),
                guard=self.numbers,
            )
        except DuplicateRun:
            existing = await self.store.find_run(schedule.id, ask.occurrence)
            if existing is None:
                return
            if not existing.fanned_out:
                await runs.complete_run(self.store, self.clock, existing, self.numbers)
            run = existing
        await self.store.set_ask_run(ask.id, run.id)
        logger.info("asker: snoozed occurrence of schedule %s sent as run %s", schedule.id, run.id)
        self.on_deliveries()

    def schedules_changed(self) -> None:
        """A schedule (or an answer) changed: look again now."""
        self.wake()
