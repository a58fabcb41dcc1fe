"""Where a delivery changes state: every transition, and the rules that choose one.

```
  insert ─> queued ─claim─> sending ─sent─> sent ─ack─> delivered ─ack─> read
             ^  ^            │ │ │           │
             │  └──release───┘ │ │           └─ack -1─> failed
             │  └─retry_later──┘ ├─fail─────────────────────> failed ─┐
             │                   └─hold─> held ─release_held─> queued │
             └──────────────────retry──────── failed, missed <────────┘
```

Every arrow, from -> to:

    (insert)        -> queued, failed (render_failed, without_whatsapp), missed (engine),
                       skipped (the owner skipped the occurrence: final, never sent), or
                       history (legacy)
    queued          -> sending     claim: `Store.claim_deliveries` (also an ended lease)
    sending         -> sent        sent: `Store.record_sent`, in bulk
    sending         -> queued      release (given back unsent), release_now (due now)
    sending         -> queued      retry_later (transient failure, attempts left)
    sending         -> failed      fail (permanent failure, or the last attempt)
    sending         -> held        hold (WhatsApp does not work; no attempt spent)
    held            -> queued      release_held: `Store.release_held`, all at once
    sent            -> delivered   ack 2 (`ack`; never backwards)
    sent, delivered -> read        ack 3 or 4
    sent            -> failed      ack -1 (`AckFailed`)
    failed, missed  -> queued      retry (by the owner: attempts reset, same key)
    sent.., failed  -> (same)      imported (the legacy history's times)
    queued, held    -> held        hold_for_spike (the run's failures spiked; `SPIKE_HOLD`)
    held (spike)    -> queued      release_spike (the owner pressed Resume)

- `insert`: `Store.add_deliveries` stores a `NewDelivery` in its first status (`queued`,
  `failed` when its text cannot be rendered, see `render_failed`; `missed` by the engine).
- `claim` (queued, or sending with an ended lease, -> sending): `Store.claim_deliveries`
  chooses and leases atomically; `release_held` (held -> queued, all at once):
  `Store.release_held`. Both are store queries, not records here.
- Every other arrow is a function below returning a frozen `DeliveryChange`: the status the
  delivery must still be in (and the worker that must still hold its lease), and only the
  fields that transition writes. `Store.apply` writes it, or returns None when the delivery
  moved on meanwhile. `sent` is applied in bulk by `Store.record_sent`.
- Acks never move a delivery backwards (`ack`), and only a `sent` message fails by ack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from core.domain.models import ACK_ORDER, Delivery, DeliveryStatus, NewDelivery
from core.domain.session import SessionFailure, explain

# What a held delivery says when the session's state gives no better reason.
NOT_LINKED = "WhatsApp is not linked or not connected; it goes out once it is."

# The statuses a failed or missed delivery may be retried from by hand.
RETRYABLE = (DeliveryStatus.failed, DeliveryStatus.missed)

# Which status each ack names (1 sent, 2 delivered, 3 read, 4 played: read).
_ACKED = {
    1: DeliveryStatus.sent,
    2: DeliveryStatus.delivered,
    3: DeliveryStatus.read,
    4: DeliveryStatus.read,
}

_KEYS = frozenset({"delivery_id", "expected", "worker"})


@dataclass(frozen=True, kw_only=True)
class DeliveryChange:
    """One transition of delivery `delivery_id`: it applies only while the delivery is in one
    of `expected` and, when `worker` is given, still leased by that worker.

    Every other field of a subclass is a field of `Delivery` the transition writes."""

    # Stamps not written while None (a time the delivery keeps from before).
    optional: ClassVar[frozenset[str]] = frozenset()

    delivery_id: int
    expected: tuple[DeliveryStatus, ...]
    worker: str | None = None

    def fields(self) -> dict[str, object]:
        """The `Delivery` fields this change writes, by name."""
        written = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _KEYS or (value is None and field.name in self.optional):
                continue
            written[field.name] = value
        return written


@dataclass(frozen=True, kw_only=True)
class OutOfSending(DeliveryChange):
    """A change of a delivery `worker` is sending: it ends the lease."""

    expected: tuple[DeliveryStatus, ...] = (DeliveryStatus.sending,)
    worker: str
    lease_owner: None = None
    lease_until: None = None


@dataclass(frozen=True, kw_only=True)
class Release(OutOfSending):
    """sending -> queued: a lease given up without an attempt, due as it was."""

    status: DeliveryStatus = DeliveryStatus.queued


@dataclass(frozen=True, kw_only=True)
class ReleaseNow(Release):
    """sending -> queued, due now: a send cut off by the worker's own crash."""

    queued_at: datetime
    next_attempt_at: datetime


@dataclass(frozen=True, kw_only=True)
class Sent(OutOfSending):
    """sending -> sent: the sidecar took the message."""

    status: DeliveryStatus = DeliveryStatus.sent
    whatsapp_id: str
    attempts: int
    sent_at: datetime
    last_error: None = None
    error_code: None = None


@dataclass(frozen=True, kw_only=True)
class FailedAttempt(OutOfSending):
    """A send that failed: one attempt more, and why."""

    attempts: int
    last_error: str
    error_code: str


@dataclass(frozen=True, kw_only=True)
class RetryLater(FailedAttempt):
    """sending -> queued: a transient failure, sent again at `next_attempt_at`."""

    status: DeliveryStatus = DeliveryStatus.queued
    queued_at: datetime
    next_attempt_at: datetime


@dataclass(frozen=True, kw_only=True)
class Fail(FailedAttempt):
    """sending -> failed: a permanent failure, or the last attempt's."""

    status: DeliveryStatus = DeliveryStatus.failed
    failed_at: datetime


@dataclass(frozen=True, kw_only=True)
class Hold(OutOfSending):
    """sending -> held: WhatsApp does not work; no attempt is spent."""

    status: DeliveryStatus = DeliveryStatus.held
    held_at: datetime
    last_error: str
    error_code: str


@dataclass(frozen=True, kw_only=True)
class Ack(DeliveryChange):
    """sent -> delivered -> read, as WhatsApp acknowledges; a stamp left None is not
    written (`delivered_at` of a message already delivered stays)."""

    optional = frozenset({"delivered_at", "read_at"})

    status: DeliveryStatus
    delivered_at: datetime | None = None
    read_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class AckFailed(DeliveryChange):
    """sent -> failed: WhatsApp reported an error delivering the message."""

    status: DeliveryStatus = DeliveryStatus.failed
    failed_at: datetime
    error_code: str = "ack_error"
    last_error: str = "WhatsApp reported an error delivering this message."


@dataclass(frozen=True, kw_only=True)
class Retry(DeliveryChange):
    """failed or missed -> queued by the owner: a fresh start, due now, same key."""

    status: DeliveryStatus = DeliveryStatus.queued
    attempts: int = 0
    next_attempt_at: datetime
    queued_at: datetime
    last_error: None = None
    error_code: None = None
    failed_at: None = None
    missed_at: None = None
    lease_owner: None = None
    lease_until: None = None


@dataclass(frozen=True, kw_only=True)
class ImportedSent(DeliveryChange):
    """A sent (delivered, read) delivery imported from the legacy bot's history gets the
    times it went through; its status stays."""

    optional = frozenset({"delivered_at", "read_at"})

    attempts: int = 1
    queued_at: datetime
    sent_at: datetime
    delivered_at: datetime | None = None
    read_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ImportedFailed(DeliveryChange):
    """A failed delivery imported from the legacy bot's history gets its times and reason."""

    attempts: int = 1
    queued_at: datetime
    failed_at: datetime
    last_error: str | None
    error_code: str = "legacy"


# --- insert --------------------------------------------------------------------------------


def render_failed(new: NewDelivery, reason: str) -> NewDelivery:
    """`new` stored as failed at once, with why its text cannot be rendered."""
    return new.model_copy(
        update={
            "text": "",
            "status": DeliveryStatus.failed,
            "last_error": reason,
            "error_code": "render_failed",
        }
    )


def missed(new: NewDelivery) -> NewDelivery:
    """`new` stored as missed: its occurrence passed beyond the grace (the engine)."""
    return new.model_copy(
        update={"status": DeliveryStatus.missed, "last_error": None, "error_code": None}
    )


def skipped(new: NewDelivery) -> NewDelivery:
    """`new` stored as skipped: the owner skipped its occurrence; it is never sent."""
    return new.model_copy(
        update={"status": DeliveryStatus.skipped, "last_error": None, "error_code": None}
    )


# --- the sender's transitions (the lease is held by `worker`) --------------------------------


def release(delivery: Delivery, *, worker: str) -> Release:
    """Give back a claimed delivery that was not sent (claimed ahead, then stopped or
    paused): queued again, due as it was."""
    return Release(delivery_id=delivery.id, worker=worker)


def release_now(delivery: Delivery, *, worker: str, now: datetime) -> ReleaseNow:
    """Take back a delivery `worker` left `sending` when its process died: due now, not
    after its lease."""
    return ReleaseNow(
        delivery_id=delivery.id,
        worker=worker,
        queued_at=now,
        next_attempt_at=now,
    )


def sent(delivery: Delivery, whatsapp_id: str, *, worker: str, now: datetime) -> Sent:
    """The sidecar took `delivery` as message `whatsapp_id`: one attempt more."""
    return Sent(
        delivery_id=delivery.id,
        worker=worker,
        whatsapp_id=whatsapp_id,
        attempts=delivery.attempts + 1,
        sent_at=now,
    )


def failed_attempt(
    delivery: Delivery,
    *,
    worker: str,
    now: datetime,
    reason: str,
    code: str,
    transient: bool,
    max_attempts: int,
    backoff: Callable[[int], float],
) -> RetryLater | Fail:
    """A send that failed: a transient failure is tried again after `backoff(attempts)`
    seconds until `max_attempts` attempts were made; a permanent one fails at once."""
    attempts = delivery.attempts + 1
    if transient and attempts < max_attempts:
        return RetryLater(
            delivery_id=delivery.id,
            worker=worker,
            attempts=attempts,
            last_error=reason,
            error_code=code,
            queued_at=now,
            next_attempt_at=now + timedelta(seconds=backoff(attempts)),
        )
    if transient:
        reason = f"{reason} Gave up after {attempts} attempts."
    return Fail(
        delivery_id=delivery.id,
        worker=worker,
        attempts=attempts,
        last_error=reason,
        error_code=code,
        failed_at=now,
    )


def hold(delivery: Delivery, *, worker: str, now: datetime, reason: str, code: str) -> Hold:
    """Keep `delivery` back while WhatsApp does not work; it is released when it works."""
    return Hold(
        delivery_id=delivery.id,
        worker=worker,
        held_at=now,
        last_error=reason,
        error_code=code,
    )


def hold_reason(state: str | None, failure: SessionFailure | None) -> str:
    """What a held delivery says while the session is `state` (the owner reads it in /logs)."""
    words = explain(state, failure) if state is not None else None
    # None: not heard yet; working: the last state said WORKING, but a send was just refused.
    if words is None or words.working:
        return NOT_LINKED
    return f"{words.reason} It goes out once WhatsApp works again."


# --- acks ------------------------------------------------------------------------------------


def ack(delivery: Delivery, ack: int, *, now: datetime) -> Ack | AckFailed | None:
    """What a `message.ack` (1 sent, 2 delivered, 3/4 read, -1 failed) does to `delivery`;
    None when it would move it backwards, or names no status."""
    if ack < 0:
        if delivery.status is not DeliveryStatus.sent:
            return None
        return AckFailed(delivery_id=delivery.id, expected=(delivery.status,), failed_at=now)
    target = _ACKED.get(ack)
    current = ACK_ORDER.get(delivery.status)
    if target is None or current is None or ACK_ORDER[target] <= current:
        return None
    delivered = target is DeliveryStatus.delivered or delivery.delivered_at is None
    return Ack(
        delivery_id=delivery.id,
        expected=(delivery.status,),
        status=target,
        delivered_at=now if delivered else None,
        read_at=now if target is DeliveryStatus.read else None,
    )


# --- by hand ---------------------------------------------------------------------------------


def retry(delivery: Delivery, *, now: datetime) -> Retry | None:
    """Queue a failed or missed delivery again, due now with its attempts reset; None when
    it is in no state to be retried."""
    if delivery.status not in RETRYABLE:
        return None
    return Retry(delivery_id=delivery.id, expected=RETRYABLE, next_attempt_at=now, queued_at=now)


def imported(
    delivery: Delivery, status: DeliveryStatus, *, at: datetime, error: str | None
) -> ImportedSent | ImportedFailed:
    """The history of `delivery`, imported from the legacy bot in `status`: one attempt,
    queued and sent (or failed, with `error`) at `at`."""
    expected = (delivery.status,)
    if status is DeliveryStatus.failed:
        return ImportedFailed(
            delivery_id=delivery.id,
            expected=expected,
            queued_at=at,
            failed_at=at,
            last_error=error,
        )
    read = status is DeliveryStatus.read
    return ImportedSent(
        delivery_id=delivery.id,
        expected=expected,
        queued_at=at,
        sent_at=at,
        delivered_at=at if read or status is DeliveryStatus.delivered else None,
        read_at=at if read else None,
    )


# --- a failure spike (`core.delivery.spikes`) -------------------------------------------------

# The error code of a delivery held because its run's failures spiked: `Store.release_held`
# leaves it (WhatsApp working again is no reason to send it), Resume releases it.
SPIKE_HOLD = "failure_spike"


@dataclass(frozen=True, kw_only=True)
class SpikeHold(DeliveryChange):
    """queued or held -> held: the rest of a run whose failures spiked waits for the owner."""

    expected: tuple[DeliveryStatus, ...] = (DeliveryStatus.queued, DeliveryStatus.held)
    status: DeliveryStatus = DeliveryStatus.held
    held_at: datetime
    last_error: str
    error_code: str = SPIKE_HOLD


@dataclass(frozen=True, kw_only=True)
class SpikeRelease(DeliveryChange):
    """held -> queued, due now: the owner resumed a run cut short by a failure spike."""

    expected: tuple[DeliveryStatus, ...] = (DeliveryStatus.held,)
    status: DeliveryStatus = DeliveryStatus.queued
    next_attempt_at: datetime
    queued_at: datetime
    last_error: None = None
    error_code: None = None


def hold_for_spike(delivery: Delivery, *, now: datetime, reason: str) -> SpikeHold | None:
    """Hold a delivery of a run cut short by a failure spike; None when it is past holding
    (being sent, sent, failed) or held for it already."""
    if delivery.status is DeliveryStatus.held and delivery.error_code == SPIKE_HOLD:
        return None
    if delivery.status not in (DeliveryStatus.queued, DeliveryStatus.held):
        return None
    return SpikeHold(delivery_id=delivery.id, held_at=now, last_error=reason)


def release_spike(delivery: Delivery, *, now: datetime) -> SpikeRelease | None:
    """Queue again, due now, a delivery held by a failure spike; None for any other."""
    if delivery.status is not DeliveryStatus.held or delivery.error_code != SPIKE_HOLD:
        return None
    return SpikeRelease(delivery_id=delivery.id, next_attempt_at=now, queued_at=now)


def without_whatsapp(new: NewDelivery, reason: str) -> NewDelivery:
    """`new` stored as failed at once: its number has no WhatsApp account (checked with
    WhatsApp before the run), so it is never sent and no attempt is spent on it."""
    return new.model_copy(
        update={
            "status": DeliveryStatus.failed,
            "last_error": reason,
            "error_code": "not_on_whatsapp",
        }
    )
