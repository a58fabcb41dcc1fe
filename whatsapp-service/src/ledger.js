import { join } from 'node:path';
import { SnapshotFile, readJson } from './json-file.js';

const MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * The idempotency keys already sent and what each send answered, kept in one JSON file under
 * the data directory so that a restarted service still refuses to send a key twice. Beside
 * them, the keys whose send was started but has no answer yet ("attempts": the recipient and
 * when it started, never the text): a send that failed after WhatsApp took the message, or was
 * cut by a crash, leaves one, and the next try of that key looks in the chat before sending.
 * Keys older than 30 days are forgotten: wasched retries a delivery for hours, never for months.
 */
export class IdempotencyLedger {
  #entries = new Map();
  #attempts = new Map();
  #sentIds = new Set();
  #file;
  #now;

  constructor(dataDir, { now = () => Date.now() } = {}) {
    this.path = join(dataDir, 'idempotency-ledger.json');
    this.#file = new SnapshotFile(this.path, () => ({
      version: 1,
      entries: Object.fromEntries(this.#entries),
      attempts: Object.fromEntries(this.#attempts),
    }));
    this.#now = now;
  }

  async load() {
    const stored = await readJson(this.path, { entries: {} });
    const oldest = this.#now() - MAX_AGE_MS;
    this.#entries = new Map(
      Object.entries(stored.entries ?? {}).filter(([, entry]) => entry.recorded_at >= oldest),
    );
    this.#attempts = new Map(
      Object.entries(stored.attempts ?? {}).filter(
        ([key, attempt]) => attempt.started_at >= oldest && !this.#entries.has(key),
      ),
    );
    this.#sentIds = new Set([...this.#entries.values()].map((entry) => entry.id));
  }

  /** The first answer given for `key`, or undefined when it was never sent. */
  get(key) {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    return { id: entry.id, to: entry.to, timestamp: entry.timestamp };
  }

  /** Whether message `id` is already the answer of some key. */
  answers(id) {
    return this.#sentIds.has(id);
  }

  /** The unanswered send of `key` (`{to, startedAt}`, startedAt in ms), or undefined. */
  attempt(key) {
    const attempt = this.#attempts.get(key);
    if (!attempt) return undefined;
    return { to: attempt.to, startedAt: attempt.started_at };
  }

  /**
   * Notes that a send of `key` to `to` starts now, and resolves once that is on disk, so that
   * a crash during the send still leaves the mark. An earlier attempt keeps its start.
   */
  async recordAttempt(key, { to }) {
    if (!this.#attempts.has(key)) {
      this.#attempts.set(key, { to, started_at: this.#now() });
    }
    await this.#file.save();
    return this.attempt(key);
  }

  /** Records a successful send (in place of its attempt) once the record is safely on disk. */
  async record(key, result) {
    this.#attempts.delete(key);
    this.#entries.set(key, {
      id: result.id,
      to: result.to,
      timestamp: result.timestamp,
      recorded_at: this.#now(),
    });
    this.#sentIds.add(result.id);
    await this.#file.save();
  }

  get size() {
    return this.#entries.size;
  }
}
