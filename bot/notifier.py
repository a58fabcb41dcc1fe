"""Core's `Notifier` over Telegram: one message per run, edited as it changes, never a flood.

Every message leaves through `Outbox`, a queue that keeps about one message per second per
chat, waits `retry_after` on a 429 and then sends (nothing is dropped without a log line), and
folds runs that finish while a chat is being paced into one digest message. Which message shows
which run is kept in the store, so after a restart the same message is edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot import ui
from core.counters import count_telegram_error
from core.models import Delivery, DeliveryStatus, Run, Schedule

logger = logging.getLogger(__name__)

# Telegram allows about 30 messages a second over all chats.
GLOBAL_GAP_S = 1 / 30
# Runs whose message is remembered for editing; older runs' updates start a new message.
REMEMBERED_RUNS = 2000
# Runs folded into one digest message at most; more start another message.
DIGEST_MAX_RUNS = 20
NETWORK_ATTEMPTS = 5
WORKING = "WORKING"


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

    def render(self) -> tuple[str, InlineKeyboardMarkup | None]:
        states = list(self.runs.values())
        failed = [
            s.run.id
            for s in states
            if any(d.status is DeliveryStatus.failed for d in s.deliveries)
        ]
        if len(states) == 1:
            state = states[0]
            text = ui.run_card(state.schedule, state.run, state.deliveries)
        else:
            lines = [f"<b>{len(states)} runs finished together</b>"]
            lines += [ui.run_summary_line(s.schedule, s.run, s.deliveries) for s in states]
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


class Outbox:
    """Sends items in order per chat, at most one per `pace_s` seconds in each chat."""

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

    @contextlib.asynccontextmanager
    async def running(self, *, drain_s: float = 5.0) -> AsyncIterator[Outbox]:
        self._task = asyncio.create_task(self._work(), name="telegram-outbox")
        try:
            yield self
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    await self._idle.wait()
            left = sum(len(q) for q in self._queues.values())
            if left:
                logger.warning("stopping with %s Telegram message(s) unsent", left)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        failures: dict[int, int] = {}
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
                # Counted where it is raised (the session's WaitWhenFlooded middleware).
                logger.warning(
                    "Telegram asks to wait %s s before chat %s", error.retry_after, chat_id
                )
                self._next_at[chat_id] = loop.time() + error.retry_after
                continue
            except (TelegramNetworkError, TelegramServerError) as error:
                count_telegram_error("network")
                failures[id(item)] = failures.get(id(item), 0) + 1
                attempt = failures[id(item)]
                if attempt < NETWORK_ATTEMPTS:
                    logger.warning("Telegram unreachable (%s); trying again", error)
                    self._next_at[chat_id] = loop.time() + min(30.0, 2.0**attempt)
                    continue
                logger.error(
                    "gave up a message to chat %s after %s tries: %s", chat_id, attempt, error
                )
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
            failures.pop(id(item), None)
            queue.popleft()
            if isinstance(item, RunCard) and item.queued:
                queue.append(item)  # changed while it was being sent: show the latest state
            self._next_at[chat_id] = loop.time() + self._pace_s
            self._global_next_at = loop.time() + min(GLOBAL_GAP_S, self._pace_s)


Audience = Callable[[], Awaitable[Iterable[int]]]
# Where the message of run N is kept (chat:message), so a restart edits it instead of
# starting another; forgotten once every delivery of the run is read, failed or missed.
RUN_MESSAGE_KEY = "telegram.run_message.{}"
SETTLED = frozenset({DeliveryStatus.read, DeliveryStatus.failed, DeliveryStatus.missed})


class KeyValues(Protocol):
    """What the notifier needs of the store to remember run messages."""

    async def get_value(self, key: str) -> str | None: ...
    async def set_value(self, key: str, value: str | None) -> None: ...


class TelegramNotifier:
    """Implements `core.notifier.Notifier` by messages to the owner and admins."""

    def __init__(self, bot: Bot, *, admin_ids: Iterable[int], pace_s: float = 1.0) -> None:
        self.outbox = Outbox(bot, pace_s=pace_s)
        self._admin_ids = frozenset(admin_ids)
        self._audience: Audience | None = None
        self._values: KeyValues | None = None
        self._cards: dict[int, RunCard] = {}  # run id -> card
        self._session_state: str | None = None
        self._alerted = False
        # Chats that asked for /link and wait to hear it is linked.
        self._link_watchers: set[int] = set()
        # chat id -> the QR photo it shows now
        self._qr_messages: dict[int, int] = {}

    def set_audience(self, audience: Audience) -> None:
        """Who hears about WhatsApp's session (admins and the owner)."""
        self._audience = audience

    def remember_in(self, values: KeyValues) -> None:
        """Keep which message shows which run in `values` (the store), across restarts."""
        self._values = values

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

    async def session_changed(self, state: str, me: dict[str, str] | None) -> None:
        previous, self._session_state = self._session_state, state
        if state == WORKING:
            who = ui.me_text(me)
            told: set[int] = set()
            if self._alerted:
                self._alerted = False
                for chat_id in await self._people():
                    told.add(chat_id)
                    self.outbox.put(
                        chat_id,
                        Note(
                            chat_id,
                            f"✅ WhatsApp is working again{who}. Held messages are going out now.",
                        ),
                    )
            for chat_id in sorted(self._link_watchers):
                self.outbox.put(chat_id, Deletion(chat_id, self._qr_message(chat_id)))
                if chat_id not in told:
                    self.outbox.put(chat_id, Note(chat_id, f"✅ WhatsApp is linked{who}."))
            self._link_watchers.clear()
            return
        if state in ("STARTING",) or self._alerted or previous == state:
            return
        self._alerted = True
        words = {
            "SCAN_QR_CODE": "is not linked (logged out or never linked)",
            "FAILED": "failed",
            "STOPPED": "stopped",
        }.get(state, f"is {escape(state)}")
        for chat_id in await self._people():
            self.outbox.put(
                chat_id,
                Note(
                    chat_id,
                    f"⚠️ WhatsApp {words}. Messages wait (held) until it works again. "
                    "Send /link to link it.",
                ),
            )

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

    def _qr_sent(self, chat_id: int) -> Callable[[int], None]:
        def remember(message_id: int) -> None:
            self._qr_messages[chat_id] = message_id

        return remember
