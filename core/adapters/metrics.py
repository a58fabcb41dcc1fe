"""Prometheus metrics for `GET /metrics`, on wasched's own registry (never the global one).

What is scraped:
- events counted as they happen (run lateness, Telegram send errors), kept in
  `core.adapters.counters` so that counting them needs no HTTP stack;
- states read from the store and the sidecar at scrape time (deliveries by status, queue
  depth, held deliveries, deliveries sent but not on the phone past ACK_ALERT_AFTER_S,
  schedules by state, WhatsApp session state), so they are never stale.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from core.adapters.counters import EVENTS
from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppClient
from core.domain.errors import WhatsAppError
from core.domain.models import DeliveryStatus, ScheduleState
from core.domain.session import SessionState

logger = logging.getLogger(__name__)

# The states the sidecar reports in GET /health (whatsapp-service/README.md, "Health").
SessionStateReader = Callable[[], Awaitable[str | None]]
# How many deliveries are `sent` without a device ack past ACK_ALERT_AFTER_S (None: off);
# `core.delivery.ack_watch.AckWatch.count`.
UnackedReader = Callable[[], Awaitable[int | None]]


def sidecar_session_state(
    whatsapp: WhatsAppClient, *, within_s: float = 2.0
) -> SessionStateReader:
    """A reader of the sidecar's session state through its `GET /health`; None when down."""

    async def read() -> str | None:
        try:
            return (await whatsapp.health(within_s=within_s)).state
        except WhatsAppError as exc:
            logger.debug("sidecar health unreadable: %s", exc)
            return None

    return read


@dataclass(frozen=True)
class Snapshot:
    """What the store and the sidecar say at one scrape."""

    deliveries: dict[DeliveryStatus, int] = field(default_factory=dict)
    schedules: dict[ScheduleState, int] = field(default_factory=dict)
    session_state: str | None = None
    store_up: bool = True
    # None when the ack alert is off (ACK_ALERT_AFTER_S=0) or the store did not answer.
    unacked: int | None = None
    # False while the store refuses writes (`StoreHealth`); None when not known.
    store_writable: bool | None = None


async def take_snapshot(
    store: Store,
    session_state: SessionStateReader,
    unacked: UnackedReader | None = None,
    store_writable: Callable[[], bool] | None = None,
) -> Snapshot:
    """Read the gauges' values; a failing store shows as `wasched_store_up 0`, not a 500."""
    from core.domain.errors import StoreError

    unacked_count: int | None = None
    try:
        deliveries = await store.count_deliveries()
        schedules = await store.count_schedules()
        if unacked is not None:
            unacked_count = await unacked()
        store_up = True
    except StoreError as exc:
        logger.warning("metrics: store unreadable: %s", exc)
        deliveries, schedules, store_up = {}, {}, False
    return Snapshot(
        deliveries=deliveries,
        schedules=schedules,
        session_state=await session_state(),
        store_up=store_up,
        unacked=unacked_count,
        store_writable=None if store_writable is None else store_writable(),
    )


class SnapshotCollector(Collector):
    """Gauges for one scrape, from a `Snapshot` read just before."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot
        deliveries = GaugeMetricFamily(
            "wasched_deliveries", "Deliveries in the store by status.", labels=["status"]
        )
        for status in DeliveryStatus:
            deliveries.add_metric([status.value], snap.deliveries.get(status, 0))
        yield deliveries

        queued = snap.deliveries.get(DeliveryStatus.queued, 0)
        sending = snap.deliveries.get(DeliveryStatus.sending, 0)
        yield GaugeMetricFamily(
            "wasched_delivery_queue_depth",
            "Deliveries waiting to go out or going out (queued + sending).",
            value=queued + sending,
        )
        yield GaugeMetricFamily(
            "wasched_deliveries_held",
            "Deliveries held because WhatsApp is not linked.",
            value=snap.deliveries.get(DeliveryStatus.held, 0),
        )
        if snap.unacked is not None:
            yield GaugeMetricFamily(
                "wasched_deliveries_unacked",
                "Deliveries WhatsApp took (sent) that have no device ack (not on the "
                "recipient's phone) ACK_ALERT_AFTER_S after sending.",
                value=snap.unacked,
            )

        schedules = GaugeMetricFamily(
            "wasched_schedules", "Schedules in the store by state.", labels=["state"]
        )
        for state in ScheduleState:
            schedules.add_metric([state.value], snap.schedules.get(state, 0))
        yield schedules

        yield GaugeMetricFamily(
            "wasched_store_up",
            "1 when the store answered this scrape.",
            value=float(snap.store_up),
        )
        if snap.store_writable is not None:
            yield GaugeMetricFamily(
                "wasched_store_writable",
                "0 while the database refuses writes (read-only, disk full), else 1.",
                value=float(snap.store_writable),
            )
        yield GaugeMetricFamily(
            "wasched_whatsapp_up",
            "1 when the WhatsApp sidecar answered its health check.",
            value=float(snap.session_state is not None),
        )
        session = GaugeMetricFamily(
            "wasched_whatsapp_session_state",
            "1 for the WhatsApp session's current state (sidecar GET /health).",
            labels=["state"],
        )
        known: set[str] = set(SessionState)
        if snap.session_state is not None:
            known.add(snap.session_state)
        for name in sorted(known):
            session.add_metric([name], 1.0 if name == snap.session_state else 0.0)
        yield session


class _Forward(Collector):
    """Exposes another registry's metrics inside a per-scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def render(snapshot: Snapshot, events: CollectorRegistry = EVENTS) -> bytes:
    """The Prometheus text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    registry.register(_Forward(events))
    return generate_latest(registry)


STORE_KEY: web.AppKey[Store] = web.AppKey("wasched_metrics_store")
SESSION_KEY: web.AppKey[SessionStateReader] = web.AppKey("wasched_metrics_session_state")
UNACKED_KEY: web.AppKey[UnackedReader | None] = web.AppKey("wasched_metrics_unacked")
WRITABLE_KEY: web.AppKey[Callable[[], bool] | None] = web.AppKey("wasched_metrics_writable")


async def metrics_handler(request: web.Request) -> web.Response:
    """`GET /metrics`."""
    snapshot = await take_snapshot(
        request.app[STORE_KEY],
        request.app[SESSION_KEY],
        request.app.get(UNACKED_KEY),
        request.app.get(WRITABLE_KEY),
    )
    return web.Response(body=render(snapshot), headers={"Content-Type": CONTENT_TYPE_LATEST})


def register_metrics(
    app: web.Application,
    store: Store,
    session_state: SessionStateReader,
    *,
    unacked: UnackedReader | None = None,
    store_writable: Callable[[], bool] | None = None,
) -> None:
    """Serve `GET /metrics` on `app`, reading gauges from `store`, `session_state`,
    `unacked` and `store_writable`."""
    app[STORE_KEY] = store
    app[SESSION_KEY] = session_state
    app[UNACKED_KEY] = unacked
    app[WRITABLE_KEY] = store_writable
    app.router.add_get("/metrics", metrics_handler)
