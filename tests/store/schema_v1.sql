-- The SQLite schema of version 1 (wasched before schema version 2), to test the migration.
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS users (
    telegram_id INTEGER PRIMARY KEY,
    timezone TEXT,
    is_owner INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    whatsapp_id TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    text TEXT,
    template_id INTEGER,
    media TEXT,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    next_run_at TEXT,
    misfire_grace_s INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (state, next_run_at);
CREATE INDEX IF NOT EXISTS schedules_owner ON schedules (owner_id);

-- No foreign keys: runs and deliveries outlive their schedule, for the logs.
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    scheduled_for TEXT NOT NULL,
    trigger TEXT NOT NULL,
    created_at TEXT NOT NULL,
    fanned_out INTEGER NOT NULL DEFAULT 0,
    late_by_s REAL NOT NULL DEFAULT 0,
    outcome TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_occurrence
    ON runs (schedule_id, scheduled_for) WHERE trigger != 'manual';
CREATE INDEX IF NOT EXISTS runs_schedule ON runs (schedule_id);
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs (id) WHERE fanned_out = 0;

CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    schedule_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    recipient_name TEXT,
    text TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    error_code TEXT,
    whatsapp_id TEXT,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    queued_at TEXT,
    sending_at TEXT,
    sent_at TEXT,
    delivered_at TEXT,
    read_at TEXT,
    failed_at TEXT,
    missed_at TEXT,
    held_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_key ON deliveries (idempotency_key);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (status, lease_until);
CREATE INDEX IF NOT EXISTS deliveries_whatsapp
    ON deliveries (whatsapp_id) WHERE whatsapp_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_run ON deliveries (run_id);
CREATE INDEX IF NOT EXISTS deliveries_schedule ON deliveries (schedule_id);
CREATE INDEX IF NOT EXISTS deliveries_owner ON deliveries (owner_id);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at);
CREATE INDEX IF NOT EXISTS deliveries_unacked ON deliveries (status, sent_at);
