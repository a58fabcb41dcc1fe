"""Saved contacts: recipients by name, with free fields for templates."""

from __future__ import annotations

from collections.abc import Mapping

from core.adapters.store import Store
from core.delivery.numbers import NumberGuard
from core.domain.errors import AlreadyExists, InvalidInput, NotFound
from core.domain.models import Contact, Recipient, RecipientKind
from core.domain.recipients import PHONE_EXAMPLE, looks_like_phone, parse_phone
from core.domain.render import BUILTIN_VARIABLES, is_variable_name
from core.services._shared import braced, clean_name, refuse_without_whatsapp


class Contacts:
    def __init__(self, store: Store, numbers: NumberGuard | None = None) -> None:
        self._store = store
        # Checks a contact's number with WhatsApp before it is saved.
        self._numbers = numbers

    async def add_contact(
        self, name: str, phone: str, fields: Mapping[str, str] | None = None
    ) -> Contact:
        name = clean_name(name, what="contact")
        if looks_like_phone(name) or name.lower().endswith(("@g.us", "@c.us")):
            raise InvalidInput(
                f"{name!r} looks like a number, not a name: /addcontact Anna {PHONE_EXAMPLE}."
            )
        number = parse_phone(phone)
        clean_fields: dict[str, str] = {}
        for key, value in (fields or {}).items():
            if not is_variable_name(key) or key in BUILTIN_VARIABLES:
                raise InvalidInput(
                    f"{key!r} cannot be a contact field: use letters, digits and _ "
                    f"(for example company), and none of {braced(BUILTIN_VARIABLES)}."
                )
            clean_fields[key] = value
        if await self._store.find_contact(name) is None:  # else refused as a duplicate below
            await refuse_without_whatsapp(
                self._numbers,
                [Recipient(kind=RecipientKind.contact, address=number, name=name)],
                fix=f"Check the number and save it again: /addcontact {name} {PHONE_EXAMPLE}.",
            )
        try:
            return await self._store.add_contact(name, number, fields=clean_fields)
        except AlreadyExists:
            raise AlreadyExists(
                f"A contact named {name!r} exists already: pick another name, "
                f"or remove it first with /delcontact {name}."
            ) from None

    async def list_contacts(self) -> list[Contact]:
        return await self._store.list_contacts()

    async def delete_contact(self, name: str) -> Contact:
        """Delete a contact; schedules keep its number and still send to it."""
        contact = await self._store.find_contact(name.strip())
        if contact is None:
            raise NotFound(f"There is no contact named {name.strip()!r}: see /contacts.")
        await self._store.delete_contact(contact.id)
        return contact

    async def unchecked(self, contact: Contact) -> bool:
        """Whether WhatsApp could not be asked about the contact's number yet (it was not
        linked or not answering): it is checked before the first send to it."""
        return self._numbers is not None and bool(await self._numbers.unchecked([contact.phone]))
