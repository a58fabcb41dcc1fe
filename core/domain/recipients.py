"""Turn what a person typed into `Recipient`s: phone numbers, saved contact names (or their
start), WhatsApp group names, group ids.

Several recipients are separated by commas, semicolons or new lines:
`+49 151 2345-6789, Anna, Family, 120363041234567890@g.us`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.adapters.store._records import name_key
from core.domain.errors import (
    InvalidRecipient,
    WhatsAppError,
    WhatsAppNotReady,
    WhatsAppUnavailable,
)
from core.domain.models import Contact, Recipient, RecipientKind

PHONE_EXAMPLE = "+49 151 23456789"

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
_NOT_DIGITS = re.compile(r"[^0-9]+")


class ContactBook(Protocol):
    """The part of the `Store` that recipient parsing needs."""

    async def list_contacts(self) -> list[Contact]: ...


class NamedGroup(Protocol):
    """A WhatsApp group as the sidecar lists it (`core.adapters.whatsapp.WhatsAppGroup`)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


# The linked account's groups, read when a typed name is no saved contact's. Raises
# `WhatsAppError` when they cannot be read (not linked, the sidecar down).
GroupSource = Callable[[], Awaitable[Sequence[NamedGroup]]]


@dataclass(frozen=True)
class Choice:
    """A typed name that matches several contacts or groups: the person picks one."""

    typed: str
    options: tuple[Recipient, ...]


# More matches than this is no question to answer with buttons: type more of the name.
MAX_OPTIONS = 8


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


class AmbiguousRecipient(InvalidRecipient):
    """A typed name matches several contacts or groups, where no one can ask which."""

    def __init__(self, choice: Choice) -> None:
        shown = distinct_labels(choice.options)
        groups = any(o.kind is RecipientKind.group for o in choice.options)
        if groups and len({typed_key(o.name or o.address) for o in choice.options}) == 1:
            what = "type the id of the group you mean (/groups lists them with their ids)"
        elif groups:
            what = "type the full name, the number itself, or a group's id (see /groups)"
        else:
            what = "type the full name, or the number itself"
        super().__init__(
            f"{choice.typed!r} matches {', '.join(shown[:-1])} and {shown[-1]}: {what}."
        )
        self.choice = choice


async def resolve_recipients(
    text: str, contacts: ContactBook, groups: GroupSource | None = None
) -> list[Recipient | Choice]:
    """Read typed recipients in order; a name that matches several is a `Choice` to ask.

    A name is, in this order: the saved contact of exactly that name (any case); the WhatsApp
    group of exactly that name; else every contact and group whose name starts with it (a
    first name, or its start). Groups are read only for a name that is no contact's.
    Raises `InvalidRecipient` naming every part that matches nothing, and saying why the
    groups could not be searched when they could not.
    """
    parts = split_recipients(text)
    if not parts:
        raise InvalidRecipient(
            f"Name at least one recipient: a number such as {PHONE_EXAMPLE}, "
            "a saved contact's name (see /contacts), or a group's name (see /groups)."
        )
    names = _Names(contacts, groups)
    found: list[Recipient | Choice] = []
    unknown: list[str] = []
    for part in parts:
        item = await _resolve_one(part, names)
        if item is None:
            unknown.append(part)
        else:
            found.append(item)
    if unknown:
        raise names.not_found(unknown)
    seen: set[str] = set()
    kept: list[Recipient | Choice] = []
    for item in found:
        if isinstance(item, Recipient):
            if item.address in seen:
                continue
            seen.add(item.address)
        kept.append(item)
    return kept


async def parse_recipients(
    text: str, contacts: ContactBook, groups: GroupSource | None = None
) -> list[Recipient]:
    """Parse typed recipients; the same address named twice is kept once (first wins).

    Raises `InvalidRecipient` naming every part that is no number, group or saved contact,
    and `AmbiguousRecipient` for a name that matches several.
    """
    resolved = await resolve_recipients(text, contacts, groups)
    for item in resolved:
        if isinstance(item, Choice):
            raise AmbiguousRecipient(item)
    return dedupe(r for r in resolved if isinstance(r, Recipient))


def typed_key(name: str) -> str:
    """How a typed name is compared with saved ones: its spaces tidied the way the service
    tidies a name it saves, then the stores' `name_key` (case-insensitive)."""
    return name_key(" ".join(name.split()))


class _Names:
    """The contacts and groups a typed name may mean, each read once, when first needed."""

    def __init__(self, contacts: ContactBook, groups: GroupSource | None) -> None:
        self._book = contacts
        self._source = groups
        self._contacts: list[Contact] | None = None
        self._groups: list[Recipient] | None = None
        self.groups_error: str | None = None
        # The account's groups exist but could not be read: a name may be one of them.
        self.groups_unreadable = False

    async def contacts(self) -> list[Contact]:
        if self._contacts is None:
            self._contacts = await self._book.list_contacts()
        return self._contacts

    async def groups(self) -> list[Recipient]:
        """The linked account's groups; none, and `groups_error` says why, if unreadable."""
        if self._groups is None:
            self._groups = []
            if self._source is None:
                self.groups_error = (
                    "no WhatsApp service is set up for this wasched (set WHATSAPP_URL)"
                )
                return self._groups
            try:
                listed = await self._source()
            except WhatsAppError as error:
                self.groups_unreadable = True
                self.groups_error = _why_unreadable(error)
            else:
                for group in listed:
                    address, name = group.id.strip().lower(), " ".join(group.name.split())
                    if _GROUP.match(address) and name:
                        self._groups.append(
                            Recipient(kind=RecipientKind.group, address=address, name=name)
                        )
        return self._groups

    def not_found(self, unknown: Sequence[str]) -> InvalidRecipient:
        shown = ", ".join(repr(name) for name in unknown)
        if self.groups_error is not None:
            noun = "contact" if len(unknown) == 1 else "contacts"
            return InvalidRecipient(
                f"No saved {noun} named {shown} in full, and your WhatsApp groups cannot be "
                f"searched now: {self.groups_error}. Or type a contact's full name (/contacts "
                "lists them; /addcontact <name> <number> saves one) or the number itself, "
                f"for example {PHONE_EXAMPLE}."
            )
        noun = "contact or WhatsApp group" if len(unknown) == 1 else "contacts or WhatsApp groups"
        return InvalidRecipient(
            f"No saved {noun} named {shown}: /contacts and /groups list the names you can "
            "type. /addcontact <name> <number> saves a contact, or type the number itself, "
            f"for example {PHONE_EXAMPLE}."
        )


def _why_unreadable(error: WhatsAppError) -> str:
    if isinstance(error, WhatsAppNotReady):
        return (
            "WhatsApp is not linked or not connected. Link it with /link (or wait until "
            "/status says WORKING), then send this again"
        )
    if isinstance(error, WhatsAppUnavailable):
        return (
            "the WhatsApp service does not answer (/status says why). Send this again once it "
            "works"
        )
    return f"the WhatsApp service refused to list them ({error})"


async def _resolve_one(part: str, names: _Names) -> Recipient | Choice | None:
    lowered = ascii_digits(part.lower())
    if lowered.endswith("@g.us"):
        group = lowered.replace(" ", "")
        if not _GROUP.match(group):
            raise InvalidRecipient(
                f"{part!r} is not a group id: type the group's name instead (see /groups)."
            )
        # Named after the account's group when it can be read; the id alone does too.
        named = [g for g in await names.groups() if g.address == group]
        return named[0] if named else Recipient(kind=RecipientKind.group, address=group)
    chat = _CHAT_ID.match(lowered)
    if chat:
        return Recipient(kind=RecipientKind.phone, address=parse_phone("+" + chat.group(1)))
    if lowered.startswith("+") or looks_like_phone(part):
        return Recipient(kind=RecipientKind.phone, address=parse_phone(part))
    key = typed_key(part)
    contacts = await names.contacts()
    for contact in contacts:
        if name_key(contact.name) == key:
            return contact_recipient(contact)
    groups = await names.groups()
    if names.groups_unreadable:
        # The name may be a group's, so a contact whose name merely starts with it may be
        # someone else: refused, saying why (the full name or the number still works).
        return None
    exact = [g for g in groups if name_key(g.name or "") == key]
    matches = exact or [
        *(contact_recipient(c) for c in contacts if name_key(c.name).startswith(key)),
        *(g for g in groups if name_key(g.name or "").startswith(key)),
    ]
    if not matches:
        return None
    if len(matches) == 1:
        return matches[0]
    if len(matches) > MAX_OPTIONS:
        raise InvalidRecipient(
            f"{part!r} matches {len(matches)} contacts and groups, among them "
            f"{labels(matches[:3])}: type more of the name."
        )
    return Choice(typed=part, options=tuple(matches))


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
    return address_label(recipient.address, recipient.name)


def address_label(address: str, name: str | None) -> str:
    """`Anna (+4915123456789)`, `+4915123456789`; a group by its name alone, `Family (group)`
    (its id is nothing a person reads), or by its id when its name is not known."""
    if not name:
        return address
    if address.endswith("@g.us"):
        return f"{name} (group)"
    return f"{name} ({address})"


def labels(recipients: Sequence[Recipient]) -> str:
    return ", ".join(distinct_labels(recipients))


# Fewest digits of a group id shown to tell same-named groups apart.
GROUP_ID_TAIL = 4


def distinct_labels(recipients: Sequence[Recipient]) -> list[str]:
    """Each recipient's `label`; groups that would read the same (they share a name) carry the
    end of their id too, `Family (group …7890)`, with as many digits as tell them apart."""
    shown = [label(r) for r in recipients]
    for same in {text for text in shown if shown.count(text) > 1}:
        at = [i for i, text in enumerate(shown) if text == same]
        ids = [_NOT_DIGITS.sub("", recipients[i].address) for i in at]
        if recipients[at[0]].kind is not RecipientKind.group:
            continue
        tail = GROUP_ID_TAIL
        while tail < max(len(i) for i in ids) and len({i[-tail:] for i in ids}) < len(ids):
            tail += 1
        for i, digits in zip(at, ids, strict=True):
            shown[i] = f"{recipients[i].name} (group …{digits[-tail:]})"
    return shown
