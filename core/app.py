"""One place builds core: store, sidecar client, engine, sender, services and HTTP server.

`open_core` opens everything in order inside an `AsyncExitStack` and closes it in reverse:
stop taking events, stop the engine, let the sender finish its send in flight (bounded), close
the HTTP server and the sidecar client, let the `drains` (the bot's outbox) finish, close the
store. A database that does not take writes stops start-up (`require_writes`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from core.adapters.health import StoreHealth
from core.adapters.http import CoreHttp, build_app
from core.adapters.metrics import register_metrics, sidecar_session_state
from core.adapters.store import Store, open_store
from core.adapters.whatsapp import WhatsAppClient
from core.commands.migrate import redact_url
from core.config import Settings
from core.delivery.ack_watch import AckWatch
from core.delivery.acks import Acks
from core.delivery.asker import Asker
from core.delivery.engine import Engine
from core.delivery.notifier import Notifier
from core.delivery.numbers import RUN_CHECK_WITHIN_S, NumberGuard
from core.delivery.receipts import Receipts
from core.delivery.sender import Sender
from core.delivery.spikes import SpikeGuard, SpikeRule
from core.delivery.warmup import WarmUp
from core.domain.clock import Clock, SystemClock
from core.domain.errors import ConfigError, StoreNotWritable
from core.domain.models import Schedule
from core.domain.session import SessionFailure
from core.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Core:
    settings: Settings
    clock: Clock
    store: Store
    whatsapp: WhatsAppClient
    engine: Engine
    sender: Sender
    services: Services
    http: CoreHttp
    # Where core's own HTTP server listens, e.g. http://127.0.0.1:8001.
    url: str
    ack_watch: AckWatch
    receipts: Receipts
    store_health: StoreHealth
    acks: Acks
    asker: Asker


class CoreHooks:
    """The services' `EngineHooks`: schedule changes re-arm the engine, new deliveries wake
    the sender."""

    def __init__(self, engine: Engine, sender: Sender, asker: Asker | None = None) -> None:
        self._engine = engine
        self._sender = sender
        self._asker = asker

    def schedules_changed(self) -> None:
        self._engine.schedules_changed()
        if self._asker is not None:
            self._asker.schedules_changed()

    def deliveries_queued(self) -> None:
        self._sender.deliveries_queued()

    async def schedule_ended(self, schedule: Schedule) -> None:
        await self._engine.schedule_ended(schedule)


class HeardEvents:
    """Acks and the sender as the events route sees them, telling `Receipts` that events
    flow."""

    def __init__(self, sender: Sender, acks: Acks, receipts: Receipts) -> None:
        self._sender = sender
        self._acks = acks
        self._receipts = receipts

    async def apply_ack(self, whatsapp_id: str, ack: int) -> bool:
        self._receipts.heard()
        return await self._acks.apply_ack(whatsapp_id, ack)

    def session_changed(
        self,
        state: str,
        failure: SessionFailure | None = None,
        me: dict[str, str] | None = None,
    ) -> None:
        self._receipts.heard()
        self._sender.session_changed(state, failure, me)


async def require_writes(store: Store, database_url: str) -> None:
    """Refuse to start on a database that does not take writes, in one line: where it is,
    why, and what to do (SQLite opens a read-only file and reads it without a word)."""
    try:
        await store.check_writes()
    except StoreNotWritable as exc:
        raise located(exc, database_url) from exc


def located(error: StoreNotWritable, database_url: str) -> StoreNotWritable:
    """The error with where the database is: a path, or the URL with its password hidden as
    `wasched check` shows it."""
    scheme, _, rest = database_url.partition("://")
    where = rest.removeprefix("/") if scheme == "sqlite" else redact_url(database_url)
    return StoreNotWritable(f"{where}: {error.reason}", error.fix)


@contextlib.asynccontextmanager
async def open_core(
    settings: Settings,
    *,
    notifier: Notifier,
    clock: Clock | None = None,
    worker: str | None = None,
    http_setup: Sequence[Callable[[web.Application], None]] = (),
    drains: Sequence[Callable[[], Awaitable[None]]] = (),
) -> AsyncIterator[Core]:
    """Run core until the block ends; `http_setup` adds routes to core's HTTP server.

    `drains` are awaited, in order, once every writer of core stopped and before the store
    closes: the bot's notification outbox, which remembers what it showed in the store."""
    clock = clock or SystemClock()
    settings.require_api_key()
    async with contextlib.AsyncExitStack() as stack:
        try:
            store = await open_store(settings.DATABASE_URL)
        except StoreNotWritable as exc:
            raise located(exc, settings.DATABASE_URL) from exc
        stack.push_async_callback(store.close)
        await require_writes(store, settings.DATABASE_URL)
        store_health = StoreHealth(store, clock)
        stack.push_async_callback(store_health.aclose)
        # Closed after every writer of core stopped and before the store: what the bot still
        # has to remember (a run card's message id) reaches the store.
        for drain in reversed(drains):
            stack.push_async_callback(drain)

        whatsapp = WhatsAppClient(settings.WHATSAPP_URL, settings.WHATSAPP_API_KEY)
        stack.push_async_callback(whatsapp.aclose)

        sender = Sender(
            store,
            clock,
            whatsapp,
            notifier,
            gap_min_s=settings.SEND_GAP_MIN_S,
            gap_max_s=settings.SEND_GAP_MAX_S,
            hourly_cap=settings.SEND_HOURLY_CAP,
            daily_cap=settings.SEND_DAILY_CAP,
            retry_max_attempts=settings.RETRY_MAX_ATTEMPTS,
            probe_every_s=settings.WHATSAPP_PROBE_EVERY_S,
            probe_max_s=settings.WHATSAPP_PROBE_MAX_S,
            # Unique among live processes (one HTTP port per host), stable across restarts:
            # a restarted core takes back at once what its crashed predecessor was sending.
            worker=worker or f"{socket.gethostname()}:{settings.HTTP_PORT}",
            store_health=store_health,
            spikes=SpikeGuard(
                store,
                clock,
                notifier,
                SpikeRule(settings.PAUSE_ON_FAILURE_RATIO, settings.PAUSE_MIN_FAILURES),
            ),
            warmup=WarmUp(
                store, clock, days=settings.WARMUP_DAYS, daily_cap=settings.SEND_DAILY_CAP
            ),
        )
        # Each run's numbers are checked with WhatsApp as it fans out.
        run_numbers = NumberGuard(store, clock, whatsapp, within_s=RUN_CHECK_WITHIN_S)
        engine = Engine(
            store,
            clock,
            notifier,
            misfire_grace_s=settings.MISFIRE_GRACE_S,
            on_deliveries=sender.deliveries_queued,
            store_health=store_health,
            numbers=run_numbers,
        )
        if sender.spikes is not None:
            sender.spikes.on_paused = engine.schedules_changed
        acks = Acks(store, clock, on_change=sender.reporter.mark, spikes=sender.spikes)
        sender.on_sent = acks.stored
        ack_watch = AckWatch(
            store, clock, notifier, whatsapp, acks, after_s=settings.ACK_ALERT_AFTER_S
        )
        receipts = Receipts(
            store,
            clock,
            whatsapp,
            acks,
            sender,
            window_s=settings.ACK_RECONCILE_WINDOW_S,
        )
        sender.on_gap = receipts.gap
        asker = Asker(
            store,
            clock,
            notifier,
            lead_s=settings.ASK_LEAD_S,
            on_deliveries=sender.deliveries_queued,
            numbers=run_numbers,
        )
        services = Services(
            store,
            clock,
            default_timezone=settings.DEFAULT_TIMEZONE,
            hooks=CoreHooks(engine, sender, asker),
            whatsapp=whatsapp,
            scheduler=engine,
            unacked=ack_watch,
            pacing=sender.pacing,
            ask_lead_s=settings.ASK_LEAD_S,
            misfire_grace_s=settings.MISFIRE_GRACE_S,
        )
        http = CoreHttp(
            store=store,
            engine=engine,
            sender=HeardEvents(sender, acks, receipts),
            notifier=notifier,
            whatsapp=whatsapp,
            api_key=settings.WHATSAPP_API_KEY,
            store_health=store_health,
        )

        app = build_app(
            http,
            setup=[
                lambda app: register_metrics(
                    app,
                    store,
                    sidecar_session_state(whatsapp),
                    unacked=ack_watch.count,
                    store_writable=lambda: store_health.writable,
                ),
                *http_setup,
            ],
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.HTTP_HOST, settings.HTTP_PORT)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"HTTP_PORT {settings.HTTP_PORT} on {settings.HTTP_HOST} cannot be used "
                f"({exc.strerror}): stop what holds it or choose another HTTP_PORT"
            ) from exc

        await sender.start()
        stack.push_async_callback(sender.stop)
        await engine.start()
        stack.push_async_callback(engine.stop)
        await ack_watch.start()
        stack.push_async_callback(ack_watch.stop)
        await receipts.start()
        stack.push_async_callback(receipts.stop)
        await asker.start()
        stack.push_async_callback(asker.stop)
        stack.push_async_callback(http.aclose)

        url = f"http://{settings.HTTP_HOST}:{settings.HTTP_PORT}"
        logger.info("core listening on %s, sidecar at %s", url, settings.WHATSAPP_URL)
        yield Core(
            settings=settings,
            clock=clock,
            store=store,
            whatsapp=whatsapp,
            engine=engine,
            sender=sender,
            services=services,
            http=http,
            url=url,
            ack_watch=ack_watch,
            receipts=receipts,
            store_health=store_health,
            acks=acks,
            asker=asker,
        )
