"""Events counted in this process for `GET /metrics`: run lateness and Telegram send errors.

Kept apart from `core.adapters.metrics` (the scrape: store reads, the sidecar's state, the aiohttp
handler) so the engine and the bot count events without importing an HTTP stack.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Lateness of a run against its scheduled time: seconds for normal runs, up to hours for
# catch-up runs after downtime.
LATENESS_BUCKETS = (0.5, 1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

# Events counted in this process; scraped together with the store-read gauges.
EVENTS = CollectorRegistry(auto_describe=True)

RUN_LATENESS = Histogram(
    "wasched_run_lateness_seconds",
    "How late a run was stored (fired) against its scheduled time.",
    buckets=LATENESS_BUCKETS,
    registry=EVENTS,
)
TELEGRAM_ERRORS = Counter(
    "wasched_telegram_send_errors",
    "Messages the bot failed to send or edit in Telegram, by kind of error.",
    ["kind"],
    registry=EVENTS,
)


def observe_run_lateness(seconds: float) -> None:
    """Record how late a run started (0 for one on time; never negative)."""
    RUN_LATENESS.observe(max(0.0, seconds))


def count_telegram_error(kind: str) -> None:
    """Count one failed Telegram send; `kind` is short and bounded, e.g. `retry_after`,
    `forbidden`, `bad_request`, `network`."""
    TELEGRAM_ERRORS.labels(kind=kind).inc()


SEND_DELAY = Histogram(
    "wasched_delivery_send_delay_seconds",
    "How long after its run's scheduled time each message was sent (WhatsApp took it): "
    "fire lateness plus store waits, pacing, retries and held time.",
    buckets=LATENESS_BUCKETS,
    registry=EVENTS,
)


def observe_send_delay(seconds: float) -> None:
    """Record how long after its run's scheduled time a message was sent (never negative)."""
    SEND_DELAY.observe(max(0.0, seconds))


# From seconds (a phone online) to a week (a phone off for days, a message read much later).
ACK_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)

TIME_TO_ACK = Histogram(
    "wasched_delivery_time_to_ack_seconds",
    "How long after it was sent (WhatsApp took it) each message was delivered to the "
    "recipient's phone (ack=delivered) or read (ack=read), observed when the ack arrives. "
    "Read rate: the read count over wasched_delivery_send_delay_seconds_count.",
    ["ack"],
    buckets=ACK_BUCKETS,
    registry=EVENTS,
)


def observe_time_to_ack(ack: str, seconds: float) -> None:
    """Record how long after sending a message reached `ack` (`delivered` or `read`)."""
    TIME_TO_ACK.labels(ack=ack).observe(max(0.0, seconds))
