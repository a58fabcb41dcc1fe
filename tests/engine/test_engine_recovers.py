"""A pass that fails (a locked database, a failover) must not leave the engine without a
wake-up: the APScheduler job is spent once it fired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain.clock import SystemClock
from core.domain.errors import StoreError
from core.domain.models import Recipient, RecipientKind, Rule, RuleKind
from tests.engine.conftest import PHONE, CoreFactory, eventually
from tests.fakes.sidecar import FakeSidecar


async def test_a_failed_pass_re_arms_and_the_occurrence_still_goes_out(
    start_core: CoreFactory, sidecar: FakeSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = await start_core(clock_=SystemClock())
    core.engine.retry_s = 0.3
    real_due = core.store.due_schedules
    failures: list[datetime] = []

    async def due_once_failing(now: datetime, **kwargs: Any) -> Any:
        if not failures:
            failures.append(now)
            raise StoreError("database is locked")
        return await real_due(now, **kwargs)

    monkeypatch.setattr(core.store, "due_schedules", due_once_failing)
    at = datetime.now(UTC) + timedelta(seconds=0.5)
    await core.store.add_schedule(
        owner_id=7,
        recipients=[Recipient(kind=RecipientKind.phone, address=PHONE)],
        rule=Rule(kind=RuleKind.once, timezone="UTC", at=at),
        next_run_at=at,
        text="despite the hiccup",
    )
    core.engine.schedules_changed()

    await eventually(lambda: sidecar.keys() != [], within_s=15, what="the send after a retry")
    assert failures, "the store never failed: the test did not test anything"
    assert [r.text for r in sidecar.outbox] == ["despite the hiccup"]
