"""Properties of recipient parsing and rendering over generated input."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from core.domain.models import Recipient, RecipientKind
from core.domain.recipients import parse_phone
from core.domain.render import fill, render, template_variables

WHEN = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
PHONE = Recipient(kind=RecipientKind.phone, address="+12025550143")

separators = st.sampled_from(["", " ", "-", ".", " - ", "  "])


@given(
    digits=st.text(alphabet="0123456789", min_size=8, max_size=15),
    seps=st.lists(separators, min_size=15, max_size=15),
    prefix=st.sampled_from(["+", "00", "+ "]),
)
def test_any_number_with_separators_normalizes_to_its_digits(
    digits: str, seps: list[str], prefix: str
) -> None:
    typed = prefix + "".join(d + s for d, s in zip(digits, seps, strict=False))
    assert parse_phone(typed) == "+" + digits


@given(st.text(max_size=200))
def test_escaped_text_renders_to_itself(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert template_variables(escaped) == set()
    assert render(escaped, recipient=PHONE, contact=None, when=WHEN, tz="UTC") == text


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=200))
def test_text_without_braces_is_sent_unchanged(text: str) -> None:
    assert fill(text, {"name": "x"}) == text
