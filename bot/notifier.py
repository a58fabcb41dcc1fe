"""Core's `Notifier` over Telegram: one message per run, edited as it changes, never a flood.

Every message leaves through `Outbox`, a queue that keeps about one message per second per
chat, waits `retry_after` on a 429 and then sends, waits out a Telegram that does not answer
with the queue kept (nothing is dropped without a log line), and folds runs that finish while a
chat is being paced into one digest message. Which message shows which run is kept in the
store, so after a restart the same message is edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup
from aiogram.utils.backoff import Backoff, BackoffConfig
from pydantic import ValidationError

from bot import ui
from core.domain.models import Ask, Delivery, DeliveryFilter, DeliveryStatus, Run, Schedule
from core.domain.session import SessionFailure, explain
from core.services import Pacing, Question, Spike, count_telegram_error

logger = logging.getLogger(__name__)

# Telegram allows about 30 messages a second over all chats.
GLOBAL_GAP_S = 1 / 30
# Runs whose message is remembered for editing; older runs' updates start a new message.
REMEMBERED_RUNS = 2000
# Runs folded into one digest message at most; more start another message.
DIGEST_MAX_RUNS = 20


class Item:
    """Something to show in one chat; `deliver` may be called again after a failure."""

    async def deliver(self, bot: Bot) -> None:
        raise NotImplementedError


@dataclass(eq=False)
class Note(Item):
    """A message sent once."""

    chat_id: int
    text: str
    markup: InlineKeyboardMarkup | None = None
    photo: bytes | None = None
    sent: Callable[[int], None] | None = None
    # Awaited once Telegram accepted the message (a question's ask is then marked told).
    accepted: Callable[[], Awaitable[None]] | None = None

    async def deliver(self, bot: Bot) -> None:
        if self.photo is not None:
            message = await bot.send_photo(
                self.chat_id,
                BufferedInputFile(self.photo, filename="whatsapp-qr.png"),
                caption=ui.cap(self.text, 1024),
                reply_markup=self.markup,
            )
        else:
            message = await bot.send_message(
                self.chat_id, ui.cap(self.text), reply_markup=self.markup
            )
        if self.sent is not None:
            self.sent(message.message_id)
        if self.accepted is not None:
            await self.accepted()


@dataclass(eq=False)
class Deletion(Item):
    """Delete the message `message_id()` names when its turn comes (it may have been sent
    by an item just before this one)."""

    chat_id: int
    message_id: Callable[[], int | None]

    async def deliver(self, bot: Bot) -> None:
        message_id = self.message_id()
        if message_id is None:
            return
        with contextlib.suppress(TelegramBadRequest):  # gone already: fine
            await bot.delete_message(self.chat_id, message_id)


@dataclass(frozen=True)
class AckClock:
    """Core's time at an alert about messages not on the phone, carried forward by the event
    loop's clock (the wall clock in production), so a later edit of a card counts the minutes
    as of that edit; and the threshold (ACK_ALERT_AFTER_S) the cards mark by."""

    at: datetime
    loop_at: float
    after_s: float

    def now(self) -> datetime:
        return self.at + timedelta(seconds=asyncio.get_running_loop().time() - self.loop_at)


@dataclass
class RunState:
    schedule: Schedule | None
    run: Run
    deliveries: list[Delivery]


@dataclass(eq=False)
class RunCard(Item):
    """The message that shows one run, or several as a digest; edited in place."""

    chat_id: int
    runs: dict[int, RunState] = field(default_factory=dict)
    message_id: int | None = None
    shown: str | None = None
    queued: bool = False
    in_flight: bool = False
    # Called after the card went out as a new message (to remember its id across restarts).
    sent: Callable[[RunCard], Awaitable[None]] | None = None
    # Set once core told of messages not on the phone: the card marks those past the threshold.
    acks: AckClock | None = None
    # When the sender may send next (pacing, caps): the card says it for waiting messages.
    pacing: Callable[[], Pacing | None] | None = None

    def render(self) -> tuple[str, InlineKeyboardMarkup | None]:
        states = list(self.runs.values())
        now = self.acks.now() if self.acks is not None else None
        after_s = self.acks.after_s if self.acks is not None else 0.0
        failed = [
            s.run.id
            for s in states
            if any(d.status is DeliveryStatus.failed for d in s.deliveries)
        ]
        if len(states) == 1:
            state = states[0]
            text = ui.run_card(
                state.schedule,
                state.run,
                state.deliveries,
                now=now,
                ack_after_s=after_s,
                pacing=self.pacing() if self.pacing is not None else None,
            )
        else:
            lines = [f"<b>{len(states)} runs finished together</b>"]
            lines += [
                ui.run_summary_line(s.schedule, s.run, s.deliveries, now=now, ack_after_s=after_s)
                for s in states
            ]
            lines.append("/logs shows every delivery.")
            text = ui.cap("\n".join(lines))
        return text, ui.retry_buttons(failed)

    async def deliver(self, bot: Bot) -> None:
        self.queued = False
        text, markup = self.render()
        if self.message_id is not None and text + repr(markup) == self.shown:
            return
        if self.message_id is not None:
            try:
                await bot.edit_message_text(
                    text, chat_id=self.chat_id, message_id=self.message_id, reply_markup=markup
                )
                self.shown = text + repr(markup)
                return
            except TelegramBadRequest as error:
                if "not modified" in error.message:
                    self.shown = text + repr(markup)
                    return
                if "not found" not in error.message:
                    raise
                # The person deleted it: show the run in a new message.
        message = await bot.send_message(self.chat_id, text, reply_markup=markup)
        self.message_id = message.message_id
        self.shown = text + repr(markup)
        if self.sent is not None:
            await self.sent(self)


# While Telegram does not answer, try again after about 1 s, then longer, at most 15 s apart.
TELEGRAM_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=15.0, factor=1.6, jitter=0.1)
# Parts of wasched that tell `TelegramOutage` whether Telegram answers them.
UPDATES = "updates"
NOTIFICATIONS = "notifications"
# True in a task that waits out Telegram's errors itself (the Outbox, the start-up check): the
# session's request middleware then hands each error straight back, without waiting or retrying.
CALLER_RETRIES: ContextVar[bool] = ContextVar("telegram_caller_retries", default=False)
_BOT_TOKEN = re.compile(r"bot\d+:[\w-]+")


# Errors that may mean Telegram did not answer; `telegram_unreachable` decides.
MAYBE_UNREACHABLE = (TelegramNetworkError, TelegramServerError, ClientDecodeError)


def telegram_unreachable(error: BaseException) -> bool:
    """Whether `error` says Telegram did not answer (network, 5xx, a gateway's error page), so
    the same request may work later."""
    if isinstance(error, ClientDecodeError):
        # Not JSON at all: the nginx in front of the Bot API answers 502 and 504 with a page.
        return not isinstance(error.original, ValidationError)
    return isinstance(error, TelegramNetworkError | TelegramServerError)


def error_kind(error: BaseException) -> str:
    """The `core.adapters.counters` kind of an error `telegram_unreachable` accepts."""
    return "network" if isinstance(error, TelegramNetworkError) else "server"


def describe(error: BaseException) -> str:
    """`error` in one line for the log, without the bot token."""
    if isinstance(error, ClientDecodeError):
        text = "an answer that is not the Bot API's, e.g. a gateway's error page"
    else:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return _BOT_TOKEN.sub("bot<token>", text)


class TelegramOutage:
    """Whether Telegram answers, as each part of the bot finds it: an outage is logged once,
    when the first part finds Telegram unreachable, and once more when the last one that did
    hears from it again."""

    def __init__(self) -> None:
        self._down: set[str] = set()
        self._since = 0.0

    @property
    def down(self) -> bool:
        return bool(self._down)

    def failed(self, part: str, error: BaseException) -> None:
        if not self._down:
            self._since = time.monotonic()
            logger.warning(
                "Telegram does not answer (%s): scheduled WhatsApp messages still go out; "
                "replies and notifications wait, trying again every few seconds",
                describe(error),
            )
        self._down.add(part)

    def answered(self, part: str) -> None:
        if part not in self._down:
            return
        self._down.discard(part)
        if not self._down:
            logger.info(
                "Telegram answers again after %.0f s; what waited goes out now",
                time.monotonic() - self._since,
            )


class Outbox:
    """Sends items in order per chat, at most one per `pace_s` seconds in each chat.

    While Telegram does not answer (network error, 5xx) nothing is given up: the queue is kept
    and one item is tried again after `backoff` (bounded), and the outage is logged once in
    `outage`. Errors no retry fixes (400, 403) give the item up with a log line.
    """

    def __init__(self, bot: Bot, *, pace_s: float = 1.0) -> None:
        self._bot = bot
        self._pace_s = pace_s
        self._queues: dict[int, deque[Item]] = {}
        self._next_at: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._global_next_at = 0.0
        # `wasched run` shares these with the rest of the bot (the same outage, its backoff).
        self.outage = TelegramOutage()
        self.backoff = TELEGRAM_BACKOFF

    def put(self, chat_id: int, item: Item) -> None:
        self._queues.setdefault(chat_id, deque()).append(item)
        self._idle.clear()
        self._wake.set()

    def pending(self, chat_id: int) -> Iterable[Item]:
        return tuple(self._queues.get(chat_id, ()))

    def idle(self) -> bool:
        return not any(self._queues.values())

    async def drained(self) -> None:
        """Return once everything put so far has been shown (or given up)."""
        await self._idle.wait()

    async def drain(self, within_s: float = 5.0) -> bool:
        """Wait up to `within_s` until everything put so far has been shown (or given up);
        False when something is still waiting."""
        try:
            async with asyncio.timeout(within_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def running(self, *, drain_s: float = 5.0) -> AsyncIterator[Outbox]:
        self._task = asyncio.create_task(self._work(), name="telegram-outbox")
        try:
            yield self
        finally:
            await self.drain(drain_s)
            left = sum(len(q) for q in self._queues.values())
            if left:
                logger.warning("stopping with %s Telegram message(s) unsent", left)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _work(self) -> None:
        # This task waits out Telegram's errors itself; the session's middleware must not
        # (a 429 for one chat would hold every chat's messages there).
        CALLER_RETRIES.set(True)
        loop = asyncio.get_running_loop()
        retries = Backoff(self.backoff)
        while True:
            ready = [(self._next_at.get(c, 0.0), c) for c, q in self._queues.items() if q]
            if not ready:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            at, chat_id = min(ready)
            at = max(at, self._global_next_at)
            if at > loop.time():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(at - loop.time()):
                        await self._wake.wait()
                continue
            queue = self._queues[chat_id]
            item = queue[0]
            if isinstance(item, RunCard):
                item.in_flight = True
            try:
                await item.deliver(self._bot)
            except TelegramRetryAfter as error:
                # Counted where it is raised (the session's request middleware).
                logger.warning(
                    "Telegram asks to wait %s s before chat %s", error.retry_after, chat_id
                )
                self._next_at[chat_id] = loop.time() + error.retry_after
                self._keep(item)
                continue
            except MAYBE_UNREACHABLE as error:
                if not telegram_unreachable(error):
                    count_telegram_error("internal")
                    logger.error(
                        "could not read Telegram's answer for chat %s: %s", chat_id, error.message
                    )
                else:
                    # Telegram is down for every chat: wait, then try this item again.
                    count_telegram_error(error_kind(error))
                    self.outage.failed(NOTIFICATIONS, error)
                    self._global_next_at = loop.time() + next(retries)
                    self._keep(item)
                    continue
            except TelegramForbiddenError as error:
                count_telegram_error("forbidden")
                logger.error("chat %s does not accept messages from the bot: %s", chat_id, error)
            except TelegramAPIError as error:
                count_telegram_error("api")
                logger.error("Telegram refused a message to chat %s: %s", chat_id, error)
            except Exception:
                # A bug in one message must not stop every later one.
                count_telegram_error("internal")
                logger.exception("could not show a message in chat %s", chat_id)
            finally:
                if isinstance(item, RunCard):
                    item.in_flight = False
            # Telegram answered (with the message, or with why it refuses it).
            self.outage.answered(NOTIFICATIONS)
            retries.reset()
            queue.popleft()
            if isinstance(item, RunCard) and item.queued:
                queue.append(item)  # changed while it was being sent: show the latest state
            self._next_at[chat_id] = loop.time() + self._pace_s
            self._global_next_at = loop.time() + min(GLOBAL_GAP_S, self._pace_s)

    @staticmethod
    def _keep(item: Item) -> None:
        """`item` stays first in its queue: a card there takes later changes of its runs
        instead of being queued a second time."""
        if isinstance(item, RunCard):
            item.queued = True


Audience = Callable[[], Awaitable[Iterable[int]]]
# Where the message of run N is kept (chat:message), so a restart edits it instead of
# starting another; forgotten once every delivery of the run is read, failed or missed.
RUN_MESSAGE_KEY = "telegram.run_message.{}"
SETTLED = frozenset({DeliveryStatus.read, DeliveryStatus.failed, DeliveryStatus.missed})


# Set the first time WhatsApp works, so that the first link is not announced as a recovery.
LINKED_KEY = "whatsapp_linked_before"


class KeyValues(Protocol):
    """What the notifier needs of the store to remember run messages (and to tell whether
    WhatsApp worked before: a message was ever sent)."""

    async def get_value(self, key: str) -> str | None: ...
    async def set_value(self, key: str, value: str | None) -> None: ...
    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]: ...


# A delivery in one of these went out through WhatsApp: it was linked then.
WENT_OUT = (DeliveryStatus.sent, DeliveryStatus.delivered, DeliveryStatus.read)


class TelegramNotifier:
    """Implements `core.delivery.notifier.Notifier` by messages to the owner and admins."""

    def __init__(self, bot: Bot, *, admin_ids: Iterable[int], pace_s: float = 1.0) -> None:
        self.outbox = Outbox(bot, pace_s=pace_s)
        self._admin_ids = frozenset(admin_ids)
        self._audience: Audience | None = None
        self._values: KeyValues | None = None
        self._cards: dict[int, RunCard] = {}  # run id -> card
        # Set by the first alert about messages not on the phone (`deliveries_unacked`).
        self._acks: AckClock | None = None
        self._pacing: Callable[[], Pacing | None] | None = None
        # Why WhatsApp does not work (`SessionWords.alert_key`) as alerted in this outage.
        self._outage_reasons: set[str] = set()
        # Chats that asked for /link and wait to hear it is linked.
        self._link_watchers: set[int] = set()
        # chat id -> the QR photo it shows now
        self._qr_messages: dict[int, int] = {}
        # WhatsApp worked once (`LINKED_KEY` in the store): later recoveries say "again".
        self._linked = False
        # Heard before the store was known (`remember_in`): written to it then.
        self._saving_linked: asyncio.Task[None] | None = None

    def set_pacing(self, pacing: Callable[[], Pacing | None]) -> None:
        """Where cards learn when the next message may go (`Sender.pacing`)."""
        self._pacing = pacing

    def set_audience(self, audience: Audience) -> None:
        """Who hears about WhatsApp's session (admins and the owner)."""
        self._audience = audience

    def remember_in(self, values: KeyValues) -> None:
        """Keep which message shows which run in `values` (the store), across restarts."""
        self._values = values
        if self._linked:  # WhatsApp worked before the store was known: remember it now
            self._saving_linked = asyncio.get_running_loop().create_task(self._remember_linked())

    async def drain(self) -> None:
        """Show what waits (bounded) while the store is still open, so that each run card's
        message id is remembered; then stop using the store, which closes next."""
        await self.outbox.drain()
        if self._saving_linked is not None:
            await self._saving_linked
        self._values = None

    async def _people(self) -> list[int]:
        if self._audience is None:
            return sorted(self._admin_ids)
        return sorted(set(await self._audience()))

    # --- runs ----------------------------------------------------------------------------

    async def run_updated(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery]
    ) -> None:
        chat_id = run.owner_id
        card = self._cards.get(run.id)
        if card is None:
            recalled = await self._recall(run.id, chat_id)
            # Another update of this run may have made its card meanwhile.
            card = self._cards.get(run.id) or recalled or self._open_card(chat_id)
            card.sent = self._remember
            self._cards[run.id] = card
            while len(self._cards) > REMEMBERED_RUNS:
                del self._cards[next(iter(self._cards))]
        card.runs[run.id] = RunState(schedule, run, list(deliveries))
        card.acks = self._acks
        card.pacing = self._pacing
        if deliveries and all(d.status in SETTLED for d in deliveries):
            await self._forget(run.id)
        if not card.queued:
            card.queued = True
            if not card.in_flight:
                self.outbox.put(chat_id, card)

    async def _recall(self, run_id: int, chat_id: int) -> RunCard | None:
        if self._values is None:
            return None
        try:
            value = await self._values.get_value(RUN_MESSAGE_KEY.format(run_id))
        except Exception:
            logger.exception("could not read which message shows run %s", run_id)
            return None
        chat, _, message = (value or "").partition(":")
        if chat != str(chat_id) or not message.isdigit():
            return None
        return RunCard(chat_id=chat_id, message_id=int(message))

    async def _remember(self, card: RunCard) -> None:
        if self._values is None or len(card.runs) != 1 or card.message_id is None:
            return  # a digest is not edited again after a restart
        [(run_id, state)] = card.runs.items()
        if state.deliveries and all(d.status in SETTLED for d in state.deliveries):
            return  # nothing will change any more
        try:
            await self._values.set_value(
                RUN_MESSAGE_KEY.format(run_id), f"{card.chat_id}:{card.message_id}"
            )
        except Exception:
            logger.exception("could not remember which message shows run %s", run_id)

    async def _forget(self, run_id: int) -> None:
        if self._values is None:
            return
        try:
            await self._values.set_value(RUN_MESSAGE_KEY.format(run_id), None)
        except Exception:
            logger.exception("could not forget the message of run %s", run_id)

    def _open_card(self, chat_id: int) -> RunCard:
        for item in self.outbox.pending(chat_id):
            # A card still waiting for its first send takes more runs: that is the digest.
            if (
                isinstance(item, RunCard)
                and item.message_id is None
                and not item.in_flight
                and len(item.runs) < DIGEST_MAX_RUNS
            ):
                return item
        return RunCard(chat_id=chat_id)

    async def deliveries_unacked(
        self,
        schedule: Schedule | None,
        run: Run,
        deliveries: list[Delivery],
        *,
        now: datetime,
        after_s: float,
        tell: bool = True,
    ) -> None:
        """Mark the run's card; with `tell` (core says it once per run) tell its owner, with
        Check again and Send again."""
        self._acks = AckClock(now, asyncio.get_running_loop().time(), after_s)
        await self.run_updated(schedule, run, deliveries)
        if not tell:
            return
        text = ui.unacked_alert(schedule, run, deliveries, now=now, after_s=after_s)
        self.outbox.put(run.owner_id, Note(run.owner_id, text, ui.unacked_buttons(run.id)))

    async def run_missed(self, schedule: Schedule, run: Run, late_by_s: float) -> None:
        self.outbox.put(run.owner_id, Note(run.owner_id, ui.missed_text(schedule, run, late_by_s)))

    # --- WhatsApp session ----------------------------------------------------------------

    def watch_link(self, chat_id: int, qr_message_id: int | None) -> None:
        """`chat_id` asked for /link (and sees QR photo `qr_message_id`): keep the QR fresh
        and say when WhatsApp is linked."""
        self._link_watchers.add(chat_id)
        if qr_message_id is not None:
            self._qr_messages[chat_id] = qr_message_id

    def _qr_message(self, chat_id: int) -> Callable[[], int | None]:
        return lambda: self._qr_messages.pop(chat_id, None)

    async def session_changed(
        self, state: str, me: dict[str, str] | None, failure: SessionFailure | None = None
    ) -> None:
        """One alert per outage, one more for each new reason while it lasts (never for the
        same reason twice), and one message when it works again."""
        words = explain(state, failure)
        if words.working:
            was_down, self._outage_reasons = bool(self._outage_reasons), set()
            who = ui.me_text(me)
            told: set[int] = set()
            first = not await self._linked_before()
            if was_down:
                text = (
                    f"✅ WhatsApp is linked{who}. Scheduled messages go out from now on."
                    if first
                    else f"✅ WhatsApp is working again{who}. Held messages are going out now."
                )
                for chat_id in await self._people():
                    told.add(chat_id)
                    self.outbox.put(chat_id, Note(chat_id, text))
            if first:
                await self._remember_linked()
            for chat_id in sorted(self._link_watchers):
                self.outbox.put(chat_id, Deletion(chat_id, self._qr_message(chat_id)))
                if chat_id not in told:
                    self.outbox.put(chat_id, Note(chat_id, f"✅ WhatsApp is linked{who}."))
            self._link_watchers.clear()
            return
        key = words.alert_key
        if key is None or key in self._outage_reasons:
            return
        again = bool(self._outage_reasons)
        self._outage_reasons.add(key)
        # Whoever waits after /link hears it too: what they were promised may not come now.
        watchers = set(self._link_watchers)
        text = ui.session_alert(words, again=again)
        for chat_id in sorted(set(await self._people()) | watchers):
            self.outbox.put(chat_id, Note(chat_id, text))

    async def qr_available(self, qr: str) -> None:
        if not self._link_watchers:
            return
        png = ui.qr_png(qr)
        for chat_id in sorted(self._link_watchers):
            self.outbox.put(chat_id, Deletion(chat_id, self._qr_message(chat_id)))
            self.outbox.put(
                chat_id,
                Note(chat_id, ui.QR_CAPTION, photo=png, sent=self._qr_sent(chat_id)),
            )

    async def _linked_before(self) -> bool:
        """Whether WhatsApp worked before (in the store, across restarts): the first link is
        no recovery and holds nothing back. A wasched linked before `LINKED_KEY` existed has
        sent messages: that counts (and is remembered under the key)."""
        if self._linked:
            return True
        if self._values is None:
            return False
        try:
            if await self._values.get_value(LINKED_KEY) is not None:
                self._linked = True
                return True
            went_out = await self._values.list_deliveries(
                DeliveryFilter(statuses=WENT_OUT, limit=1)
            )
        except Exception:
            logger.exception("could not read whether WhatsApp was linked before")
            return True  # the usual case; the recovery text is right then
        if went_out:
            await self._remember_linked()
        return self._linked

    async def _remember_linked(self) -> None:
        self._linked = True
        if self._values is None:
            return
        try:
            await self._values.set_value(LINKED_KEY, "1")
        except Exception:
            logger.exception("could not remember that WhatsApp was linked")

    def _qr_sent(self, chat_id: int) -> Callable[[int], None]:
        def remember(message_id: int) -> None:
            self._qr_messages[chat_id] = message_id

        return remember

    # --- schedules that end --------------------------------------------------------------

    async def schedule_done(self, schedule: Schedule, occurrences: int) -> None:
        """Tell the owner once that a recurring schedule has ended (core calls this once)."""
        text = ui.schedule_done_text(schedule, occurrences)
        self.outbox.put(
            schedule.owner_id,
            Note(schedule.owner_id, text, ui.schedule_done_buttons(schedule)),
        )

    async def schedule_auto_paused(
        self, schedule: Schedule | None, run: Run, deliveries: list[Delivery], *, spike: Spike
    ) -> None:
        """Refresh the run's card (its rest shows held) and tell the owner why, with Resume
        and Show failures."""
        await self.run_updated(schedule, run, deliveries)
        text = ui.auto_paused_text(schedule, run, spike)
        self.outbox.put(run.owner_id, Note(run.owner_id, text, ui.auto_paused_buttons(run.id)))

    # --- ask me first ----------------------------------------------------------------------

    async def ask_before_run(
        self, question: Question, told: Callable[[], Awaitable[None]]
    ) -> None:
        text, markup = ui.ask_question(question)
        owner = question.schedule.owner_id
        self.outbox.put(owner, Note(owner, text, markup=markup, accepted=told))

    async def ask_unanswered(self, schedule: Schedule, ask: Ask) -> None:
        self.outbox.put(
            schedule.owner_id, Note(schedule.owner_id, ui.ask_unanswered(schedule, ask))
        )
