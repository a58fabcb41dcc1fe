"""Contract: what WhatsApp said about a number is remembered, one answer per number."""

from __future__ import annotations

from core.adapters.store import Store
from core.domain.models import CheckedNumber
from tests.store.factories import T0, minutes


async def test_number_checks_are_remembered_and_a_new_answer_replaces_the_old(
    store: Store,
) -> None:
    assert await store.number_checks(["+491511234567"]) == {}
    first = CheckedNumber(
        number="+491511234567", on_whatsapp=True, whatsapp_id="491511234567@c.us", checked_at=T0
    )
    gone = CheckedNumber(number="+491510000002", on_whatsapp=False, checked_at=T0)
    await store.save_number_checks([first, gone])
    await store.save_number_checks([])
    found = await store.number_checks(["+491511234567", "+491510000002", "+491519999999"])
    assert found == {first.number: first, gone.number: gone}

    later = gone.model_copy(
        update={
            "on_whatsapp": True,
            "whatsapp_id": "491510000002@c.us",
            "checked_at": T0 + minutes(5),
        }
    )
    await store.save_number_checks([later])
    assert await store.number_checks([gone.number, gone.number]) == {gone.number: later}
