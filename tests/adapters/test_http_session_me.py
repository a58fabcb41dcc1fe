"""A session.status event whose `me` has null fields (no push name) reaches the owner clean."""

from __future__ import annotations

from core.app import Core
from tests.adapters.test_http import post
from tests.engine.conftest import RecordingNotifier, eventually


async def test_null_fields_of_me_are_left_out_not_shown_as_none(
    core: Core, notifier: RecordingNotifier
) -> None:
    body = (
        '{"event": "session.status", "payload": {"state": "WORKING",'
        ' "me": {"id": "4915112345678@c.us", "name": null}}}'
    )
    status, _ = await post(core, body)
    assert status == 200
    await eventually(
        lambda: ("WORKING", {"id": "4915112345678@c.us"}) in notifier.sessions, what="session"
    )
