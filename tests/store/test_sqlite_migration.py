"""A database from before schema version 2 opens, keeps every row, and takes what version 2
added (skipped deliveries, asking first, the asks table); version 1 is the schema
`tests/store/schema_v1.sql` keeps as it was."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from core.adapters.store.sqlite import SCHEMA_VERSION, SQLiteStore
from core.delivery import states
from core.domain.models import DeliveryFilter, DeliveryStatus, NewDelivery, NoAnswer, RunTrigger

V1_SCHEMA = Path(__file__).with_name("schema_v1.sql")
T0 = "2026-11-28T09:00:00.000+00:00"
T1 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
RULE = '{"kind":"cron","timezone":"UTC","cron":"0 9 * * *"}'
RECIPIENTS = '[{"kind":"phone","address":"+4915100000001"}]'


def v1_database(path: Path) -> None:
    """A version 1 file with one schedule, one run and one sent delivery."""
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA.read_text())
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO schedules (owner_id, recipients, text, rule, state, next_run_at,"
            " created_at, updated_at) VALUES (7, ?, 'Hi', ?, 'active', ?, ?, ?)",
            (RECIPIENTS, RULE, T0, T0, T0),
        )
        db.execute(
            "INSERT INTO runs (schedule_id, owner_id, scheduled_for, trigger, created_at,"
            " fanned_out) VALUES (1, 7, ?, 'schedule', ?, 1)",
            (T0, T0),
        )
        db.execute(
            "INSERT INTO deliveries (run_id, schedule_id, owner_id, recipient, text,"
            " idempotency_key, status, attempts, whatsapp_id, next_attempt_at, created_at,"
            " sent_at) VALUES (1, 1, 7, '+4915100000001', 'Hi', 'run1:x', 'sent', 1, 'w1',"
            " ?, ?, ?)",
            (T0, T0, T0),
        )
    db.close()


async def test_a_version_1_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    v1_database(path)
    store = await SQLiteStore.open(f"sqlite:///{path}")
    try:
        schedule = await store.get_schedule(1)
        assert schedule is not None and schedule.text == "Hi" and schedule.owner_id == 7
        # Version 2's schedule columns read as their defaults: asking first is off.
        assert (schedule.ask_first, schedule.ask_lead_s, schedule.on_no_answer) == (
            False,
            None,
            NoAnswer.send,
        )
        asking = await store.set_ask_first(1, ask_first=True, ask_lead_s=900)
        assert await store.insert_ask(asking, T1, now=T1) is not None
        [sent] = await store.list_deliveries(DeliveryFilter(run_id=1))
        assert (sent.status, sent.whatsapp_id, sent.skipped_at) == (
            DeliveryStatus.sent,
            "w1",
            None,
        )
        # What version 2 added works on the old file: a skipped occurrence.
        run = await store.insert_run(
            schedule_id=1,
            owner_id=7,
            scheduled_for=schedule.created_at.replace(day=29),
            trigger=RunTrigger.schedule,
            outcome="skipped",
        )
        new = NewDelivery(recipient="+4915100000001", text="Hi", idempotency_key="run2:x")
        [skipped] = await store.add_deliveries(run, [states.skipped(new)], now=run.created_at)
        assert skipped.status is DeliveryStatus.skipped and skipped.skipped_at is not None
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()
    # Opening it again (already migrated) changes nothing.
    again = await SQLiteStore.open(f"sqlite:///{path}")
    try:
        assert len(await again.list_deliveries(DeliveryFilter(schedule_id=1))) == 2
    finally:
        await again.close()
