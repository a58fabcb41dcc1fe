"""Message templates: `{variables}` filled per recipient and occurrence.

Variables:
- `{name}`: the contact's name; for a phone number or group without a saved contact, the
  recipient's name when one is known. A schedule using `{name}` for a recipient with no name is
  refused when it is saved (the service checks); should one reach rendering anyway (imported
  data), the number or group id stands in.
- `{first_name}`: the first word of `{name}`.
- `{date}` (`2026-12-24`), `{time}` (`18:00`), `{weekday}` (`Thursday`): the occurrence in the
  schedule's time zone.
- any key of the contact's `fields`, e.g. `{company}`.

`{{` and `}}` write literal braces. When a message is checked, only `{identifier}` counts as a
variable; another lone brace (`:-{`) is kept as written. Saved templates are stricter
(`check_braces`) so a typo like `{name` is caught when the template is added.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from core.domain.errors import InvalidInput, InvalidTemplate, MessageTooLong
from core.domain.models import WHATSAPP_TEXT_LIMIT, Contact, Recipient

logger = logging.getLogger(__name__)

BUILTIN_VARIABLES = frozenset({"name", "first_name", "date", "time", "weekday"})
# The variables that need the recipient's name (a bare number or group id has none).
NAME_VARIABLES = frozenset({"name", "first_name"})

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"\{\{|\}\}|\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}|\{|\}")


@dataclass(frozen=True, slots=True)
class _Token:
    start: int
    end: int
    kind: str  # "open", "close", "var", "lone"
    value: str


def _tokens(text: str) -> Iterable[_Token]:
    for match in _TOKEN.finditer(text):
        raw = match.group(0)
        if raw == "{{":
            yield _Token(match.start(), match.end(), "open", "{")
        elif raw == "}}":
            yield _Token(match.start(), match.end(), "close", "}")
        elif match.group(1) is not None:
            yield _Token(match.start(), match.end(), "var", match.group(1))
        else:
            yield _Token(match.start(), match.end(), "lone", raw)


def template_variables(text: str) -> set[str]:
    """Names of the `{variables}` in `text`."""
    return {token.value for token in _tokens(text) if token.kind == "var"}


def is_variable_name(name: str) -> bool:
    return bool(_IDENTIFIER.match(name))


def _allowed_list(allowed: Iterable[str]) -> str:
    return ", ".join("{" + name + "}" for name in sorted(allowed))


def check_template(text: str, allowed: Iterable[str]) -> None:
    """Raise `InvalidTemplate` naming every variable of `text` that is not in `allowed`."""
    allowed_set = set(allowed)
    unknown = template_variables(text) - allowed_set
    if not unknown:
        return
    names = ", ".join("{" + name + "}" for name in sorted(unknown))
    noun = "variable" if len(unknown) == 1 else "variables"
    raise InvalidTemplate(
        f"Unknown {noun} {names}. You can use {_allowed_list(allowed_set)}; "
        "write {{ and }} for literal braces."
    )


def check_braces(text: str) -> None:
    """Raise `InvalidTemplate` for a brace that is neither a `{variable}` nor `{{`/`}}`."""
    for token in _tokens(text):
        if token.kind != "lone":
            continue
        context = text[max(0, token.start - 10) : token.end + 10].replace("\n", " ")
        raise InvalidTemplate(
            f"A lone {token.value} near {context!r}: write a variable as {{name}} "
            "(letters, digits and _), or {{ and }} for literal braces."
        )


def check_length(text: str, *, who: str | None = None) -> None:
    """Raise `MessageTooLong` when `text` is over WhatsApp's limit."""
    count = len(text)
    if count <= WHATSAPP_TEXT_LIMIT:
        return
    for_whom = f" for {who}" if who else ""
    raise MessageTooLong(
        f"The message{for_whom} has {count} characters, but WhatsApp takes at most "
        f"{WHATSAPP_TEXT_LIMIT}: shorten it by {count - WHATSAPP_TEXT_LIMIT}."
    )


def check_message(text: str | None, *, has_media: bool) -> None:
    """Refuse an empty message without media, and text over WhatsApp's limit."""
    if (text is None or not text.strip()) and not has_media:
        raise InvalidInput(
            "The message is empty: write the text to send, or attach a photo or document."
        )
    if text:
        check_length(text)


def available_variables(contacts: Iterable[Contact | None]) -> set[str]:
    """Builtins plus the contact fields every recipient has (None: not a saved contact)."""
    common: set[str] | None = None
    for contact in contacts:
        keys = {k for k in contact.fields if is_variable_name(k)} if contact is not None else set()
        common = keys if common is None else common & keys
    return set(BUILTIN_VARIABLES) | (common or set())


def recipient_name(recipient: Recipient, contact: Contact | None) -> str:
    """What `{name}` becomes: contact name, else recipient name, else the address."""
    if contact is not None:
        return contact.name
    return recipient.name or recipient.address


def variables(
    *, recipient: Recipient, contact: Contact | None, when: datetime, tz: str
) -> dict[str, str]:
    """Every variable's value for one recipient at one occurrence."""
    local = when.astimezone(ZoneInfo(tz))
    name = recipient_name(recipient, contact)
    values: dict[str, str] = {}
    if contact is not None:
        values.update({k: v for k, v in contact.fields.items() if is_variable_name(k)})
    values.update(
        {
            "name": name,
            "first_name": name.split()[0] if name.split() else name,
            "date": local.strftime("%Y-%m-%d"),
            "time": local.strftime("%H:%M"),
            "weekday": _WEEKDAYS[local.weekday()],
        }
    )
    return values


def fill(text: str, values: Mapping[str, str]) -> str:
    """Substitute `values` into `text`; a variable without a value becomes empty."""
    out: list[str] = []
    position = 0
    for token in _tokens(text):
        out.append(text[position : token.start])
        if token.kind == "var":
            if token.value not in values:
                logger.warning("template variable {%s} has no value; left empty", token.value)
            out.append(values.get(token.value, ""))
        else:
            out.append(token.value)
        position = token.end
    out.append(text[position:])
    return "".join(out)


def render(
    text: str, *, recipient: Recipient, contact: Contact | None, when: datetime, tz: str
) -> str:
    """The text `recipient` gets for the occurrence at `when` (rendered in zone `tz`).

    Raises `MessageTooLong` when the filled-in text is over WhatsApp's limit.
    """
    rendered = fill(text, variables(recipient=recipient, contact=contact, when=when, tz=tz))
    check_length(rendered, who=recipient_name(recipient, contact))
    return rendered
