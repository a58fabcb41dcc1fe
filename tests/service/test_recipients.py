"""Recipient parsing: numbers, saved contact names, group ids, several at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.adapters.whatsapp import WhatsAppGroup
from core.domain.errors import (
    InvalidRecipient,
    WhatsAppError,
    WhatsAppNotReady,
    WhatsAppUnavailable,
)
from core.domain.models import Contact, Recipient, RecipientKind
from core.domain.recipients import (
    AmbiguousRecipient,
    Choice,
    label,
    parse_phone,
    parse_recipients,
    resolve_recipients,
    split_recipients,
)

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class Contacts:
    """A contact book answering like `Store.list_contacts`; counts how often it was read."""

    def __init__(self, *contacts: Contact) -> None:
        self.contacts = contacts
        self.reads = 0

    async def list_contacts(self) -> list[Contact]:
        self.reads += 1
        return list(self.contacts)


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
    assert contacts.reads == 0


def test_label_shows_name_and_address() -> None:
    from core.domain.recipients import contact_recipient

    assert label(contact_recipient(BOB)) == "Bob (+12025550143)"


# --- names: exact, then a unique start, else a choice; WhatsApp groups by name ---------------


class Groups:
    """The linked account's groups, answering like `WhatsAppClient.groups`; `error` makes the
    read fail the way the client does (not linked, sidecar down). Counts reads."""

    def __init__(self, *groups: tuple[str, str], error: WhatsAppError | None = None) -> None:
        self.groups = [WhatsAppGroup(id=i, name=n, participants=()) for i, n in groups]
        self.error = error
        self.reads = 0

    async def __call__(self) -> list[WhatsAppGroup]:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.groups


ANNA_SCHMIDT = Contact(id=3, name="Anna Schmidt", phone="+4915111111111", created_at=NOW)
ANDREAS = Contact(id=4, name="Andreas", phone="+4915122222222", created_at=NOW)
BEN = Contact(id=5, name="Ben Meyer", phone="+4915133333333", created_at=NOW)
FAMILY = ("120363041234567890@g.us", "Family")
FAMILY_FRIENDS = ("120363041234567891@g.us", "Family friends")


async def test_a_first_name_or_the_start_of_a_name_finds_the_one_contact() -> None:
    book = Contacts(ANNA_SCHMIDT, BEN, BOB)
    anna, ben = await parse_recipients("Anna, be", book, Groups())
    assert (anna.name, anna.address, anna.contact_id) == ("Anna Schmidt", ANNA_SCHMIDT.phone, 3)
    assert (ben.name, ben.kind) == ("Ben Meyer", RecipientKind.contact)


async def test_an_exact_name_wins_over_names_it_starts() -> None:
    ann = Contact(id=6, name="Ann", phone="+4915166666666", created_at=NOW)
    groups = Groups(("1203630@g.us", "Ann's club"))
    [found] = await parse_recipients("ANN", Contacts(ANNA_SCHMIDT, ann), groups)
    assert found.contact_id == 6
    assert groups.reads == 0  # a contact's exact name needs no look at WhatsApp


async def test_a_name_several_match_is_a_choice_of_all_of_them() -> None:
    resolved = await resolve_recipients(
        "+4915123456789, an, Ben", Contacts(ANNA_SCHMIDT, ANDREAS, BEN), Groups()
    )
    assert [type(r) for r in resolved] == [Recipient, Choice, Recipient]
    choice = resolved[1]
    assert isinstance(choice, Choice)
    assert choice.typed == "an"
    assert [o.name for o in choice.options] == ["Anna Schmidt", "Andreas"]


async def test_a_name_several_match_is_refused_naming_them_where_no_one_can_ask() -> None:
    with pytest.raises(AmbiguousRecipient) as caught:
        await parse_recipients("an", Contacts(ANNA_SCHMIDT, ANDREAS), Groups())
    assert "Anna Schmidt (+4915111111111)" in str(caught.value)
    assert "Andreas (+4915122222222)" in str(caught.value)
    assert "full name" in str(caught.value)


async def test_too_many_matches_ask_for_more_of_the_name() -> None:
    book = Contacts(
        *(
            Contact(id=i, name=f"Al {i}", phone=f"+49151000000{i:02}", created_at=NOW)
            for i in range(10, 20)
        )
    )
    with pytest.raises(InvalidRecipient, match=r"matches 10 .* type more of the name"):
        await resolve_recipients("al", book, Groups())


async def test_a_group_is_found_by_its_name_and_keeps_it() -> None:
    groups = Groups(FAMILY, FAMILY_FRIENDS)
    [family] = await parse_recipients("family", Contacts(BOB), groups)
    assert family.kind is RecipientKind.group
    assert (family.address, family.name) == FAMILY
    assert label(family) == "Family (group)"
    [friends] = await parse_recipients("family fr", Contacts(BOB), groups)
    assert friends.name == "Family friends"


async def test_contacts_and_groups_starting_alike_are_one_choice() -> None:
    [choice] = await resolve_recipients(
        "fam",
        Contacts(Contact(id=7, name="Fama", phone="+4915177777777", created_at=NOW)),
        Groups(FAMILY),
    )
    assert isinstance(choice, Choice)
    assert [(o.kind, o.name) for o in choice.options] == [
        (RecipientKind.contact, "Fama"),
        (RecipientKind.group, "Family"),
    ]


async def test_a_group_id_typed_is_named_after_the_group() -> None:
    [family] = await parse_recipients("120363041234567890@g.us", Contacts(), Groups(FAMILY))
    assert family.name == "Family"


async def test_a_name_found_nowhere_says_where_names_are_listed() -> None:
    with pytest.raises(InvalidRecipient) as caught:
        await parse_recipients("Carol", Contacts(BOB), Groups(FAMILY))
    message = str(caught.value)
    assert "'Carol'" in message
    assert "/contacts" in message and "/groups" in message
    assert "/addcontact" in message


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (
            WhatsAppNotReady("not linked"),
            "WhatsApp is not linked or not connected. Link it with /link",
        ),
        (WhatsAppUnavailable("down"), "the WhatsApp service does not answer (/status says why)"),
    ],
)
async def test_a_group_name_while_groups_cannot_be_read_says_why_and_what_to_do(
    error: WhatsAppError, why: str
) -> None:
    groups = Groups(FAMILY, error=error)
    with pytest.raises(InvalidRecipient) as caught:
        await parse_recipients("Family", Contacts(BOB), groups)
    message = str(caught.value)
    assert "'Family'" in message and "groups cannot be searched" in message
    assert why in message
    assert groups.reads == 1
