"""Each transition of `core.delivery.states` is the change it names, or refused: pure functions,
checked field by field (what `Store.apply` writes is in the store's contract suite)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.delivery import states
from core.domain.models import Delivery, DeliveryStatus, NewDelivery
from core.domain.session import SessionState, explain

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)
LEASED = (None, None)  # lease_owner, lease_until: what a change out of `sending` writes


def delivery(status: DeliveryStatus, **fields: Any) -> Delivery:
    return Delivery(
        id=41,
        run_id=7,
        schedule_id=3,
        owner_id=1001,
        recipient="+491510000001",
        text="Hello",
        idempotency_key="run7.0:+491510000001",
        status=status,
        next_attempt_at=EARLIER,
        created_at=EARLIER,
        **fields,
    )


SENDING = delivery(
    DeliveryStatus.sending,
    attempts=1,
    lease_owner="w1",
    lease_until=NOW + timedelta(minutes=2),
    sending_at=NOW,
)


def never(attempts: int) -> float:
    raise AssertionError(f"no backoff for a change that does not retry (attempt {attempts})")


def attempt(
    failed: Delivery,
    *,
    transient: bool,
    max_attempts: int,
    backoff: Callable[[int], float] = never,
    reason: str = "Timed out.",
    code: str = "timeout",
) -> states.RetryLater | states.Fail:
    """What a failed send of `failed` by worker w1 now becomes."""
    return states.failed_attempt(
        failed,
        worker="w1",
        now=NOW,
        reason=reason,
        code=code,
        transient=transient,
        max_attempts=max_attempts,
        backoff=backoff,
    )


def test_release_gives_the_lease_back_and_leaves_the_due_time() -> None:
    change = states.release(SENDING, worker="w1")
    assert (change.delivery_id, change.expected, change.worker) == (
        41,
        (DeliveryStatus.sending,),
        "w1",
    )
    assert change.fields() == {
        "status": DeliveryStatus.queued,
        "lease_owner": None,
        "lease_until": None,
    }


def test_release_now_makes_a_crashed_send_due_at_once() -> None:
    change = states.release_now(SENDING, worker="w1", now=NOW)
    assert (change.expected, change.worker) == ((DeliveryStatus.sending,), "w1")
    assert change.fields() == {
        "status": DeliveryStatus.queued,
        "lease_owner": None,
        "lease_until": None,
        "queued_at": NOW,
        "next_attempt_at": NOW,
    }


def test_sent_counts_one_attempt_more_and_clears_the_error_and_the_lease() -> None:
    change = states.sent(SENDING, "wa-1", worker="w1", now=NOW)
    assert (change.expected, change.worker) == ((DeliveryStatus.sending,), "w1")
    assert change.fields() == {
        "status": DeliveryStatus.sent,
        "whatsapp_id": "wa-1",
        "attempts": 2,
        "sent_at": NOW,
        "last_error": None,
        "error_code": None,
        "lease_owner": None,
        "lease_until": None,
    }


def test_a_transient_failure_with_attempts_left_retries_after_the_backoff() -> None:
    asked: list[int] = []

    def backoff(attempts: int) -> float:
        asked.append(attempts)
        return 40.0

    change = attempt(SENDING, transient=True, max_attempts=3, backoff=backoff)
    assert isinstance(change, states.RetryLater)
    assert asked == [2]
    assert (change.expected, change.worker) == ((DeliveryStatus.sending,), "w1")
    assert change.fields() == {
        "status": DeliveryStatus.queued,
        "attempts": 2,
        "last_error": "Timed out.",
        "error_code": "timeout",
        "queued_at": NOW,
        "next_attempt_at": NOW + timedelta(seconds=40),
        "lease_owner": None,
        "lease_until": None,
    }


def test_the_last_transient_attempt_fails_and_says_it_gave_up() -> None:
    change = attempt(SENDING, transient=True, max_attempts=2)
    assert isinstance(change, states.Fail)
    assert change.fields() == {
        "status": DeliveryStatus.failed,
        "attempts": 2,
        "last_error": "Timed out. Gave up after 2 attempts.",
        "error_code": "timeout",
        "failed_at": NOW,
        "lease_owner": None,
        "lease_until": None,
    }


def test_a_permanent_failure_fails_at_the_first_attempt_with_its_reason_as_is() -> None:
    first = SENDING.model_copy(update={"attempts": 0})
    change = attempt(
        first,
        transient=False,
        max_attempts=5,
        reason="The number is not on WhatsApp.",
        code="not_on_whatsapp",
    )
    assert isinstance(change, states.Fail)
    assert (change.attempts, change.last_error, change.worker) == (
        1,
        "The number is not on WhatsApp.",
        "w1",
    )


def test_hold_spends_no_attempt_and_says_why() -> None:
    change = states.hold(SENDING, worker="w1", now=NOW, reason="Not linked.", code="not_ready")
    assert (change.expected, change.worker) == ((DeliveryStatus.sending,), "w1")
    assert change.fields() == {
        "status": DeliveryStatus.held,
        "held_at": NOW,
        "last_error": "Not linked.",
        "error_code": "not_ready",
        "lease_owner": None,
        "lease_until": None,
    }
    assert "attempts" not in change.fields()


def test_hold_reason_is_the_session_s_own_unless_it_was_never_heard_or_said_working() -> None:
    assert states.hold_reason(None, None) == states.NOT_LINKED
    assert states.hold_reason(SessionState.WORKING, None) == states.NOT_LINKED
    reason = explain("SCAN_QR_CODE").reason
    assert states.hold_reason("SCAN_QR_CODE", None) == (
        f"{reason} It goes out once WhatsApp works again."
    )


@pytest.mark.parametrize(
    ("status", "ack", "to"),
    [
        (DeliveryStatus.sent, 2, DeliveryStatus.delivered),
        (DeliveryStatus.sent, 3, DeliveryStatus.read),
        (DeliveryStatus.sent, 4, DeliveryStatus.read),
        (DeliveryStatus.delivered, 3, DeliveryStatus.read),
    ],
)
def test_an_ack_moves_a_delivery_forward(
    status: DeliveryStatus, ack: int, to: DeliveryStatus
) -> None:
    change = states.ack(delivery(status, whatsapp_id="wa-1"), ack, now=NOW)
    assert isinstance(change, states.Ack)
    assert (change.expected, change.worker, change.status) == ((status,), None, to)


def test_a_delivered_ack_stamps_delivered_at() -> None:
    change = states.ack(delivery(DeliveryStatus.sent), 2, now=NOW)
    assert change is not None
    assert change.fields() == {"status": DeliveryStatus.delivered, "delivered_at": NOW}


def test_a_read_ack_keeps_the_delivered_time_it_had_and_sets_one_it_lacked() -> None:
    delivered = delivery(DeliveryStatus.delivered, delivered_at=EARLIER)
    change = states.ack(delivered, 3, now=NOW)
    assert change is not None
    assert change.fields() == {"status": DeliveryStatus.read, "read_at": NOW}
    change = states.ack(delivery(DeliveryStatus.sent), 3, now=NOW)
    assert change is not None
    assert change.fields() == {
        "status": DeliveryStatus.read,
        "delivered_at": NOW,
        "read_at": NOW,
    }


@pytest.mark.parametrize(
    ("status", "ack"),
    [
        (DeliveryStatus.sent, 1),
        (DeliveryStatus.delivered, 1),
        (DeliveryStatus.delivered, 2),
        (DeliveryStatus.read, 1),
        (DeliveryStatus.read, 2),
        (DeliveryStatus.read, 3),
        (DeliveryStatus.read, 4),
        (DeliveryStatus.sent, 0),  # pending: names no status of ours
        (DeliveryStatus.sent, 7),
        (DeliveryStatus.sending, 2),  # not recorded sent yet: acks wait for that
        (DeliveryStatus.failed, 3),
        (DeliveryStatus.queued, 2),
    ],
)
def test_an_ack_never_moves_a_delivery_backwards_or_sideways(
    status: DeliveryStatus, ack: int
) -> None:
    assert states.ack(delivery(status), ack, now=NOW) is None


def test_an_error_ack_fails_only_a_sent_message() -> None:
    change = states.ack(delivery(DeliveryStatus.sent), -1, now=NOW)
    assert isinstance(change, states.AckFailed)
    assert change.expected == (DeliveryStatus.sent,)
    assert change.fields() == {
        "status": DeliveryStatus.failed,
        "failed_at": NOW,
        "error_code": "ack_error",
        "last_error": "WhatsApp reported an error delivering this message.",
    }
    for status in (DeliveryStatus.delivered, DeliveryStatus.read, DeliveryStatus.failed):
        assert states.ack(delivery(status), -1, now=NOW) is None


@pytest.mark.parametrize("status", [DeliveryStatus.failed, DeliveryStatus.missed])
def test_retry_queues_a_failed_or_missed_delivery_from_scratch(status: DeliveryStatus) -> None:
    given_up = delivery(
        status, attempts=5, last_error="Timed out.", error_code="timeout", failed_at=EARLIER
    )
    change = states.retry(given_up, now=NOW)
    assert change is not None
    assert (change.expected, change.worker) == (states.RETRYABLE, None)
    assert change.fields() == {
        "status": DeliveryStatus.queued,
        "attempts": 0,
        "next_attempt_at": NOW,
        "queued_at": NOW,
        "last_error": None,
        "error_code": None,
        "failed_at": None,
        "missed_at": None,
        "lease_owner": None,
        "lease_until": None,
    }


@pytest.mark.parametrize(
    "status",
    [s for s in DeliveryStatus if s not in (DeliveryStatus.failed, DeliveryStatus.missed)],
)
def test_retry_refuses_a_delivery_that_did_not_fail(status: DeliveryStatus) -> None:
    assert states.retry(delivery(status), now=NOW) is None


def test_render_failed_is_stored_failed_with_its_reason_and_no_text() -> None:
    new = NewDelivery(recipient="+491510000001", text="Hi {city}", idempotency_key="k1")
    failed = states.render_failed(new, "There is no {city}.")
    assert (failed.status, failed.last_error, failed.error_code, failed.text) == (
        DeliveryStatus.failed,
        "There is no {city}.",
        "render_failed",
        "",
    )
    assert (failed.recipient, failed.idempotency_key) == (new.recipient, new.idempotency_key)


def test_missed_is_stored_missed_without_a_render_failure_s_reason() -> None:
    new = NewDelivery(recipient="+491510000001", text="Hi", idempotency_key="k1")
    assert states.missed(new) == new.model_copy(update={"status": DeliveryStatus.missed})
    missed = states.missed(states.render_failed(new, "There is no {city}."))
    assert (missed.status, missed.last_error, missed.error_code) == (
        DeliveryStatus.missed,
        None,
        None,
    )


def test_an_imported_failure_gets_its_times_and_reason() -> None:
    stored = delivery(DeliveryStatus.failed)
    change = states.imported(stored, DeliveryStatus.failed, at=EARLIER, error=None)
    assert (change.expected, change.worker) == ((DeliveryStatus.failed,), None)
    assert change.fields() == {
        "attempts": 1,
        "queued_at": EARLIER,
        "failed_at": EARLIER,
        "last_error": None,
        "error_code": "legacy",
    }


@pytest.mark.parametrize(
    ("status", "stamps"),
    [
        (DeliveryStatus.sent, {}),
        (DeliveryStatus.delivered, {"delivered_at": EARLIER}),
        (DeliveryStatus.read, {"delivered_at": EARLIER, "read_at": EARLIER}),
    ],
)
def test_an_imported_message_gets_the_times_it_went_through(
    status: DeliveryStatus, stamps: dict[str, datetime]
) -> None:
    change = states.imported(delivery(status), status, at=EARLIER, error=None)
    assert change.expected == (status,)
    assert change.fields() == {"attempts": 1, "queued_at": EARLIER, "sent_at": EARLIER, **stamps}


def test_a_change_is_frozen() -> None:
    change = states.release(SENDING, worker="w1")
    with pytest.raises(AttributeError):
        change.worker = "w2"  # type: ignore[misc]
