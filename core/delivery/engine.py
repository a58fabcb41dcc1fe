"""The engine: turns due occurrences into runs (README.md, "How it works").

The store's `next_run_at` is the only truth about what is due, so the engine keeps one
APScheduler job, not one per schedule: a wake-up (`DateTrigger`) at the earliest
`next_run_at`, re-armed after every pass and whenever schedules change. Each pass handles every
due schedule:

1. the run of the occurrence is inserted (unique per schedule and `scheduled_for`, so a second
   process, a double fire or a restart cannot create it twice) and fanned out into deliveries;
2. `next_run_at` moves by compare-and-set on the value read, to the first fire time after now,
   so occurrences missed while the process was down coalesce into this one run; a one-time
   schedule ends `done`, and so does a recurring one past its end (`5 times`, `until ...`),
   whose owner is told once (`Notifier.schedule_done`, claimed in the store: the owner of one
   whose process died before telling is told at the next start-up);
3. the sender is woken.

The wake-up is armed `WAKE_LEAD_S` before the earliest `next_run_at`: the pass reads what falls
due in the next moment, then waits for each due instant and fires from what it read, so the
store read is not between the due time and the run. Any schedule change in this process while
it waits (pause, edit, delete) makes it read again before firing.

An occurrence later than the misfire grace is recorded as a run whose deliveries are `missed`,
and the owner is told; if a later occurrence still lies within the grace, that one runs as a
catch-up. Arming costs the same for 100 schedules as for 100,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import (  # type: ignore[import-untyped, unused-ignore]
    AsyncIOScheduler,
)
from apscheduler.triggers.date import (  # type: ignore[import-untyped, unused-ignore]
    DateTrigger,
)

from core.adapters.counters import observe_run_lateness
from core.adapters.health import StoreHealth
from core.adapters.store import Store
from core.delivery import asker, runs, states
from core.delivery.notifier import Notifier
from core.delivery.numbers import NumberGuard
from core.domain.clock import Clock
from core.domain.errors import DuplicateRun, ScheduleMoved, StoreNotWritable
from core.domain.models import (
    Ask,
    AskChoice,
    Delivery,
    DeliveryStatus,
    RuleKind,
    Run,
    RunTrigger,
    Schedule,
    ScheduleState,
)
from core.domain.when import next_fire_time

logger = logging.getLogger(__name__)

WAKE_JOB = "wasched-wake"
# Rounds (due schedules read, fired) one pass may run before it re-arms and lets the notifier
# hear of its runs (the start-up pass runs all); what is still due is taken by the next
# wake-up at once.
ROUNDS_PER_PASS = 50
# The wake-up comes this long before the earliest due time, so the pass has read what falls
# due before it does.
WAKE_LEAD_S = 0.05
# A pass reads the schedules falling due this soon and waits for them, rather than ending and
# being woken again; while it waits it reads again every LOOK_AHEAD_S - WAKE_LEAD_S, so each
# schedule is read at least WAKE_LEAD_S before it falls due.
LOOK_AHEAD_S = 0.1
MISSED = "missed"
# Set once per ended schedule (and end: an edit gives it a new one) by the process that tells
# its owner (`Store.claim_value`): a second process, a retry or a restart says nothing.
DONE_TOLD_KEY = "schedule_done:{}:{}"
# At start-up, the owners of schedules that ended this recently and whom no process told (it
# died between ending the schedule and telling) are told.
DONE_TELL_WITHIN = timedelta(days=1)


class Engine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        *,
        misfire_grace_s: float,
        on_deliveries: Callable[[], None] = lambda: None,
        batch: int = 500,
        concurrency: int = 16,
        catch_up_after_s: float = 60.0,
        retry_s: float = 5.0,
        store_health: StoreHealth | None = None,
        numbers: NumberGuard | None = None,
    ) -> None:
        self.store = store
        # Checks each run's numbers with WhatsApp as it fans out
        # (`runs.fail_numbers_without_whatsapp`).
        self.numbers = numbers
        # Told of each write that failed or went through, so that a store refusing writes
        # is logged once, not with a traceback per pass.
        self.store_health = store_health
        self.clock = clock
        self.notifier = notifier
        self.misfire_grace_s = misfire_grace_s
        self.on_deliveries = on_deliveries
        self.batch = batch
        self.concurrency = concurrency
        # A run this late (or any late run found at start-up) is a catch-up, not a normal fire.
        self.catch_up_after_s = catch_up_after_s
        # Earliest re-arm after a pass that left something due (a schedule that failed).
        self.retry_s = retry_s
        self._scheduler: Any = None
        self._lock = asyncio.Lock()
        self._running = False
        self._starting = False
        self._next_due: datetime | None = None
        # Set by a schedule change in this process: a pass fires what it read ahead only if
        # nothing changed since the read, and a waiting pass reads again at once.
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_pass_at: datetime | None = None
        self._last_due = 0
        self.fired = 0
        # Recurring schedules this process moved to `done` in the pass: their owners are told
        # once the pass is over.
        self._finished: list[Schedule] = []
        # Ask-first occurrences nobody answered, told (after the pass) what the policy did.
        self._unanswered: list[tuple[Schedule, Ask]] = []

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the scheduler in the running loop, finish runs a crash interrupted, run
        what was missed while down (catch-up) and arm the wake-up."""
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 100},
        )
        self._scheduler.start()
        self._running = True
        self._stopping.clear()
        await self._complete_unfinished()
        self._starting = True
        try:
            await self.tick()
        finally:
            self._starting = False
        await self._tell_untold_ends()

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop arming; let the pass in flight finish (up to `drain_s`), then shut the
        scheduler down."""
        if not self._running:
            return
        self._running = False
        self._stopping.set()  # a pass waiting for a due time stops waiting
        try:
            async with asyncio.timeout(drain_s):
                await self._lock.acquire()
                self._lock.release()
        except TimeoutError:
            logger.warning("engine: pass still running after %.0f s; stopping anyway", drain_s)
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            # AsyncIOScheduler shuts down on the next turn of the loop.
            await asyncio.sleep(0)

    @property
    def running(self) -> bool:
        return self._running

    # --- EngineHooks -----------------------------------------------------------------
    def schedules_changed(self) -> None:
        """A schedule was added, edited, paused, resumed or deleted: look again now."""
        self._changed.set()
        self._arm_at(self.clock.now())

    def deliveries_queued(self) -> None:
        self.on_deliveries()

    async def schedule_ended(self, schedule: Schedule) -> None:
        """A service's compare-and-set ended a recurring schedule (Skip next, an answer to
        a question): its owner is told, once, as when a pass ends one."""
        await self._tell(self._schedule_done(schedule))

    def scheduler_state(self) -> str:
        """For the service's status: `running`, `running, nothing scheduled` or `stopped`
        (the next run itself is shown by the caller, in the owner's time zone)."""
        if not self._running:
            return "stopped"
        if self._next_due is None:
            return "running, nothing scheduled"
        return "running"

    def status(self) -> dict[str, Any]:
        jobs = len(self._scheduler.get_jobs()) if self._scheduler is not None else 0
        return {
            "running": self._running,
            "jobs": jobs,
            "next_run": self._next_due.isoformat() if self._next_due else None,
            "due": self._last_due,
            "last_pass_at": self._last_pass_at.isoformat() if self._last_pass_at else None,
            "fired": self.fired,
        }

    def _store_failed(self, error: Exception) -> bool:
        """Tell the store's health of a refused write; False for any other error (logged
        with its traceback by the caller)."""
        if self.store_health is None or not isinstance(error, StoreNotWritable):
            return False
        self.store_health.failed(error)
        return True

    # --- the wake-up -----------------------------------------------------------------
    async def _wake(self) -> None:
        """The APScheduler job: a coroutine the AsyncIOExecutor awaits."""
        if self._running:
            await self.tick()

    def _arm_at(self, due: datetime | None) -> None:
        self._next_due = due
        if not self._running or self._scheduler is None:
            return
        if due is None:
            with contextlib.suppress(Exception):
                self._scheduler.remove_job(WAKE_JOB)
            return
        # APScheduler's timer runs on the wall clock; arming by delay keeps the injected
        # clock the judge of what is due (the same instant with the system clock). The pass
        # it starts waits for the due time itself.
        delay = max(0.0, (due - self.clock.now()).total_seconds() - WAKE_LEAD_S)
        self._scheduler.add_job(
            self._wake,
            trigger=DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=delay)),
            id=WAKE_JOB,
            replace_existing=True,
            # A busy loop must never drop a wake-up (APScheduler's default grace is 1 s).
            misfire_grace_time=None,
            coalesce=True,
        )

    async def tick(self) -> int:
        """Handle every occurrence due now and re-arm; return how many were handled.

        The scheduler calls this on each wake-up; tests call it after moving a fake clock."""
        reports: list[tuple[Schedule, Run, list[Delivery]]] = []
        missed: list[tuple[Schedule, Run, float]] = []
        async with self._lock:
            try:
                handled, stuck = await self._pass(reports, missed)
                due = await self.store.next_due_at()
            except Exception as error:
                # The wake-up job is spent once it fired: whatever failed here (a locked
                # database, a failover), arm the next look before anything else, or nothing
                # would ever fire again.
                if not self._store_failed(error):
                    logger.exception("engine: pass failed; looking again in %.0f s", self.retry_s)
                self._arm_at(self.clock.now() + timedelta(seconds=self.retry_s))
                handled = 0
            else:
                if handled and not stuck and self.store_health is not None:
                    self.store_health.worked()
                if stuck and due is not None:
                    due = max(due, self.clock.now() + timedelta(seconds=self.retry_s))
                self._arm_at(due)
            finished, self._finished = self._finished, []
        # Told after the lock is released: a slow notifier never delays the next pass.
        for schedule, run, deliveries in reports:
            await self._tell(self.notifier.run_updated(schedule, run, deliveries))
        for schedule, run, late in missed:
            await self._tell(self.notifier.run_missed(schedule, run, late))
        for schedule in finished:
            await self._tell(self._schedule_done(schedule))
        unanswered, self._unanswered = self._unanswered, []
        for schedule, ask in unanswered:
            await self._tell(self.notifier.ask_unanswered(schedule, ask))
        return handled

    async def _pass(
        self,
        reports: list[tuple[Schedule, Run, list[Delivery]]],
        missed: list[tuple[Schedule, Run, float]],
    ) -> tuple[int, bool]:
        failed: set[int] = set()
        # An occurrence is handled once per pass; a schedule moved to an occurrence that is
        # still due (a catch-up after a missed one) comes back with a new `next_run_at`.
        seen: set[tuple[int, datetime | None]] = set()
        handled = 0
        leftover = False
        capped = False
        firing: set[asyncio.Task[None]] = set()
        # Occurrences due together fire together (up to `concurrency` at once), so one
        # schedule's store round trips do not hold back the next one's claim.
        slots = asyncio.Semaphore(self.concurrency)
        # Read before they fell due: each fires at its time from that read, unless a schedule
        # changed in this process since (then a new read decides).
        ahead: list[Schedule] = []
        read_again = self.clock.now()

        async def fire(schedule: Schedule, now: datetime) -> None:
            nonlocal handled
            async with slots:
                try:
                    queued = await self._occurrence(schedule, now, reports, missed)
                except Exception as error:
                    if not self._store_failed(error):
                        logger.exception("engine: schedule %s could not fire", schedule.id)
                    failed.add(schedule.id)
                    return
            handled += 1
            if queued:
                self.on_deliveries()

        def launch(schedules: list[Schedule], now: datetime) -> None:
            for schedule in schedules:
                seen.add((schedule.id, schedule.next_run_at))
                task = asyncio.get_running_loop().create_task(fire(schedule, now))
                firing.add(task)
                task.add_done_callback(firing.discard)

        def unhandled(schedule: Schedule) -> bool:
            return schedule.id not in failed and (schedule.id, schedule.next_run_at) not in seen

        try:
            for rounds in itertools.count():
                if self._stopping.is_set() or (rounds >= ROUNDS_PER_PASS and not self._starting):
                    capped = True  # what is still due is taken by the next pass
                    break
                now = self.clock.now()
                self._last_pass_at = now
                if self._changed.is_set():
                    ahead = []
                ready = [s for s in ahead if _due_by(s, now)]
                if ready:
                    ahead = [s for s in ahead if not _due_by(s, now)]
                    launch([s for s in ready if unhandled(s)], now)
                    await asyncio.sleep(0)  # their claims reach the store before a read
                if ahead and now < read_again:
                    # Nothing new to look for yet: wait for the next occurrence read ahead.
                    await self._wait(firing=None, until=min(_due_times(ahead), read_again))
                    continue
                # Read what is due by now and what falls due in a moment: one that fell due
                # while earlier occurrences were being stored fires at once.
                self._changed.clear()
                read = await self.store.due_schedules(
                    now + timedelta(seconds=LOOK_AHEAD_S), limit=self.batch
                )
                read_again = now + timedelta(seconds=LOOK_AHEAD_S - WAKE_LEAD_S)
                due = [s for s in read if _due_by(s, now)]
                fresh = [schedule for schedule in due if unhandled(schedule)]
                launch(fresh, now)
                ahead = [
                    s
                    for s in read
                    if s.next_run_at is not None and not _due_by(s, now) and unhandled(s)
                ]
                if self._starting:
                    # Start-up handles what is due and returns; what falls due next is the
                    # wake-up's (a busy minute must not hold start-up).
                    ahead = []
                if fresh and len(read) >= self.batch:
                    # A full batch: store it before reading on (the next read would return
                    # these same schedules until they move).
                    await asyncio.wait(set(firing))
                    continue
                if not fresh and not firing and not ahead:
                    # Due schedules left here could not move (they failed): retry them later.
                    leftover = bool(due)
                    break
                if ahead:
                    await self._wait(firing=None, until=min(_due_times(ahead), read_again))
                else:
                    # Read again once these are stored: a schedule moved to an occurrence
                    # still due (a catch-up after a missed one) comes back at once.
                    await self._wait(firing=firing, until=None)
        finally:
            if firing:
                await asyncio.gather(*firing, return_exceptions=True)
        self._last_due = handled
        return handled, (leftover or bool(failed)) and not capped

    async def _wait(
        self, *, firing: set[asyncio.Task[None]] | None, until: datetime | None
    ) -> None:
        """Wait until every occurrence in `firing` is stored, or `until` comes, whichever is
        first; a schedule change or `stop()` ends the wait at once."""
        waiters: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._changed.wait()),
        }
        if firing:
            waiters.add(asyncio.ensure_future(asyncio.wait(set(firing))))
        if until is not None:
            delay = max(0.0, (until - self.clock.now()).total_seconds())
            waiters.add(asyncio.ensure_future(self.clock.sleep(delay)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _tell(self, call: Any) -> None:
        try:
            await call
        except Exception:
            logger.exception("engine: notifier failed")

    # --- one occurrence --------------------------------------------------------------
    async def _occurrence(
        self,
        schedule: Schedule,
        now: datetime,
        reports: list[tuple[Schedule, Run, list[Delivery]]],
        missed: list[tuple[Schedule, Run, float]],
    ) -> bool:
        """Fire, or record as missed, the occurrence at `schedule.next_run_at`; return True
        when deliveries were queued."""
        due_at = schedule.next_run_at
        if due_at is None:
            return False
        grace = (
            schedule.misfire_grace_s
            if schedule.misfire_grace_s is not None
            else self.misfire_grace_s
        )
        late = max(0.0, (now - due_at).total_seconds())
        # Every occurrence up to now coalesces into this one; compute before claiming, so a
        # broken rule fails before anything is stored.
        after_now = next_fire_time(schedule.rule, after=now)
        if late > grace:
            # Still an occurrence inside the grace? Then that one runs as a catch-up (the
            # schedule stays due, so the same pass takes it next); the older ones are missed.
            within = next_fire_time(schedule.rule, after=now - timedelta(seconds=grace))
            following = within if within is not None and within <= now else after_now
            try:
                run = await self._record_missed(schedule, due_at, late)
            except ScheduleMoved:
                return False  # paused, edited or deleted since it was read: leave it so
            if run is not None:
                missed.append((schedule, run, late))
            await self._advance(schedule, due_at, following)
            return False
        ask = None
        if schedule.ask_first:
            # The owner was asked before this occurrence: their answer, or the policy.
            ask = await asker.at_due_time(self.store, self.clock, schedule, due_at)
            verdict = asker.verdict(ask)
            if ask is not None and verdict is not asker.Verdict.fire:
                acted = await asker.act(self.store, self.clock, schedule, ask, self.numbers)
                if acted.ended is not None:
                    self._finished.append(acted.ended)
                if verdict is asker.Verdict.skip and acted.run_id is None:
                    # Skipped before (a crash cut that skip short of moving the schedule
                    # on, or another process is at it): make sure next_run_at moves on.
                    existing = await self.store.find_run(schedule.id, due_at)
                    if existing is not None:
                        if not existing.fanned_out:
                            await self._complete(existing)
                        if ask.run_id is None:
                            await self.store.set_ask_run(ask.id, existing.id)
                        await self._advance(schedule, due_at, after_now)
                elif ask.choice is AskChoice.no_answer_skipped and acted.run_id is not None:
                    # Told only by the pass whose skip stored the run.
                    self._unanswered.append((schedule, ask))
                return False
        trigger = RunTrigger.schedule
        if late > self.catch_up_after_s or (self._starting and late > 1.0):
            trigger = RunTrigger.catch_up
        queued = False
        try:
            run, deliveries = await runs.start_run(
                self.store,
                self.clock,
                schedule,
                scheduled_for=due_at,
                trigger=trigger,
                late_by_s=late,
                # The schedule was read a moment ago (ahead of its time, or before others
                # were stored); a pause or edit since, here or in another process, wins.
                only_if_due=True,
                guard=self.numbers,
            )
        except ScheduleMoved:
            logger.info("engine: schedule %s changed before it fired; not fired", schedule.id)
            return False
        except DuplicateRun:
            # Claimed by another process, or by us before a crash: finish its fan-out if
            # that was cut short, then make sure next_run_at moves on.
            existing = await self.store.find_run(schedule.id, due_at)
            if existing is not None and not existing.fanned_out:
                queued = bool(await self._complete(existing))
        else:
            # When the run was stored, not when the pass read it: a lock that held the
            # write back shows here (`late_by_s` keeps the pass's figure).
            observe_run_lateness((self.clock.now() - due_at).total_seconds())
            self.fired += 1
            logger.info(
                "engine: schedule %s fired run %s (%s, %d deliveries, %.3f s late)",
                schedule.id,
                run.id,
                trigger.value,
                len(deliveries),
                late,
            )
            reports.append((schedule, run, deliveries))
            queued = any(d.status is DeliveryStatus.queued for d in deliveries)
            if ask is not None:
                await self.store.set_ask_run(ask.id, run.id)
                if ask.choice is AskChoice.no_answer_sent:
                    self._unanswered.append((schedule, ask))
        await self._advance(schedule, due_at, after_now)
        return queued

    async def _advance(
        self, schedule: Schedule, due_at: datetime, following: datetime | None
    ) -> None:
        moved = await self.store.advance_schedule(
            schedule.id,
            expected_next_run_at=due_at,
            next_run_at=following,
            state=ScheduleState.done if following is None else None,
        )
        if not moved:
            logger.debug("engine: schedule %s was moved by another process", schedule.id)
        elif following is None and schedule.rule.kind is not RuleKind.once:
            # The process whose compare-and-set ended it tells the owner, after the pass
            # (`_schedule_done` claims the telling; one that died first leaves it to the next
            # start-up, `_tell_untold_ends`).
            self._finished.append(
                schedule.model_copy(update={"state": ScheduleState.done, "next_run_at": None})
            )

    async def _record_missed(
        self, schedule: Schedule, due_at: datetime, late: float
    ) -> Run | None:
        """Store the missed occurrence as a run with one `missed` delivery per recipient;
        None when another process recorded it. Raises `ScheduleMoved` when it is no longer
        due."""
        try:
            run = await self.store.insert_run(
                schedule_id=schedule.id,
                owner_id=schedule.owner_id,
                scheduled_for=due_at,
                trigger=RunTrigger.catch_up,
                late_by_s=late,
                outcome=MISSED,
                only_if_due=True,
            )
        except DuplicateRun:
            existing = await self.store.find_run(schedule.id, due_at)
            if existing is not None and not existing.fanned_out:
                await self._complete(existing)
            return None
        logger.warning(
            "engine: schedule %s missed its %s occurrence (%.0f s late, grace %s s)",
            schedule.id,
            due_at.isoformat(),
            late,
            schedule.misfire_grace_s or self.misfire_grace_s,
        )
        await self._fan_out_missed(schedule, run)
        return run

    async def _fan_out_missed(self, schedule: Schedule, run: Run) -> list[Delivery]:
        new = await runs.render_deliveries(self.store, schedule, run)
        missed = [states.missed(d) for d in new]
        deliveries = await self.store.add_deliveries(run, missed, now=self.clock.now())
        await self.store.mark_run_fanned_out(run.id)
        return deliveries

    async def _complete(self, run: Run) -> list[Delivery]:
        """Finish the fan-out of a run a crash cut short; a missed run stays missed."""
        if run.outcome == MISSED:
            schedule = await self.store.get_schedule(run.schedule_id)
            if schedule is None:
                await self.store.mark_run_fanned_out(run.id)
                return []
            return await self._fan_out_missed(schedule, run)
        return await runs.complete_run(self.store, self.clock, run, self.numbers)

    async def _schedule_done(self, schedule: Schedule) -> None:
        """Tell the owner that `schedule` ended, unless some process has (claimed once)."""
        key = _done_key(schedule)
        if not await self.store.claim_value(key, self.clock.now().isoformat()):
            return
        occurrences = await self.store.count_occurrences_sent(schedule.id)
        logger.info("engine: schedule %s ended after %d occurrence(s)", schedule.id, occurrences)
        await self.notifier.schedule_done(schedule, occurrences)

    async def _tell_untold_ends(self) -> None:
        """Tell the owners of recurring schedules that ended lately whom no process told."""
        since = self.clock.now() - DONE_TELL_WITHIN
        try:
            done = await self.store.list_schedules(states=(ScheduleState.done,))
            for schedule in done:
                ends_at = schedule.rule.ends_at
                if schedule.rule.kind is RuleKind.once or ends_at is None or ends_at < since:
                    continue
                if await self.store.get_value(_done_key(schedule)) is None:
                    await self._tell(self._schedule_done(schedule))
        except Exception as error:
            if not self._store_failed(error):
                logger.exception("engine: could not look for ended schedules to tell")

    async def _complete_unfinished(self) -> None:
        queued = False
        for run in await self.store.unfinished_runs():
            logger.info("engine: completing run %s cut short by a crash", run.id)
            try:
                deliveries = await self._complete(run)
            except Exception:
                logger.exception("engine: could not complete run %s", run.id)
                continue
            queued = queued or any(d.status is DeliveryStatus.queued for d in deliveries)
        if queued:
            self.on_deliveries()


def _done_key(schedule: Schedule) -> str:
    ends_at = schedule.rule.ends_at
    return DONE_TOLD_KEY.format(schedule.id, "" if ends_at is None else ends_at.isoformat())


def _due_by(schedule: Schedule, now: datetime) -> bool:
    return schedule.next_run_at is not None and schedule.next_run_at <= now


def _due_times(schedules: list[Schedule]) -> datetime:
    return min(s.next_run_at for s in schedules if s.next_run_at is not None)
