"""Template rendering: every variable, escapes, unknown variables, the text cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.domain.errors import InvalidInput, InvalidTemplate, MessageTooLong
from core.domain.models import WHATSAPP_TEXT_LIMIT, Contact, Recipient, RecipientKind
from core.domain.render import (
    BUILTIN_VARIABLES,
    available_variables,
    check_braces,
    check_message,
    check_template,
    render,
    template_variables,
)

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
# 2026-12-24 17:00 UTC is Thursday 18:00 in Berlin and 12:00 in New York.
WHEN = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)

ANNA = Contact(
    id=1,
    name="Anna Maria Schmidt",
    phone="+4915123456789",
    fields={"company": "ACME", "city": "Köln"},
    created_at=NOW,
)
ANNA_R = Recipient(kind=RecipientKind.contact, address=ANNA.phone, name=ANNA.name, contact_id=1)
PHONE_R = Recipient(kind=RecipientKind.phone, address="+12025550143")
GROUP_R = Recipient(kind=RecipientKind.group, address="120363041234567890@g.us", name="Family")


def test_every_builtin_variable_renders_in_the_schedule_zone() -> None:
    text = "{name}|{first_name}|{date}|{time}|{weekday}"
    assert (
        render(text, recipient=ANNA_R, contact=ANNA, when=WHEN, tz="Europe/Berlin")
        == "Anna Maria Schmidt|Anna|2026-12-24|18:00|Thursday"
    )
    assert (
        render(
            "{date} {time} {weekday}",
            recipient=ANNA_R,
            contact=ANNA,
            when=WHEN,
            tz="Pacific/Kiritimati",
        )
        == "2026-12-25 07:00 Friday"
    )


def test_contact_fields_render() -> None:
    text = "Hi {first_name} from {company} in {city}"
    assert (
        render(text, recipient=ANNA_R, contact=ANNA, when=WHEN, tz="UTC")
        == "Hi Anna from ACME in Köln"
    )


def test_name_of_a_phone_recipient_falls_back_to_the_number() -> None:
    assert (
        render("Hi {name} / {first_name}", recipient=PHONE_R, contact=None, when=WHEN, tz="UTC")
        == "Hi +12025550143 / +12025550143"
    )


def test_name_of_a_group_recipient_is_its_known_name() -> None:
    assert render("Hi {name}", recipient=GROUP_R, contact=None, when=WHEN, tz="UTC") == "Hi Family"


def test_double_braces_are_literal_and_lone_braces_are_kept() -> None:
    text = "{{name}} is {name} :-{ }"
    assert (
        render(text, recipient=GROUP_R, contact=None, when=WHEN, tz="UTC")
        == "{name} is Family :-{ }"
    )


def test_template_variables_lists_names_only_not_escapes() -> None:
    assert template_variables("{{x}} {name} { date } {company} {bad name}") == {
        "name",
        "date",
        "company",
    }


def test_unknown_variable_is_refused_naming_it_and_the_allowed_ones() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        check_template("Hi {nmae} from {company}", BUILTIN_VARIABLES)
    message = str(caught.value)
    assert "{nmae}" in message
    assert "{company}" in message
    assert "{first_name}" in message
    assert "{{" in message


def test_known_variables_pass() -> None:
    check_template("{name} {first_name} {date} {time} {weekday} {{x}}", BUILTIN_VARIABLES)


def test_lone_brace_in_a_saved_template_is_refused() -> None:
    with pytest.raises(InvalidTemplate, match=r"lone \{"):
        check_braces("Hi {name")
    with pytest.raises(InvalidTemplate, match=r"lone \}"):
        check_braces("Hi name}")
    check_braces("Hi {name}, {{literal}}")


def test_available_variables_are_fields_every_recipient_has() -> None:
    other = ANNA.model_copy(update={"id": 2, "fields": {"company": "Initech", "team": "x"}})
    assert available_variables([ANNA, other]) == BUILTIN_VARIABLES | {"company"}
    assert available_variables([ANNA, None]) == BUILTIN_VARIABLES
    assert available_variables([]) == BUILTIN_VARIABLES


def test_text_over_the_whatsapp_limit_is_refused_with_the_count() -> None:
    with pytest.raises(MessageTooLong, match=f"{WHATSAPP_TEXT_LIMIT + 1} characters"):
        check_message("x" * (WHATSAPP_TEXT_LIMIT + 1), has_media=False)
    check_message("x" * WHATSAPP_TEXT_LIMIT, has_media=False)


def test_rendered_text_over_the_limit_is_refused() -> None:
    text = "x" * (WHATSAPP_TEXT_LIMIT - 3) + "{name}"
    with pytest.raises(MessageTooLong, match="for Anna Maria Schmidt"):
        render(text, recipient=ANNA_R, contact=ANNA, when=WHEN, tz="UTC")


def test_empty_text_is_refused_unless_there_is_media() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        check_message("  ", has_media=False)
    with pytest.raises(InvalidInput, match="empty"):
        check_message(None, has_media=False)
    check_message(None, has_media=True)
