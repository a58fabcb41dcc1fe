"""core's own HTTP server (aiohttp): events from the sidecar and the health check.

- `POST /whatsapp/events`: `message.ack`, `session.status`, `session.qr` from the sidecar,
  with `X-Api-Key` equal to `WHATSAPP_API_KEY` (without a key configured, every event is refused).
- `GET /healthz`: database (does it take writes? `store` is `ok`, `busy` or `failing`, asked
  within a bound), scheduler and sidecar; 200 when all are well, 503 otherwise.

Other routes (`GET /metrics`) join through `build_app(..., setup=[...])`, callables that get
the application before it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from core.adapters.health import StoreHealth, StoreState
from core.adapters.sidecar_contract import (
    EVENT_TYPES,
    SIDECAR_EVENT,
    AckPayload,
    MessageAckEvent,
    SessionHealth,
    SessionQrEvent,
    SessionStatusEvent,
)
from core.adapters.store import Store
from core.delivery.notifier import Notifier
from core.domain.errors import StoreError, StoreNotWritable, WhatsAppError
from core.domain.session import SessionFailure, SessionState

logger = logging.getLogger(__name__)

# How long /healthz waits for the sidecar's /health.
SIDECAR_HEALTH_WAIT_S = 2.0


class SchedulerStatus(Protocol):
    def status(self) -> dict[str, Any]: ...


class EventSink(Protocol):
    """Where sidecar events go: acks to `Acks`, session states to the sender (`HeardEvents`
    in `core.app`)."""

    async def apply_ack(self, whatsapp_id: str, ack: int) -> bool: ...
    def session_changed(
        self,
        state: str,
        failure: SessionFailure | None = None,
        me: dict[str, str] | None = None,
    ) -> None: ...


class HealthPort(Protocol):
    async def health(self, *, within_s: float | None = None) -> SessionHealth: ...


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _refused(exc: ValidationError) -> web.Response:
    """The 400 for an event body that does not fit the contract, saying what was expected."""
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return _error(400, "invalid_request", "the body is not JSON")
    body = first["input"] if not first["loc"] else None
    if first["type"] == "union_tag_invalid" and isinstance(body, dict):
        event = body.get("event")
        if isinstance(event, str):
            return _error(400, "unknown_event", f"unknown event {event!r}")
    if first["loc"] and first["loc"][0] in EVENT_TYPES:
        return _error(400, "invalid_request", EVENT_TYPES[str(first["loc"][0])].needs)
    return _error(400, "invalid_request", 'expected {"event", "payload", "timestamp"}')


class CoreHttp:
    """The handlers, with what they need passed in."""

    def __init__(
        self,
        *,
        store: Store,
        engine: SchedulerStatus,
        sender: EventSink,
        notifier: Notifier,
        whatsapp: HealthPort,
        store_health: StoreHealth,
        api_key: str = "",
    ) -> None:
        self.store = store
        # Whether the store takes writes, asked within a bound (`core.adapters.health`).
        self.store_health = store_health
        self.engine = engine
        self.sender = sender
        self.notifier = notifier
        self.whatsapp = whatsapp
        self.api_key = api_key
        self.accepting = True
        self._tasks: set[asyncio.Task[None]] = set()

    def _later(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Tell the notifier without making the sidecar wait (or retry) on Telegram."""

        async def guarded() -> None:
            try:
                await coro
            except Exception:
                logger.exception("notifier failed on %s", what)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notified(self) -> None:
        """Return once the notifications started so far have finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Stop taking events and let the notifications already started finish."""
        self.accepting = False
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def events(self, request: web.Request) -> web.Response:
        # No key configured refuses every event: anyone on the machine could forge one.
        if not self.api_key or not hmac.compare_digest(
            request.headers.get("X-Api-Key", ""), self.api_key
        ):
            return _error(401, "unauthorized", "missing or wrong X-Api-Key")
        if not self.accepting:
            return _error(503, "unavailable", "wasched is shutting down; send it again later")
        try:
            parsed = SIDECAR_EVENT.validate_json(await request.read())
        except ValidationError as exc:
            return _refused(exc)
        match parsed:
            case MessageAckEvent(payload=AckPayload(id=message_id, ack=ack)):
                try:
                    known = await self.sender.apply_ack(message_id, ack)
                except StoreError as exc:
                    if isinstance(exc, StoreNotWritable):
                        # Logged once for the whole time the store fails.
                        self.store_health.failed(exc)
                    else:
                        logger.exception("ack %s could not be recorded", ack)
                    # The sidecar sends it again.
                    return _error(503, "unavailable", "the database is unavailable; retry")
                return web.json_response({"ok": True, "known": known})
            case SessionStatusEvent(payload=status):
                self.sender.session_changed(status.state, status.failure, status.me)
                self._later(
                    self.notifier.session_changed(status.state, status.me, status.failure),
                    parsed.event,
                )
            case SessionQrEvent(payload=qr):
                self._later(self.notifier.qr_available(qr.qr), parsed.event)
        return web.json_response({"ok": True})

    async def healthz(self, request: web.Request) -> web.Response:
        scheduler = self.engine.status()
        sidecar: dict[str, Any]
        # The store's write check and the sidecar's health are asked together, each bounded.
        store_state = asyncio.ensure_future(self.store_health.check())
        try:
            health = await self.whatsapp.health(within_s=SIDECAR_HEALTH_WAIT_S)
            sidecar = {
                "reachable": True,
                "state": health.state,
                "engine": health.engine,
                "failure": health.failure.code if health.failure else None,
            }
        except WhatsAppError as exc:
            sidecar = {"reachable": False, "state": None, "error": str(exc)}
        store = await store_state
        database: dict[str, Any] = {"ok": store is StoreState.ok, "store": store.value}
        if self.store_health.reason:
            database["error"] = self.store_health.reason
        ok = bool(
            database["ok"]
            and scheduler.get("running")
            and sidecar["state"] == SessionState.WORKING
        )
        return web.json_response(
            {
                "ok": ok,
                "store": store.value,
                "database": database,
                "scheduler": scheduler,
                "sidecar": sidecar,
            },
            status=200 if ok else 503,
        )


def build_app(
    http: CoreHttp, *, setup: Iterable[Callable[[web.Application], None]] = ()
) -> web.Application:
    app = web.Application()
    app.router.add_post("/whatsapp/events", http.events)
    app.router.add_get("/healthz", http.healthz)
    for add in setup:
        add(app)
    return app
