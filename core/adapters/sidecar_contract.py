"""The sidecar's HTTP contract as models: what its routes answer and the events it posts.

Each model mirrors a JSON schema of whatsapp-service (`src/routes/*.js`, `src/routes/schemas.js`)
and of its events (`src/events.js`; README "The HTTP contract, as implemented"). The client
(`core.adapters.whatsapp`) returns these models; core's HTTP server parses events with
`SIDECAR_EVENT`.

Where the sidecar sends null or leaves a field out (an older sidecar, WhatsApp not knowing a
push name), the models read it the way wasched always has: a missing `failure` or a malformed
one is no failure, a null `name` is "", a null field of `me` is left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    TypeAdapter,
)

from core.domain.session import SessionFailure, SessionState


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time, as the sidecar writes every time (`Date.toISOString()`); None for
    anything else (a time core cannot read is no time, never a refusal)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _account(value: Any) -> dict[str, str] | None:
    """`me` without its null fields (WhatsApp may not know a push name): never "None"."""
    if not isinstance(value, dict):
        return None
    return {str(key): str(item) for key, item in value.items() if item is not None}


def _failure(value: Any) -> SessionFailure | None:
    """Why the session fails; a malformed one is left out, not refused."""
    return value if isinstance(value, SessionFailure) else SessionFailure.parse(value)


def _ack(value: Any) -> int | None:
    """An ack is an integer; anything else (null, true) is an ack the sidecar does not know."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


Instant = Annotated[datetime | None, PlainValidator(_instant)]
Account = Annotated[dict[str, str] | None, PlainValidator(_account)]
Failure = Annotated[SessionFailure | None, PlainValidator(_failure)]
Name = Annotated[str, BeforeValidator(lambda value: value or "")]


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- what the routes answer ----------------------------------------------------------------


class SessionHealth(Contract):
    """`GET /health`."""

    status: str
    engine: str
    state: SessionState
    me: Account = None
    # Why the session does not work; None while it works (and from a sidecar without it).
    failure: Failure = None

    @property
    def working(self) -> bool:
        return self.state is SessionState.WORKING


class QrCode(Contract):
    """`GET /session/qr`."""

    qr: str
    png_base64: str


class PairingCode(Contract):
    """`POST /session/pairing-code`."""

    code: str


class SentMessage(Contract):
    """`POST /messages` (201)."""

    id: str = Field(min_length=1)
    to: str
    timestamp: Instant = None
    # True when the sidecar had sent this idempotency key before and did not send it again.
    duplicate: bool = False


class MessageAck(Contract):
    """`GET /messages/{id}`: how far one message got (-1 error ... 4 played)."""

    id: str
    ack: StrictInt


class KnownAck(Contract):
    """One row of `POST /messages/acks`; `ack` None: the sidecar does not know the message
    (a row without an id says nothing and is skipped)."""

    id: str | None = None
    ack: Annotated[int | None, PlainValidator(_ack)] = None


class MessageAcks(Contract):
    """`POST /messages/acks`."""

    acks: list[KnownAck]


class WhatsAppContact(Contract):
    """One item of `GET /contacts`."""

    id: str
    name: Name = ""
    number: Annotated[str | None, BeforeValidator(lambda value: value or None)] = None


class WhatsAppGroup(Contract):
    """One item of `GET /groups`; `participants` are the members' WhatsApp ids."""

    id: str
    name: Name = ""
    participants: Annotated[tuple[str, ...], BeforeValidator(lambda value: value or ())] = ()


CONTACTS = TypeAdapter(list[WhatsAppContact])
GROUPS = TypeAdapter(list[WhatsAppGroup])


# --- the events it posts (`POST {"event", "payload", "timestamp"}`) -------------------------


class AckPayload(Contract):
    id: str
    ack: StrictInt


class StatusPayload(Contract):
    # An early sidecar called it `status`.
    state: SessionState = Field(validation_alias=AliasChoices("state", "status"))
    me: Account = None
    failure: Failure = None


class QrPayload(Contract):
    qr: str = Field(min_length=1)


class Event(Contract):
    # What the sidecar is told when the payload does not fit (400 invalid_request).
    needs: ClassVar[str]
    timestamp: Instant = None


class MessageAckEvent(Event):
    needs: ClassVar[str] = "message.ack needs id and ack"
    event: Literal["message.ack"]
    payload: AckPayload


class SessionStatusEvent(Event):
    needs: ClassVar[str] = "session.status needs state"
    event: Literal["session.status"]
    payload: StatusPayload


class SessionQrEvent(Event):
    needs: ClassVar[str] = "session.qr needs qr"
    event: Literal["session.qr"]
    payload: QrPayload


SidecarEvent = Annotated[
    MessageAckEvent | SessionStatusEvent | SessionQrEvent, Field(discriminator="event")
]
SIDECAR_EVENT: TypeAdapter[SidecarEvent] = TypeAdapter(SidecarEvent)
EVENT_TYPES: dict[str, type[Event]] = {
    "message.ack": MessageAckEvent,
    "session.status": SessionStatusEvent,
    "session.qr": SessionQrEvent,
}


# --- number checks (`POST /contacts/check`) ------------------------------------------------

# Most numbers one `POST /contacts/check` takes (the sidecar's MAX_CHECK_NUMBERS).
MAX_CHECK_NUMBERS = 50


class NumberCheck(Contract):
    """One number of `POST /contacts/check`: whether it has a WhatsApp account, and its id."""

    number: str
    on_whatsapp: bool
    whatsapp_id: str | None = None


class NumberChecks(Contract):
    """`POST /contacts/check`: the numbers asked, in order, up to a lookup that failed (the
    numbers from it on are left out: not checked)."""

    numbers: list[NumberCheck]
