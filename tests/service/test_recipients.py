"""Recipient parsing: numbers, saved contact names, group ids, several at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import InvalidRecipient
from core.models import Contact, RecipientKind
from core.recipients import label, parse_phone, parse_recipients, split_recipients

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class Contacts:
    """A contact book answering like `Store.find_contact` (case-insensitive exact name)."""

    def __init__(self, *contacts: Contact) -> None:
        self.contacts = contacts
        self.asked: list[str] = []

    async def find_contact(self, name: str) -> Contact | None:
        self.asked.append(name)
        for contact in self.contacts:
            if contact.name.lower() == name.lower():
                return contact
        return None


ANNA = Contact(id=1, name="Anna Maria", phone="+4915123456789", created_at=NOW)
BOB = Contact(id=2, name="Bob", phone="+12025550143", created_at=NOW)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+4915123456789", "+4915123456789"),
        ("+49 151 2345 6789", "+4915123456789"),
        ("+49-151-2345-6789", "+4915123456789"),
        ("+1 (202) 555-0143", "+12025550143"),
        ("0049 151 23456789", "+4915123456789"),
        ("(+44) 20 7946 0958", "+442079460958"),
        ("+49.151.234.56789", "+4915123456789"),
    ],
)
def test_phone_numbers_are_normalized_to_plus_digits(typed: str, expected: str) -> None:
    assert parse_phone(typed) == expected


def test_number_without_country_code_is_refused_with_an_example() -> None:
    with pytest.raises(InvalidRecipient, match=r"country code.*\+49 151 23456789"):
        parse_phone("0151 23456789")


@pytest.mark.parametrize("typed", ["+49 151", "+1234567", "+1234567890123456"])
def test_number_of_wrong_length_is_refused_with_the_digit_count(typed: str) -> None:
    with pytest.raises(InvalidRecipient, match=r"digits.*8 to 15"):
        parse_phone(typed)


def test_number_with_letters_is_refused() -> None:
    with pytest.raises(InvalidRecipient, match="not a phone number"):
        parse_phone("+49 151 CALLME")


def test_split_on_commas_semicolons_and_newlines() -> None:
    assert split_recipients("a, b;c\n d ,, \n") == ["a", "b", "c", "d"]


async def test_saved_names_match_case_insensitively() -> None:
    [anna] = await parse_recipients("anna maria", Contacts(ANNA, BOB))
    assert anna.kind is RecipientKind.contact
    assert anna.address == ANNA.phone
    assert anna.name == "Anna Maria"
    assert anna.contact_id == 1


async def test_group_ids_are_recipients() -> None:
    [one, two] = await parse_recipients(
        "120363041234567890@g.us, 491511234567-1609876543@G.US", Contacts()
    )
    assert one.kind is RecipientKind.group
    assert one.address == "120363041234567890@g.us"
    assert two.address == "491511234567-1609876543@g.us"


async def test_malformed_group_id_is_refused() -> None:
    with pytest.raises(InvalidRecipient, match="not a group id"):
        await parse_recipients("family@g.us", Contacts())


async def test_chat_ids_are_read_as_numbers() -> None:
    [one] = await parse_recipients("4915123456789@c.us", Contacts())
    assert one.kind is RecipientKind.phone
    assert one.address == "+4915123456789"


async def test_several_kinds_at_once_in_order() -> None:
    recipients = await parse_recipients(
        "+1 202 555 0199, BOB\n120363041234567890@g.us; Anna Maria", Contacts(ANNA, BOB)
    )
    assert [r.kind for r in recipients] == [
        RecipientKind.phone,
        RecipientKind.contact,
        RecipientKind.group,
        RecipientKind.contact,
    ]
    assert [r.address for r in recipients] == [
        "+12025550199",
        "+12025550143",
        "120363041234567890@g.us",
        "+4915123456789",
    ]


async def test_same_address_twice_is_kept_once() -> None:
    recipients = await parse_recipients(
        "Bob, +1 (202) 555-0143, bob, +12025550143", Contacts(ANNA, BOB)
    )
    assert len(recipients) == 1
    assert recipients[0].kind is RecipientKind.contact


async def test_unknown_names_are_all_named_with_a_hint_to_add_them() -> None:
    with pytest.raises(InvalidRecipient) as caught:
        await parse_recipients("Bob, Carol, Dave", Contacts(ANNA, BOB))
    message = str(caught.value)
    assert "'Carol'" in message
    assert "'Dave'" in message
    assert "/addcontact" in message


async def test_empty_input_is_refused() -> None:
    with pytest.raises(InvalidRecipient, match="at least one recipient"):
        await parse_recipients(" , \n ", Contacts())


async def test_a_bad_number_is_not_looked_up_as_a_name() -> None:
    contacts = Contacts(ANNA)
    with pytest.raises(InvalidRecipient, match="country code"):
        await parse_recipients("030 1234567", contacts)
    assert contacts.asked == []


def test_label_shows_name_and_address() -> None:
    from core.recipients import contact_recipient

    assert label(contact_recipient(BOB)) == "Bob (+12025550143)"
