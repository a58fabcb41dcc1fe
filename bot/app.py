"""`wasched run`: core and the Telegram bot in one process, built in one lifespan."""

from __future__ import annotations

import asyncio
import logging
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
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation

from bot import ui
from bot.access import Access, AccessMiddleware
from bot.notifier import TelegramNotifier
from bot.routers import all_routers
from core.app import open_core
from core.config import Settings, load_settings
from core.counters import count_telegram_error
from core.errors import ConfigError

if TYPE_CHECKING:
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

logger = logging.getLogger(__name__)

# A reply Telegram holds back for at most this long is waited for and sent; longer waits
# are left to the caller (the notifier's outbox keeps such messages and sends them later).
FLOOD_WAIT_MAX_S = 30


class WaitWhenFlooded(BaseRequestMiddleware):
    """On 429 (TelegramRetryAfter) wait as told and send again, so no reply is lost."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(3):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                count_telegram_error("retry_after")
                if attempt == 2 or error.retry_after > FLOOD_WAIT_MAX_S:
                    raise
                logger.warning("Telegram asks to wait %s s; waiting", error.retry_after)
                await asyncio.sleep(error.retry_after)
        raise AssertionError("unreachable")


def build_bot(settings: Settings) -> Bot:
    """The Bot, pointed at TELEGRAM_API_URL when set (a local or fake Bot API server)."""
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_URL))
        if settings.TELEGRAM_API_URL
        else AiohttpSession()
    )
    session.middleware(WaitWhenFlooded())
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


async def check_bot(bot: Bot, settings: Settings) -> str:
    """Ask Telegram who the bot is, so a wrong token or URL stops start-up in one line."""
    try:
        me = await bot.get_me()
    except TelegramUnauthorizedError:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN was refused by Telegram (401 Unauthorized): copy it again "
            "from @BotFather into .env"
        ) from None
    except TelegramNetworkError as exc:
        where = settings.TELEGRAM_API_URL or "https://api.telegram.org"
        raise ConfigError(
            f"the Telegram Bot API at {where} cannot be reached ({exc.message}): check the "
            "network, or TELEGRAM_API_URL if you run your own Bot API server"
        ) from None
    return me.username or str(me.id)


async def run(settings: Settings | None = None) -> None:
    """Run core and the bot until SIGTERM or SIGINT, then shut both down in order."""
    settings = settings or load_settings()
    async with AsyncExitStack() as stack:
        bot = build_bot(settings)
        stack.push_async_callback(bot.session.close)
        username = await check_bot(bot, settings)
        notifier = TelegramNotifier(bot, admin_ids=settings.admin_ids)
        # Entered before core so that it drains what core reports while it shuts down.
        await stack.enter_async_context(notifier.outbox.running())
        core = await stack.enter_async_context(open_core(settings, notifier=notifier))
        access = Access(settings.admin_ids, core.store)
        await access.prepare()
        notifier.set_audience(access.members)
        notifier.remember_in(core.store)
        dispatcher = build_dispatcher(access)
        await bot.set_my_commands(ui.bot_commands())
        logger.info("bot @%s is polling for updates", username)
        await dispatcher.start_polling(
            bot,
            handle_signals=True,
            close_bot_session=False,
            allowed_updates=dispatcher.resolve_used_update_types(),
            service=core.service,
            notifier=notifier,
            access=access,
            settings=settings,
        )
