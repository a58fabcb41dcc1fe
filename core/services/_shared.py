"""What several services share: the id range, looking a record up by a typed id, name
cleaning, the NotFound texts for schedules and runs, and WhatsApp numbers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from core.adapters.whatsapp import WhatsAppClient
from core.delivery.numbers import NumberGuard, numbers_of
from core.domain.errors import (
    InvalidInput,
    InvalidRecipient,
    NotFound,
    NumbersNotOnWhatsApp,
    WhatsAppUnavailable,
)
from core.domain.models import Delivery, Recipient, RecipientKind
from core.domain.recipients import PHONE_EXAMPLE, parse_phone

# Both stores keep ids as signed 64-bit integers (SQLite INTEGER, BSON int64): a larger id
# names nothing, and must not reach a query, where it would raise OverflowError.
MAX_ID = 2**63 - 1
MAX_NAME_LENGTH = 64
NAME_FORBIDDEN = re.compile(r"[,;|\n\r]")

T = TypeVar("T")


def is_id(value: int) -> bool:
    """True when `value` can be the id of a stored record (ids start at 1)."""
    return 1 <= value <= MAX_ID


async def stored(get: Callable[[int], Awaitable[T | None]], record_id: int) -> T | None:
    """`get(record_id)`, or None without asking the store when no record can have that id."""
    return await get(record_id) if is_id(record_id) else None


def no_schedule(schedule_id: int) -> NotFound:
    """A missing schedule, and someone else's: the same answer, so ids reveal nothing."""
    return NotFound(f"There is no schedule #{schedule_id}: see /list for your schedules.")


def no_run(run_id: int) -> NotFound:
    """A missing run, and someone else's: the same answer, so ids reveal nothing."""
    return NotFound(f"There is no run #{run_id}: see /logs for recent deliveries.")


def require_whatsapp(whatsapp: WhatsAppClient | None) -> WhatsAppClient:
    if whatsapp is None:
        raise WhatsAppUnavailable(
            "WhatsApp is not connected to this wasched: set WHATSAPP_URL and restart."
        )
    return whatsapp


def braced(names: Sequence[str] | set[str] | frozenset[str]) -> str:
    return ", ".join("{" + name + "}" for name in sorted(names))


# How to write a name, for each kind of record that has one.
_NAME_EXAMPLES = {
    "contact": f"/addcontact Anna {PHONE_EXAMPLE}",
    "template": "/addtemplate greeting | Hello {first_name}!",
}


def clean_name(name: str, *, what: str) -> str:
    """The name with its spaces tidied, or `InvalidInput` saying what to type instead."""
    cleaned = " ".join(name.split())
    example = _NAME_EXAMPLES.get(what, "Anna")
    if not cleaned:
        raise InvalidInput(f"Give the {what} a name, for example {example}.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"A {what} name has at most {MAX_NAME_LENGTH} characters; {cleaned[:20]!r}... has "
            f"{len(cleaned)}."
        )
    if NAME_FORBIDDEN.search(cleaned):
        words = NAME_FORBIDDEN.sub(" ", cleaned).split()
        # Nothing but separators gives nothing to suggest from the name itself.
        instead = f"try {words[0]!r}" if words else f"write it as {example}"
        raise InvalidInput(f"A {what} name cannot contain commas, semicolons or |: {instead}.")
    return cleaned


def whatsapp_number(raw: str) -> str | None:
    """`+digits` from a WhatsApp number or chat id (`4915...@c.us`), or None if it is none."""
    raw = raw.strip()
    if raw.endswith(("@g.us", "@lid", "@broadcast", "@newsletter")):
        return None
    digits = raw.split("@", 1)[0].split(":", 1)[0].lstrip("+")
    try:
        return parse_phone("+" + digits)
    except InvalidRecipient:
        return None


def recipient_of(delivery: Delivery) -> Recipient:
    """The recipient a delivery went to, as far as its idempotency key needs it."""
    group = delivery.recipient.endswith("@g.us")
    return Recipient(
        kind=RecipientKind.group if group else RecipientKind.phone,
        address=delivery.recipient,
        name=delivery.recipient_name,
    )


async def refuse_without_whatsapp(
    numbers: NumberGuard | None, recipients: Sequence[Recipient], *, fix: str
) -> None:
    """Refuse recipients whose number WhatsApp says has no account (nothing is stored), with
    `fix`, what to do instead. Numbers WhatsApp cannot be asked about now pass."""
    if numbers is None:
        return
    verdict = await numbers.check(numbers_of(recipients))
    if not verdict.not_on_whatsapp:
        return
    names = {r.address: r.name for r in recipients if r.name}
    who = [f"{names[n]} ({n})" if n in names else n for n in verdict.not_on_whatsapp]
    have = "has" if len(who) == 1 else "have"
    raise NumbersNotOnWhatsApp(
        f"Not saved: {', '.join(who)} {have} no WhatsApp account (WhatsApp says so), and "
        f"messages to such numbers count against your account. {fix}"
    )
