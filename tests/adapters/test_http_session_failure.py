"""A session.status event's `failure` reaches the notifier parsed, and /healthz names it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core.app import Core
from core.domain.session import SessionFailure
from tests.adapters.test_http import get, post
from tests.engine.conftest import RecordingNotifier, eventually
from tests.fakes.sidecar import FakeSidecar


async def test_the_failure_of_a_session_event_reaches_the_notifier(
    core: Core, notifier: RecordingNotifier, sidecar: FakeSidecar
) -> None:
    sidecar.events_url = f"{core.url}/whatsapp/events"
    await sidecar.set_state("FAILED", failure="whatsapp_web_unreachable")
    await sidecar.set_state("STARTING")  # the sidecar keeps the reason while it retries
    await sidecar.set_state("WORKING")  # and clears it once it works

    await eventually(lambda: len(notifier.failures) == 3, what="three session events")
    unreachable = notifier.failures[0]
    assert unreachable is not None and unreachable.code == "whatsapp_web_unreachable"
    assert unreachable.message == "net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/"
    assert unreachable.since is not None and unreachable.since.tzinfo is UTC
    assert notifier.failures[1:] == [unreachable, None]
    assert [state for state, _ in notifier.sessions] == ["FAILED", "STARTING", "WORKING"]


async def test_a_malformed_failure_is_left_out_not_refused(
    core: Core, notifier: RecordingNotifier
) -> None:
    for failure in ("broken", {"message": "no code"}, None):
        payload = {"state": "FAILED", "me": None, "failure": failure}
        body = json.dumps({"event": "session.status", "payload": payload})
        assert (await post(core, body))[0] == 200
    await eventually(lambda: len(notifier.failures) == 3, what="three session events")
    assert notifier.failures == [None, None, None]


async def test_a_failure_from_the_sidecar_is_parsed_with_its_time(
    core: Core, notifier: RecordingNotifier
) -> None:
    body = (
        '{"event": "session.status", "payload": {"state": "STARTING", "me": null, "failure":'
        ' {"code": "never_ready", "message": "never became ready",'
        ' "since": "2026-11-28T09:59:00.000Z"}}}'
    )
    assert (await post(core, body))[0] == 200
    await eventually(lambda: notifier.failures, what="the session event")
    since = datetime(2026, 11, 28, 9, 59, tzinfo=UTC)
    assert notifier.failures == [SessionFailure("never_ready", "never became ready", since)]


async def test_healthz_names_the_sidecars_failure(core: Core, sidecar: FakeSidecar) -> None:
    await sidecar.set_state("FAILED", failure="chromium_missing", announce=False)
    status, answer = await get(core, "/healthz")
    assert status == 503
    assert answer["sidecar"]["state"] == "FAILED"
    assert answer["sidecar"]["failure"] == "chromium_missing"
