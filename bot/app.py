"""`wasched run`: core and the Telegram bot in one process, built in one lifespan.

Telegram is not needed to send: when it does not answer at start, core starts anyway and sends
what is due, and the bot keeps asking Telegram in the background (bounded backoff) until it
answers, then sets the command menu and polls. Only a token Telegram refuses stops start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.methods import GetUpdates
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot import ui
from bot.access import Access, AccessMiddleware
from bot.notifier import (
    CALLER_RETRIES,
    MAYBE_UNREACHABLE,
    TELEGRAM_BACKOFF,
    UPDATES,
    TelegramNotifier,
    TelegramOutage,
    describe,
    error_kind,
    telegram_unreachable,
)
from bot.routers import all_routers
from core.app import open_core
from core.config import Settings, load_settings
from core.domain.errors import ConfigError
from core.services import count_telegram_error

if TYPE_CHECKING:
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

logger = logging.getLogger(__name__)

# A reply Telegram holds back for at most this long is waited for and sent; longer waits
# are left to the caller (the notifier's outbox keeps such messages and sends them later).
FLOOD_WAIT_MAX_S = 30
FLOOD_ATTEMPTS = 3
# A reply Telegram does not take (5xx, network) is sent again for up to this long in all.
REPLY_RETRY_S = 30.0
REPLY_BACKOFF = BackoffConfig(min_delay=0.5, max_delay=8.0, factor=2.0, jitter=0.1)
REFUSED_TOKEN = (
    "TELEGRAM_BOT_TOKEN was refused by Telegram (401 Unauthorized): copy it again "
    "from @BotFather into .env"
)


class RetryRequests(BaseRequestMiddleware):
    """Every request to Telegram passes here. On 429 (TelegramRetryAfter) wait as told and
    send again; fetch updates again, with bounded backoff, until Telegram answers (the outage
    logged once in `outage`); send a reply again on 5xx or a network error for up to
    `reply_retry_s`. So a few seconds of Telegram errors lose no reply.

    A request made where `CALLER_RETRIES` is set (the Outbox, the start-up check) passes
    straight through: its caller waits out errors itself, per chat.
    """

    def __init__(
        self,
        *,
        outage: TelegramOutage | None = None,
        backoff: BackoffConfig = TELEGRAM_BACKOFF,
        reply_backoff: BackoffConfig = REPLY_BACKOFF,
        reply_retry_s: float = REPLY_RETRY_S,
    ) -> None:
        self.outage = outage or TelegramOutage()
        self._backoff = backoff
        self._reply_backoff = reply_backoff
        self._reply_retry_s = reply_retry_s

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if CALLER_RETRIES.get():
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter:
                count_telegram_error("retry_after")
                raise
        if isinstance(method, GetUpdates):
            return await self._fetch_updates(make_request, bot, method)
        return await self._send(make_request, bot, method)

    async def _fetch_updates(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # aiogram's polling would log two lines per failed try; here an outage is one line.
        retries = Backoff(self._backoff)
        while True:
            try:
                response = await self._send(make_request, bot, method, retry=False)
            except MAYBE_UNREACHABLE as error:
                if not telegram_unreachable(error):
                    raise
                self.outage.failed(UPDATES, error)
                await retries.asleep()
                continue
            self.outage.answered(UPDATES)
            return response

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        *,
        retry: bool = True,
    ) -> Response[TelegramType]:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._reply_retry_s
        retries = Backoff(self._reply_backoff)
        floods = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                count_telegram_error("retry_after")
                floods += 1
                if floods == FLOOD_ATTEMPTS or error.retry_after > FLOOD_WAIT_MAX_S:
                    raise
                logger.warning("Telegram asks to wait %s s; waiting", error.retry_after)
                delay: float = error.retry_after
            except MAYBE_UNREACHABLE as error:
                if not retry or not telegram_unreachable(error):
                    raise
                count_telegram_error(error_kind(error))
                delay = next(retries)
                if loop.time() + delay > give_up_at:
                    logger.warning(
                        "Telegram did not take %s within %g s (%s); given up",
                        method.__api_method__,
                        self._reply_retry_s,
                        describe(error),
                    )
                    raise
            await asyncio.sleep(delay)


def build_bot(settings: Settings, *, requests: RetryRequests | None = None) -> Bot:
    """The Bot, pointed at TELEGRAM_API_URL when set (a local or fake Bot API server), its
    requests through `requests` (by default a `RetryRequests` of its own)."""
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_URL))
        if settings.TELEGRAM_API_URL
        else AiohttpSession()
    )
    session.middleware(requests or RetryRequests())
    return Bot(
        settings.require_bot_token(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def build_dispatcher(access: Access) -> Dispatcher:
    """Routers in order, the access check in front of everything.

    FSM state (the /schedule wizard) lives in memory and does not survive a restart. Updates
    of one person are handled one after another, so two quick taps cannot race in a wizard.
    """
    dispatcher = Dispatcher(storage=MemoryStorage(), events_isolation=SimpleEventIsolation())
    dispatcher.update.outer_middleware(AccessMiddleware(access))
    for router in all_routers():
        if router.parent_router is not None:
            # A module-level router belongs to one dispatcher; tests build several in turn.
            router._parent_router = None
        dispatcher.include_router(router)
    return dispatcher


async def check_bot(bot: Bot, outage: TelegramOutage) -> bool:
    """Ask Telegram once who the bot is: False when it does not answer (told to `outage`);
    a token it refuses stops start-up in one line."""
    token = CALLER_RETRIES.set(True)
    try:
        await bot.me()
    except TelegramUnauthorizedError:
        raise ConfigError(REFUSED_TOKEN) from None
    except TelegramRetryAfter:
        return False  # it answers, but later: `reach_telegram` waits as told
    except MAYBE_UNREACHABLE as error:
        if not telegram_unreachable(error):
            raise
        outage.failed(UPDATES, error)
        return False
    finally:
        CALLER_RETRIES.reset(token)
    outage.answered(UPDATES)
    return True


async def reach_telegram(bot: Bot, outage: TelegramOutage, backoff: BackoffConfig) -> None:
    """Until Telegram answers, ask who the bot is and set the command menu, with bounded
    backoff; a token it refuses stops wasched."""
    retries = Backoff(backoff)
    token = CALLER_RETRIES.set(True)
    try:
        while True:
            try:
                await bot.me()
                await bot.set_my_commands(ui.bot_commands())
            except TelegramUnauthorizedError:
                raise ConfigError(REFUSED_TOKEN) from None
            except TelegramRetryAfter as error:
                await asyncio.sleep(error.retry_after)
                continue
            except MAYBE_UNREACHABLE as error:
                if not telegram_unreachable(error):
                    raise
                outage.failed(UPDATES, error)
                await retries.asleep()
                continue
            outage.answered(UPDATES)
            return
    finally:
        CALLER_RETRIES.reset(token)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while the block runs."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, _stopping, stop, number)
    try:
        yield
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)


def _stopping(stop: asyncio.Event, number: signal.Signals) -> None:
    logger.info("stopping on %s", number.name)
    stop.set()


async def run(
    settings: Settings | None = None,
    *,
    stop: asyncio.Event | None = None,
    backoff: BackoffConfig = TELEGRAM_BACKOFF,
) -> None:
    """Run core and the bot until SIGTERM or SIGINT (or until `stop` is set, when given),
    then shut both down in order. `backoff` paces the tries while Telegram does not answer."""
    settings = settings or load_settings()
    outage = TelegramOutage()
    async with AsyncExitStack() as stack:
        if stop is None:
            stop = asyncio.Event()
            stack.enter_context(stop_on_signals(stop))
        bot = build_bot(settings, requests=RetryRequests(outage=outage, backoff=backoff))
        stack.push_async_callback(bot.session.close)
        await check_bot(bot, outage)
        notifier = TelegramNotifier(bot, admin_ids=settings.admin_ids)
        notifier.outbox.outage, notifier.outbox.backoff = outage, backoff
        # Entered before core, so it runs while core shuts down; it drains once core's
        # writers stopped and before the store closes (a card's message id is remembered),
        # so it does not wait a second time when it stops.
        await stack.enter_async_context(notifier.outbox.running(drain_s=0))
        core = await stack.enter_async_context(
            open_core(settings, notifier=notifier, drains=[notifier.drain])
        )
        access = Access(settings.admin_ids, core.services.users)
        await access.prepare()
        notifier.set_audience(access.members)
        notifier.remember_in(core.services.memory)
        notifier.set_pacing(core.sender.pacing)
        dispatcher = build_dispatcher(access)

        async def serve() -> None:
            await reach_telegram(bot, outage, backoff)
            me = await bot.me()
            logger.info("bot @%s is polling for updates", me.username or me.id)
            await dispatcher.start_polling(
                bot,
                handle_signals=False,
                close_bot_session=False,
                backoff_config=backoff,
                allowed_updates=dispatcher.resolve_used_update_types(),
                **core.services.by_name(),
                store_health=core.store_health,
                sender_caps=core.sender.caps,
                notifier=notifier,
                access=access,
                settings=settings,
            )

        serving = asyncio.create_task(serve(), name="telegram-bot")
        stopped = asyncio.create_task(stop.wait(), name="wasched-stop")
        try:
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not serving.done():
                try:
                    await dispatcher.stop_polling()
                except RuntimeError:  # not polling yet: still waiting for Telegram
                    serving.cancel()
                await asyncio.wait({serving})
            if not serving.cancelled():
                serving.result()  # what stopped the bot by itself (a refused token)
        finally:
            for task in (serving, stopped):
                task.cancel()
