"""The outbox worker: takes due deliveries and hands them to the sidecar, each key once.

One loop per process (one WhatsApp session wants one queue). With pacing (any gap between
sends) it sends strictly one at a time; without pacing (tests, benchmarks, a user who turned
it off) it keeps a bounded window of sends in flight, claimed and recorded in batches.

- claim the oldest due deliveries with a lease (a delivery left `sending` by a crash is claimed
  again once its lease ends, and sent with the same idempotency key, so the sidecar sends it
  at most once);
- keep WhatsApp-safe pacing: a random gap between sends, hourly and daily caps over sliding
  windows that delay sends, never drop them;
- on success record `sent` with WhatsApp's message id; transient failures go back to `queued`
  with exponential backoff and jitter until `retry_max_attempts`, permanent ones fail at once;
- while the session is not WORKING, deliveries are `held` without spending an attempt and the
  worker pauses until the session works again. Events come first (`session.status` from the
  sidecar wakes it); besides them it probes `/health` at most every `probe_every_s`, backing
  off to `probe_max_s` while the sidecar cannot be reached, and logs state changes, never a
  line per probe. A paused worker at rest costs one request per `probe_every_s`.

Each status change is a transition of `core.delivery.states`, applied by the store. Acks go
to `acks.Acks`, which the sender tells (`on_sent`) when a message id is stored; acks lost on
the way are asked for by `receipts.Receipts`, which the sender tells (`on_gap`) when some may
have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.adapters.health import StoreHealth
from core.adapters.store import SentRecord, Store
from core.adapters.whatsapp import SentMessage, SessionHealth
from core.delivery import spikes, states
from core.delivery.notifier import Notifier
from core.delivery.runs import RunDueTimes
from core.delivery.spikes import SpikeGuard
from core.delivery.warmup import WarmUp, WarmUpDay
from core.domain.clock import Clock
from core.domain.errors import StoreNotWritable, WhatsAppError, WhatsAppNotReady
from core.domain.models import Delivery, DeliveryFilter, DeliveryStatus, Media
from core.domain.session import SessionFailure, SessionState

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Pacing:
    """When the sender may send its next message, as the gap and the caps allow (a run
    card says it for the messages that wait)."""

    next_at: datetime
    gap_min_s: float
    gap_max_s: float
    # "hourly" or "daily" while that cap holds the next send back, else None.
    capped: str | None
    # The warm-up day of the linked number, while its daily cap is lowered.
    warmup: WarmUpDay | None = None


@dataclass(frozen=True)
class Caps:
    """Today's sends against the caps (/status): the last hour's and day's (sliding windows,
    this process's sends), the caps now, and when the next send may go while a cap is
    reached (None: one may go now, as far as the caps go)."""

    sent_last_hour: int
    hourly_cap: int
    sent_last_day: int
    daily_cap: int
    next_at: datetime | None
    capped: str | None
    warmup: WarmUpDay | None


class SendPort(Protocol):
    """What the sender needs of the sidecar client (`core.adapters.whatsapp.WhatsAppClient`)."""

    async def send(
        self, to: str, text: str, *, idempotency_key: str, media: Media | None = None
    ) -> SentMessage: ...

    async def health(self, *, within_s: float | None = None) -> SessionHealth: ...


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RunReporter:
    """Tells the notifier about runs whose deliveries changed, batched.

    Changes are collected by run; the flusher reports each changed run once with all of its
    deliveries, then waits `every_s` (wall time: a throttle for the bot, not a schedule) so a
    burst of sends or acks becomes one report per run.
    """

    def __init__(self, store: Store, notifier: Notifier, *, every_s: float = 1.0) -> None:
        self._store = store
        self._notifier = notifier
        self._every_s = every_s
        self._dirty: dict[int, None] = {}
        self._task: asyncio.Task[None] | None = None

    def mark(self, run_id: int) -> None:
        self._dirty[run_id] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while self._dirty:
            await self.flush()
            if self._every_s > 0:
                await asyncio.sleep(self._every_s)

    async def flush(self) -> None:
        """Report every changed run now."""
        batch = list(self._dirty)
        self._dirty.clear()
        for run_id in batch:
            try:
                await self._report(run_id)
            except Exception:
                logger.exception("could not report run %s", run_id)

    async def _report(self, run_id: int) -> None:
        run = await self._store.get_run(run_id)
        if run is None:
            return
        schedule = await self._store.get_schedule(run.schedule_id)
        deliveries = await self._store.list_deliveries(
            DeliveryFilter(run_id=run_id, order="oldest")
        )
        await self._notifier.run_updated(schedule, run, deliveries)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class Sender:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        whatsapp: SendPort,
        notifier: Notifier,
        *,
        gap_min_s: float,
        gap_max_s: float,
        hourly_cap: int,
        daily_cap: int,
        retry_max_attempts: int,
        lease_s: float = 120.0,
        worker: str | None = None,
        retry_base_s: float = 5.0,
        retry_max_s: float = 900.0,
        probe_every_s: float = 30.0,
        probe_max_s: float = 300.0,
        idle_check_s: float = 60.0,
        report_every_s: float = 1.0,
        send_window: int = 16,
        rng: random.Random | None = None,
        store_health: StoreHealth | None = None,
        spikes: SpikeGuard | None = None,
        warmup: WarmUp | None = None,
    ) -> None:
        self.store = store
        # Told of writes that fail: a store refusing writes is logged once, not per step.
        self.store_health = store_health
        self.clock = clock
        self.whatsapp = whatsapp
        self.notifier = notifier
        self.gap_min_s = gap_min_s
        self.gap_max_s = gap_max_s
        self.hourly_cap = hourly_cap
        self.daily_cap = daily_cap
        self.retry_max_attempts = retry_max_attempts
        # Longer than the client's timeout, so a slow send is not taken by another worker.
        self.lease_s = lease_s
        self.worker = worker or default_worker()
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.probe_every_s = probe_every_s
        self.probe_max_s = max(probe_every_s, probe_max_s)
        self.idle_check_s = idle_check_s
        self.reporter = RunReporter(store, notifier, every_s=report_every_s)
        self._due_times = RunDueTimes(store)
        # Sends in flight at once when pacing is off; with any gap, one at a time.
        self.send_window = max(1, send_window)
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = False
        self._release_held = False
        self._session_state: str | None = None
        self._session_failure: SessionFailure | None = None
        # How many times the session state was heard (events and probes).
        self._session_news = 0
        # When the paused worker asks /health next, and how many probes in a row failed.
        self._next_probe_at: datetime | None = None
        self._probe_failures = 0
        self.probe_count = 0
        self._next_send_at: datetime | None = None
        # Send instants of the last day, oldest first (the caps' sliding windows).
        self._sent_times: list[datetime] = []
        # Recording the last successes runs while the next sends are on the wire.
        self._recording: asyncio.Task[None] | None = None
        # Without pacing, the next batch is claimed while the current one is on the wire.
        self._claimed_ahead: list[Delivery] = []
        self._media: dict[int, tuple[Media | None, datetime]] = {}
        self.sent_count = 0
        # Told when acks may have been missed: the session works (again), the sidecar answers
        # again, or a send was a duplicate of an earlier process's (`Receipts`).
        self.on_gap: Callable[[], None] | None = None
        # Told each WhatsApp message id once its delivery is recorded `sent` (`Acks.stored`:
        # an ack that came before the record is applied now).
        self.on_sent: Callable[[str], Awaitable[object]] | None = None
        # Cuts a run short when its sends fail too often (told of each failure for good).
        self.spikes = spikes
        # Lowers the daily cap while the linked number is new.
        self.warmup = warmup
        # The account the session last said it works with, not yet told to `warmup`.
        self._number: str | None = None

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        await self._seed_caps()
        await self._take_back_own_leases()
        if self.spikes is not None:
            try:
                await self.spikes.tell_pending()
            except Exception:
                logger.exception("sender: could not look for runs cut short untold")
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sender")

    async def _take_back_own_leases(self) -> None:
        """Deliveries this worker name left `sending` when its process died go out again now
        (same key), instead of after their lease: the name is unique among live workers
        (`open_core` uses host and HTTP port, which only one live process can hold)."""
        now = self.clock.now()
        leased = await self.store.list_deliveries(
            DeliveryFilter(statuses=(DeliveryStatus.sending,), order="oldest")
        )
        for delivery in leased:
            if delivery.lease_owner != self.worker:
                continue
            logger.info("sender: delivery %s was being sent when we stopped; again", delivery.id)
            await self.store.apply(states.release_now(delivery, worker=self.worker, now=now))

    async def stop(self, drain_s: float = 10.0) -> None:
        """Let the send in flight finish (up to `drain_s` seconds), then stop.

        A send cut off here stays `sending` under its lease and is sent again, with the same
        idempotency key, by the next worker."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=drain_s)
            if not done:
                logger.warning("sender: send still in flight after %.0f s; cutting it", drain_s)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.reporter.aclose()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def working(self) -> bool:
        """The session was last known WORKING and sends are not held."""
        return self._session_state == SessionState.WORKING and not self._paused

    def _missed_acks(self) -> None:
        if self.on_gap is not None:
            self.on_gap()

    # --- what the rest of core tells the sender --------------------------------------
    def deliveries_queued(self) -> None:
        """New deliveries may be due (EngineHooks)."""
        self._wake.set()

    def session_changed(
        self,
        state: str,
        failure: SessionFailure | None = None,
        me: dict[str, str] | None = None,
    ) -> None:
        """The sidecar says its session is `state` (an event): pause unless WORKING, resume
        when it is. The sidecar answered, so the next probe waits a whole `probe_every_s`."""
        self._seen_number(state, me)
        self._probe_failures = 0
        self._next_probe_at = self.clock.now() + timedelta(seconds=self.probe_every_s)
        if self._apply_session(state, failure):
            self._wake.set()

    def _seen_number(self, state: str, me: dict[str, str] | None) -> None:
        """The session works with the account `me`: its warm-up is looked up (or starts) in
        the loop's next step."""
        if state == SessionState.WORKING and me is not None and me.get("id"):
            self._number = me["id"]
            self._wake.set()

    def _apply_session(self, state: str, failure: SessionFailure | None) -> bool:
        """Take `state` (and why it fails) as the session's; True when that pauses or resumes
        the worker."""
        previous, self._session_state = self._session_state, state
        self._session_failure = failure
        self._session_news += 1
        if state == SessionState.WORKING:
            if previous != SessionState.WORKING or self._paused:
                self._missed_acks()
            if self._paused:
                logger.info("sender: WhatsApp session is WORKING again; resuming")
                self._paused = False
                self._release_held = True
                return True
        elif not self._paused:
            logger.info("sender: WhatsApp session is %s; holding deliveries", state)
            self._paused = True
            return True
        return False

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "running": self.running,
            "paused": self._paused,
            "session_state": self._session_state,
            "worker": self.worker,
            "sent": self.sent_count,
            "sent_last_hour": len(self._sent_times) - bisect_right(self._sent_times, now - HOUR),
            "sent_last_day": len(self._sent_times),
        }

    # --- the loop --------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._probe()
        except Exception:
            logger.exception("sender: first health probe failed")
        try:
            while not self._stopping:
                try:
                    await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    if self.store_health is not None and isinstance(error, StoreNotWritable):
                        self.store_health.failed(error)
                    else:
                        logger.exception(
                            "sender: step failed; trying again in %.0f s", self.retry_base_s
                        )
                    await self._nap(self.retry_base_s)
        finally:
            await self._settle()
            await self._put_back_claimed_ahead()

    async def _step(self) -> None:
        now = self.clock.now()
        if self._number is not None:
            number, self._number = self._number, None
            if self.warmup is not None:
                await self.warmup.linked(number)
        if self._release_held:
            self._release_held = False
            released = await self.store.release_held(now=now)
            if released:
                logger.info("sender: released %d held deliveries", released)
        if self._paused:
            ahead, self._claimed_ahead = self._claimed_ahead, []
            for delivery in ahead:
                await self._hold(delivery, reason=self._hold_reason(), code="not_ready")
            await self._hold_due(now)
            if self._next_probe_at is None:
                self._next_probe_at = now + timedelta(seconds=self.probe_every_s)
            # From the time it is now: holding the due deliveries above takes time, and a
            # nap as long as at the start of the step would put the probe off by that long.
            await self._nap(max(0.0, (self._next_probe_at - self.clock.now()).total_seconds()))
            if self._paused and not self._stopping and self.clock.now() >= self._next_probe_at:
                await self._probe()
            return
        wait = self._pacing_wait(now)
        if wait > 0:
            await self._nap(wait)
            return
        batch, self._claimed_ahead = self._claimed_ahead, []
        if not batch:
            batch = await self.store.claim_deliveries(
                now=now, lease_s=self.lease_s, worker=self.worker, limit=self._room(now)
            )
        batch = await self._hold_cut(batch)
        if not batch:
            due = await self.store.next_delivery_due_at()
            await self._settle()
            # From the time it is now (the awaits above take time): a due delivery not
            # yet claimed is claimed at once.
            nap = self.idle_check_s
            if due is not None:
                nap = min(nap, max(0.0, (due - self.clock.now()).total_seconds()))
            await self._nap(nap)
            return
        await self._send(batch)

    async def _settle(self) -> None:
        """Wait until the last success is recorded."""
        task, self._recording = self._recording, None
        if task is None:
            return
        try:
            await task
        except Exception:
            logger.exception(
                "sender: could not record a sent delivery; it is sent again with the same "
                "key (and refused as a duplicate) after its lease"
            )

    async def _nap(self, seconds: float | None) -> None:
        """Sleep on the clock until `seconds` passed or someone woke the sender."""
        if self._wake.is_set() or self._stopping:
            self._wake.clear()
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if seconds is not None:
            # It ends `seconds` from now, not from when the sleeping task first runs (the
            # clock may move in between).
            until = self.clock.now() + timedelta(seconds=seconds)
            tasks.add(asyncio.ensure_future(self._sleep_until(until)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._wake.clear()

    async def _sleep_until(self, until: datetime) -> None:
        await self.clock.sleep(max(0.0, (until - self.clock.now()).total_seconds()))

    async def _probe(self) -> None:
        """Ask the sidecar for the session state (at start and while paused), then set when
        to ask next: `probe_every_s`, doubled per failed probe up to `probe_max_s`.

        It never wakes the worker itself (the loop that probes is the one running): waking
        here made the paused loop probe again at once, hundreds of times a second."""
        self.probe_count += 1
        try:
            health = await self.whatsapp.health()
        except WhatsAppError as exc:
            self._probe_failures += 1
            if self._probe_failures == 1:
                logger.warning(
                    "sender: the WhatsApp service does not answer (%s); asking again with "
                    "backoff up to every %.0f s",
                    exc,
                    self.probe_max_s,
                )
            self._next_probe_at = self.clock.now() + timedelta(seconds=self._probe_backoff())
            return
        back = self._probe_failures > 0
        if back:
            logger.info(
                "sender: the WhatsApp service answers again (after %d failed probes)",
                self._probe_failures,
            )
        self._probe_failures = 0
        self._next_probe_at = self.clock.now() + timedelta(seconds=self.probe_every_s)
        self._seen_number(health.state, health.me)
        first = self._session_state is None
        if not self._apply_session(health.state, health.failure) and back and health.working:
            # The session did not change, but its events may have been lost meanwhile.
            self._missed_acks()
        if first and health.working:
            # Deliveries held by an earlier process go out now that the session works.
            self._release_held = True

    def _probe_backoff(self) -> float:
        exponent = min(self._probe_failures - 1, 30)
        return min(self.probe_max_s, self.probe_every_s * 2.0**exponent)

    # --- pacing ----------------------------------------------------------------------
    async def _seed_caps(self) -> None:
        """Count sends of the last day from the store, so a restart keeps to the caps."""
        now = self.clock.now()
        recent = await self.store.list_deliveries(
            DeliveryFilter(
                statuses=(DeliveryStatus.sent, DeliveryStatus.delivered, DeliveryStatus.read),
                since=now - 2 * DAY,
                order="oldest",
            )
        )
        times = sorted(
            d.sent_at for d in recent if d.sent_at is not None and d.sent_at > now - DAY
        )
        self._sent_times = times

    def _pacing_wait(self, now: datetime) -> float:
        """Seconds until the gap and both caps allow the next send."""
        expired = bisect_right(self._sent_times, now - DAY)
        if expired:
            del self._sent_times[:expired]
        ready, _ = self._ready_at(now)
        return max(0.0, (ready - now).total_seconds())

    def _ready_at(self, now: datetime) -> tuple[datetime, str | None]:
        """When the gap and both caps allow the next send, and which cap holds it, if any."""
        ready, capped = max(self._next_send_at or now, now), None
        day, daily_cap = (
            len(self._sent_times) - bisect_right(self._sent_times, now - DAY),
            self._daily_cap(now),
        )
        if day >= daily_cap and self._sent_times[-daily_cap] + DAY > ready:
            ready, capped = self._sent_times[-daily_cap] + DAY, "daily"
        in_hour = len(self._sent_times) - bisect_right(self._sent_times, now - HOUR)
        if in_hour >= self.hourly_cap and self._sent_times[-self.hourly_cap] + HOUR > ready:
            ready, capped = self._sent_times[-self.hourly_cap] + HOUR, "hourly"
        return ready, capped

    def pacing(self) -> Pacing | None:
        """When the next message may go; None while nothing paces sends (no gap, no cap
        reached) or WhatsApp does not work (then they are held, and the card says why)."""
        if self._paused:
            return None
        now = self.clock.now()
        ready, capped = self._ready_at(now)
        if self.gap_max_s <= 0 and capped is None:
            return None
        warmup = self.warmup.today(now) if self.warmup is not None else None
        return Pacing(ready, self.gap_min_s, self.gap_max_s, capped, warmup)

    def caps(self) -> Caps:
        """Today's sends against the caps, and when the next may go while one is reached."""
        now = self.clock.now()
        ready, capped = self._ready_at(now)
        in_hour = len(self._sent_times) - bisect_right(self._sent_times, now - HOUR)
        in_day = len(self._sent_times) - bisect_right(self._sent_times, now - DAY)
        return Caps(
            sent_last_hour=in_hour,
            hourly_cap=self.hourly_cap,
            sent_last_day=in_day,
            daily_cap=self._daily_cap(now),
            next_at=ready if capped is not None else None,
            capped=capped,
            warmup=self.warmup.today(now) if self.warmup is not None else None,
        )

    def _cap_room(self, now: datetime) -> int:
        """Sends the hourly and daily caps allow right now."""
        in_hour = len(self._sent_times) - bisect_right(self._sent_times, now - HOUR)
        return min(self.hourly_cap - in_hour, self._daily_cap(now) - len(self._sent_times))

    def _daily_cap(self, now: datetime) -> int:
        """The daily cap now: lower while the linked number warms up."""
        return self.warmup.cap(now) if self.warmup is not None else self.daily_cap

    def _room(self, now: datetime) -> int:
        """How many deliveries to claim for the next sends: one with pacing; without, up to
        the window, never more than the caps allow (each claimed one may be sent)."""
        if self.gap_max_s > 0:
            return 1
        return max(1, min(self.send_window, self._cap_room(now)))

    def _gap(self) -> float:
        if self.gap_max_s <= 0:
            return 0.0
        return self._rng.uniform(self.gap_min_s, self.gap_max_s)

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        delay = min(self.retry_max_s, self.retry_base_s * 2.0 ** (attempts - 1))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    # --- one send --------------------------------------------------------------------
    async def _media_of(self, schedule_id: int) -> Media | None:
        now = self.clock.now()
        cached = self._media.get(schedule_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        schedule = await self.store.get_schedule(schedule_id)
        media = schedule.media if schedule is not None else None
        if len(self._media) > 1000:
            self._media.clear()
        self._media[schedule_id] = (media, now + timedelta(seconds=30))
        return media

    def _ahead_room(self, batch: list[Delivery]) -> int:
        """How many to claim while `batch` is on the wire: none with pacing (the gap comes
        first), else what the window and the caps allow once all of `batch` went out."""
        if self.gap_max_s > 0 or self._paused or self._stopping:
            return 0
        return min(self.send_window, self._cap_room(self.clock.now()) - len(batch))

    async def _send(self, batch: list[Delivery]) -> None:
        ahead: asyncio.Task[list[Delivery]] | None = None
        room = self._ahead_room(batch)
        if room > 0:
            ahead = asyncio.get_running_loop().create_task(
                self.store.claim_deliveries(
                    now=self.clock.now(), lease_s=self.lease_s, worker=self.worker, limit=room
                )
            )
        try:
            # Looked up once per schedule, not once per recipient of the batch.
            media = {
                schedule_id: await self._media_of(schedule_id)
                for schedule_id in dict.fromkeys(delivery.schedule_id for delivery in batch)
            }
            if len(batch) == 1:
                outcomes: list[Any] = [await self._send_one(batch[0], media[batch[0].schedule_id])]
            else:
                outcomes = await asyncio.gather(
                    *(self._send_one(d, media[d.schedule_id]) for d in batch),
                    return_exceptions=True,
                )
            sent = [
                (delivery, outcome)
                for delivery, outcome in zip(batch, outcomes, strict=True)
                if isinstance(outcome, SentMessage)
            ]
            if sent:
                # Record them while the next sends go out; a crash before the record lands
                # leaves them `sending`, and the retry with the same key is refused by the
                # sidecar.
                await self._settle()
                self._recording = asyncio.get_running_loop().create_task(self._sent(sent))
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            if ahead is not None:
                try:
                    self._claimed_ahead = await ahead
                except Exception as error:
                    if self.store_health is not None and isinstance(error, StoreNotWritable):
                        self.store_health.failed(error)
                    else:
                        logger.exception("sender: could not claim the next deliveries")
        self._next_send_at = self.clock.now() + timedelta(seconds=self._gap())

    async def _put_back_claimed_ahead(self) -> None:
        ahead, self._claimed_ahead = self._claimed_ahead, []
        for delivery in ahead:
            await self.store.apply(states.release(delivery, worker=self.worker))

    async def _send_one(self, delivery: Delivery, media: Media | None) -> SentMessage | None:
        """Send one delivery; return what the sidecar said on success (recorded by the
        caller), after recording any failure or hold here."""
        news = self._session_news
        try:
            sent = await self.whatsapp.send(
                delivery.recipient,
                delivery.text,
                idempotency_key=delivery.idempotency_key,
                media=media,
            )
        except WhatsAppNotReady as exc:
            await self._hold(delivery, reason=str(exc), code=exc.code)
            if self._session_news != news and self._session_state == SessionState.WORKING:
                # WORKING was heard while this send was refused (the session linked right
                # after): pausing now would keep it held until the next probe. It goes out
                # again at once; if the session dropped instead, that send is refused too.
                self._release_held = True
                self._wake.set()
            elif not self._paused:
                logger.info("sender: WhatsApp is not ready; holding deliveries")
                self._paused = True
                self._next_probe_at = self.clock.now() + timedelta(seconds=self.probe_every_s)
            return None
        except WhatsAppError as exc:
            await self._failed_attempt(delivery, exc, transient=exc.transient)
            return None
        except Exception as exc:
            # Not one of ours (a bug, an odd answer): try again later rather than lose it.
            logger.exception("sender: unexpected error sending delivery %s", delivery.id)
            await self._failed_attempt(delivery, exc, transient=True)
            return None
        if not sent.duplicate:
            self._sent_times.append(self.clock.now())  # counts toward the caps at once
        return sent

    async def _sent(self, sent: list[tuple[Delivery, SentMessage]]) -> None:
        now = self.clock.now()
        changes = [
            states.sent(delivery, message.id, worker=self.worker, now=now)
            for delivery, message in sent
        ]
        moved = set(
            await self.store.record_sent(
                [SentRecord(c.delivery_id, c.whatsapp_id, c.attempts) for c in changes],
                worker=self.worker,
                now=now,
            )
        )
        for delivery, message in sent:
            if delivery.id not in moved:
                logger.warning(
                    "sender: delivery %s was taken over while it was being sent; the other "
                    "worker records it (same idempotency key)",
                    delivery.id,
                )
                continue
            self.sent_count += 1
            await self._due_times.observe_sent(delivery.run_id, self.clock.now())
            logger.info(
                # Not WhatsApp's message id: it holds the recipient's number.
                "sender: delivery %s (schedule %s, run %s) sent%s",
                delivery.id,
                delivery.schedule_id,
                delivery.run_id,
                " (the sidecar had sent this key before)" if message.duplicate else "",
            )
            self.reporter.mark(delivery.run_id)
            if message.duplicate:
                # Sent by an earlier process, whose acks may have been lost with it.
                self._missed_acks()
            if self.on_sent is not None:
                await self.on_sent(message.id)

    async def _failed_attempt(
        self, delivery: Delivery, exc: Exception, *, transient: bool
    ) -> None:
        now = self.clock.now()
        code = exc.code if isinstance(exc, WhatsAppError) else "internal"
        change = states.failed_attempt(
            delivery,
            worker=self.worker,
            now=now,
            reason=str(exc) or type(exc).__name__,
            code=code,
            transient=transient,
            max_attempts=self.retry_max_attempts,
            backoff=self._backoff,
        )
        if isinstance(change, states.RetryLater):
            logger.info(
                "sender: delivery %s (schedule %s, run %s) attempt %d failed (%s); "
                "retrying in %.0f s",
                delivery.id,
                delivery.schedule_id,
                delivery.run_id,
                change.attempts,
                code,
                (change.next_attempt_at - now).total_seconds(),
            )
        else:
            logger.warning(
                "sender: delivery %s (schedule %s, run %s) failed for good (%s)",
                delivery.id,
                delivery.schedule_id,
                delivery.run_id,
                code,
            )
        applied = await self.store.apply(change)
        self.reporter.mark(delivery.run_id)
        if isinstance(change, states.Fail) and applied is not None:
            await self._check_spike(delivery.run_id)
        elif (
            applied is not None
            and self.spikes is not None
            and await self.spikes.holds_back(delivery.run_id)
        ):
            # Queued again, but its run was cut short meanwhile: held with the rest of it.
            hold = states.hold_for_spike(applied, now=now, reason=spikes.HELD_REASON)
            if hold is not None:
                await self.store.apply(hold)

    async def _check_spike(self, run_id: int) -> None:
        """A delivery of run `run_id` failed for good: cut the run short if its failures
        spiked (`core.delivery.spikes`)."""
        if self.spikes is None or not await self.spikes.spiked(run_id):
            return
        await self.spikes.cut_short(run_id)
        self._claimed_ahead = await self._hold_cut(self._claimed_ahead)
        self.reporter.mark(run_id)

    async def _hold_cut(self, claimed: list[Delivery]) -> list[Delivery]:
        """Give back the deliveries of runs cut short and not resumed among `claimed` (by
        this process or another, before or since the claim) and hold them with the rest of
        their run; return the others."""
        if self.spikes is None:
            return claimed
        cut = {
            run_id: await self.spikes.holds_back(run_id)
            for run_id in dict.fromkeys(d.run_id for d in claimed)
        }
        keep = []
        for delivery in claimed:
            if not cut[delivery.run_id]:
                keep.append(delivery)
                continue
            released = await self.store.apply(states.release(delivery, worker=self.worker))
            change = (
                states.hold_for_spike(released, now=self.clock.now(), reason=spikes.HELD_REASON)
                if released is not None
                else None
            )
            if change is not None:
                await self.store.apply(change)
        return keep

    async def _hold(self, delivery: Delivery, *, reason: str, code: str) -> None:
        logger.info(
            "sender: delivery %s (schedule %s, run %s) held (%s)",
            delivery.id,
            delivery.schedule_id,
            delivery.run_id,
            code,
        )
        await self.store.apply(
            states.hold(
                delivery, worker=self.worker, now=self.clock.now(), reason=reason, code=code
            )
        )
        self.reporter.mark(delivery.run_id)

    def _hold_reason(self) -> str:
        return states.hold_reason(self._session_state, self._session_failure)

    async def _hold_due(self, now: datetime) -> None:
        """While paused, move every due delivery to `held` so owners see why it waits."""
        while not self._stopping and self._paused:
            delivery = await self.store.claim_delivery(
                now=now, lease_s=self.lease_s, worker=self.worker
            )
            if delivery is None:
                return
            await self._hold(delivery, reason=self._hold_reason(), code="not_ready")

    @property
    def next_probe_at(self) -> datetime | None:
        """When the paused worker asks /health next (None before it first sets it)."""
        return self._next_probe_at
