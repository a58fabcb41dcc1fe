import { join } from 'node:path';
import { SnapshotFile, readJson } from './json-file.js';

const MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * The idempotency keys already sent and what each send answered, kept in one JSON file under
 * the data directory so that a restarted service still refuses to send a key twice. Keys older
 * than 30 days are forgotten: wasched retries a delivery for hours, never for months.
 */
export class IdempotencyLedger {
  #entries = new Map();
  #file;
  #now;

  constructor(dataDir, { now = () => Date.now() } = {}) {
    this.path = join(dataDir, 'idempotency-ledger.json');
    this.#file = new SnapshotFile(this.path, () => ({
      version: 1,
      entries: Object.fromEntries(this.#entries),
    }));
    this.#now = now;
  }

  async load() {
    const stored = await readJson(this.path, { entries: {} });
    const oldest = this.#now() - MAX_AGE_MS;
    this.#entries = new Map(
      Object.entries(stored.entries ?? {}).filter(([, entry]) => entry.recorded_at >= oldest),
    );
  }

  /** The first answer given for `key`, or undefined when it was never sent. */
  get(key) {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    return { id: entry.id, to: entry.to, timestamp: entry.timestamp };
  }

  /** Records a successful send and resolves once the record is safely on disk. */
  async record(key, result) {
    this.#entries.set(key, {
      id: result.id,
      to: result.to,
      timestamp: result.timestamp,
      recorded_at: this.#now(),
    });
    await this.#file.save();
  }

  get size() {
    return this.#entries.size;
  }
}
