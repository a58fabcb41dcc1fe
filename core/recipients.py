"""Turn what a person typed into `Recipient`s: phone numbers, saved contact names, group ids.

Several recipients are separated by commas, semicolons or new lines:
`+49 151 2345-6789, Anna, 120363041234567890@g.us`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Protocol

from core.errors import InvalidRecipient
from core.models import Contact, Recipient, RecipientKind

PHONE_EXAMPLE = "+49 151 23456789"
GROUP_EXAMPLE = "120363041234567890@g.us"

# E.164 allows at most 15 digits; fewer than 8 is no real international number.
MIN_DIGITS = 8
MAX_DIGITS = 15

_SEPARATORS = re.compile(r"[,;\n\r]+")
# ASCII digits only (re's \d takes every script's digits): what the sidecar can send to.
_DIGITS = re.compile(r"[0-9]+")
_GROUP = re.compile(r"^[0-9]+(?:-[0-9]+)?@g\.us$")
_CHAT_ID = re.compile(r"^([0-9]+)@c\.us$")
# Characters people put inside a number: spaces, dashes, dots, slashes, parentheses.
_PHONE_NOISE = re.compile(r"[\s\-./()\u00a0]")
_PHONE_LIKE = re.compile(r"^[+(]?[0-9\s\-./()\u00a0]+$")
_FULLWIDTH_PLUS = "\uff0b"


class ContactLookup(Protocol):
    """The part of the `Store` that recipient parsing needs."""

    async def find_contact(self, name: str) -> Contact | None: ...


def ascii_digits(text: str) -> str:
    """`text` with the digits of every script (Arabic-Indic ٤٩, fullwidth ４９, ...) and a
    fullwidth plus written in ASCII; other characters (superscripts too) stay as they are."""
    return "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() else "+" if c == _FULLWIDTH_PLUS else c
        for c in text
    )


def parse_phone(text: str) -> str:
    """Normalize a typed phone number to `+digits`, or raise `InvalidRecipient` saying why.

    Spaces, dashes, dots, slashes and parentheses are allowed, and digits of any script are
    read as ASCII ones; the number must carry its country code, written with a leading `+`
    or `00`.
    """
    raw = text.strip()
    compact = _PHONE_NOISE.sub("", ascii_digits(raw))
    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    else:
        digits = compact
        if _DIGITS.fullmatch(digits):
            raise InvalidRecipient(
                f"{raw!r} has no country code: write the number with a leading + "
                f"(or 00), for example {PHONE_EXAMPLE}."
            )
    if not _DIGITS.fullmatch(digits):
        raise InvalidRecipient(
            f"{raw!r} is not a phone number: use digits after the +, for example {PHONE_EXAMPLE}."
        )
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise InvalidRecipient(
            f"{raw!r} has {len(digits)} digits, but a number with its country code has "
            f"{MIN_DIGITS} to {MAX_DIGITS}: for example {PHONE_EXAMPLE}."
        )
    return "+" + digits


def looks_like_phone(text: str) -> bool:
    """True when `text` is made of digits and number punctuation (so it is not a name)."""
    stripped = ascii_digits(text.strip())
    return bool(_PHONE_LIKE.match(stripped)) and any(c in "0123456789" for c in stripped)


def split_recipients(text: str) -> list[str]:
    """Split typed recipients on commas, semicolons and new lines; drop empty parts."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def contact_recipient(contact: Contact) -> Recipient:
    return Recipient(
        kind=RecipientKind.contact,
        address=contact.phone,
        name=contact.name,
        contact_id=contact.id,
    )


async def parse_recipients(text: str, contacts: ContactLookup) -> list[Recipient]:
    """Parse typed recipients; the same address named twice is kept once (first wins).

    Raises `InvalidRecipient` naming every part that is no number, group or saved contact.
    """
    parts = split_recipients(text)
    if not parts:
        raise InvalidRecipient(
            f"Name at least one recipient: a number such as {PHONE_EXAMPLE}, "
            "a saved contact's name, or a group id (see /groups)."
        )
    found: list[Recipient] = []
    unknown: list[str] = []
    for part in parts:
        recipient = await _parse_one(part, contacts)
        if recipient is None:
            unknown.append(part)
        else:
            found.append(recipient)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        noun = "contact" if len(unknown) == 1 else "contacts"
        raise InvalidRecipient(
            f"No saved {noun} named {names}: add one with /addcontact <name> <number>, "
            f"or type the number itself, for example {PHONE_EXAMPLE}."
        )
    return dedupe(found)


async def _parse_one(part: str, contacts: ContactLookup) -> Recipient | None:
    lowered = ascii_digits(part.lower())
    if lowered.endswith("@g.us"):
        group = lowered.replace(" ", "")
        if not _GROUP.match(group):
            raise InvalidRecipient(
                f"{part!r} is not a group id: group ids look like {GROUP_EXAMPLE} (see /groups)."
            )
        return Recipient(kind=RecipientKind.group, address=group)
    chat = _CHAT_ID.match(lowered)
    if chat:
        return Recipient(kind=RecipientKind.phone, address=parse_phone("+" + chat.group(1)))
    if lowered.startswith("+") or looks_like_phone(part):
        return Recipient(kind=RecipientKind.phone, address=parse_phone(part))
    contact = await contacts.find_contact(part)
    if contact is None:
        return None
    return contact_recipient(contact)


def dedupe(recipients: Iterable[Recipient]) -> list[Recipient]:
    """Keep the first recipient of each address."""
    seen: set[str] = set()
    kept: list[Recipient] = []
    for recipient in recipients:
        if recipient.address in seen:
            continue
        seen.add(recipient.address)
        kept.append(recipient)
    return kept


def label(recipient: Recipient) -> str:
    """How a recipient is shown to a person: `Anna (+4915123456789)`, `+4915...`, a group."""
    if recipient.name:
        return f"{recipient.name} ({recipient.address})"
    return recipient.address


def labels(recipients: Sequence[Recipient]) -> str:
    return ", ".join(label(r) for r in recipients)
