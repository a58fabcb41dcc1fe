"""One tree of errors for everything wasched refuses or fails at.

Every message is a sentence a person can act on; the bot shows `str(error)` as it is.
Foreign exceptions (sqlite, pymongo, httpx) are translated where they occur.
"""

from __future__ import annotations


class WaschedError(Exception):
    """Base of every error wasched raises on purpose."""


# --- configuration -----------------------------------------------------------------------


class ConfigError(WaschedError):
    """A setting is missing or malformed; the message names it and says how to fix it."""


# --- input a person typed ----------------------------------------------------------------


class InvalidInput(WaschedError):
    """Something a person typed cannot be used; the message says what to type instead."""


class InvalidWhen(InvalidInput):
    """A time or rule that cannot be parsed, is impossible, or lies in the past."""


class InvalidRecipient(InvalidInput):
    """A recipient that is neither a number, a saved contact nor a group id."""


class InvalidTemplate(InvalidInput):
    """A template with unknown variables or broken braces."""


class MessageTooLong(InvalidInput):
    """Message text over WhatsApp's limit."""


class InvalidTimezone(InvalidInput):
    """A time zone name that is not in the IANA database."""


# --- records -----------------------------------------------------------------------------


class NotFound(WaschedError):
    """A record the caller named does not exist (or belongs to someone else)."""


class AlreadyExists(WaschedError):
    """A record with the same unique name exists already."""


class DuplicateRun(WaschedError):
    """A run for this (schedule, scheduled_for) was inserted already, by us or another process."""


class ScheduleMoved(WaschedError):
    """The occurrence is no longer due: the schedule was paused, edited, deleted or advanced
    (by this process or another) after it was read."""


class InvalidState(WaschedError):
    """The action does not fit the record's state (resume a done schedule, retry a sent one)."""


class StoreError(WaschedError):
    """The database failed or cannot be reached."""


class TargetNotEmpty(StoreError):
    """A migration target already holds data."""


class StoreNotWritable(StoreError):
    """The database refuses writes (read-only, disk full, locked): `reason` and `fix`."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}: {fix}")
        self.reason = reason
        self.fix = fix


# --- WhatsApp sidecar --------------------------------------------------------------------


class WhatsAppError(WaschedError):
    """The sidecar refused or failed a request."""

    code: str = "send_failed"
    transient: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class WhatsAppUnavailable(WhatsAppError):
    """The sidecar is down, timed out or answered 5xx: worth trying again later."""

    code = "unavailable"
    transient = True


class WhatsAppNotReady(WhatsAppError):
    """The WhatsApp session is not linked or not connected (sidecar `not_ready`)."""

    code = "not_ready"
    transient = True


class NotOnWhatsApp(WhatsAppError):
    """The number has no WhatsApp account (sidecar `not_on_whatsapp`)."""

    code = "not_on_whatsapp"


class WhatsAppRequestRejected(WhatsAppError):
    """The sidecar refused the request as invalid (`invalid_request`, `unauthorized`)."""

    code = "invalid_request"


class WhatsAppSendFailed(WhatsAppError):
    """WhatsApp refused or broke one send (sidecar `send_failed`, HTTP 502).

    Transient: such failures usually pass, so the sender retries them a bounded number of
    times (`RETRY_MAX_ATTEMPTS`) before it records the delivery failed with this reason."""

    code = "send_failed"
    transient = True


class WhatsAppReachOutLimited(WhatsAppError):
    """WhatsApp refuses new chats from this account for a while (sidecar `reachout_limited`,
    its error 463). Permanent for the message: a retry only makes the limit likelier to stay."""

    code = "reachout_limited"


class NumbersNotOnWhatsApp(InvalidRecipient):
    """Recipients whose number has no WhatsApp account (asked with WhatsApp at save time):
    refused, nothing stored, since sending to them counts against the account."""
