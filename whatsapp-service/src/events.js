import { rm } from 'node:fs/promises';
import { readJson, writeJsonAtomic } from './json-file.js';

/** Where the events still queued at shutdown wait for the next start, in the data directory. */
export const PENDING_EVENTS_FILE = 'events-pending.json';

/**
 * Delivers events to wasched (`POST {event, payload, timestamp}` with X-Api-Key) one at a time
 * and in order, retrying the head of the queue with exponential backoff until it is accepted.
 * The queue is bounded: when full, the oldest event is dropped (acks and states are superseded
 * by later ones, and wasched reads what it missed: the state from /health, the acks from
 * POST /messages/acks after it starts or after a gap in events). What is still queued at
 * close is written to `pendingPath` and sent first after the next start(). After start(),
 * from the moment wasched stops taking events until the queue drains, the queue is also
 * mirrored to that file as it changes (one write at a time), so a SIGKILL loses none of it.
 */
export class EventForwarder {
  #queue = [];
  #running = false;
  // close() began: one try per event, none once wasched is known to be down.
  #closing = false;
  // No more posts; push() drops.
  #closed = false;
  #outage = null;
  #loaded = false;
  #wake = null;
  #lastAttemptAt = 0;
  #abort = null;
  #idleWaiters = [];
  // The pending file mirrors the queue (set from an outage until the queue drains).
  #mirroring = false;
  #mirror = null;
  #mirrorAgain = false;

  constructor({
    url,
    apiKey = null,
    log,
    pendingPath = null,
    maxQueue = 1000,
    retryMinMs = 500,
    retryMaxMs = 30000,
    requestTimeoutMs = 5000,
    retrySoonMinMs = retryMinMs,
    fetch = globalThis.fetch,
    now = () => new Date(),
  }) {
    this.url = url;
    this.apiKey = apiKey;
    this.log = log;
    this.pendingPath = pendingPath;
    this.maxQueue = maxQueue;
    this.retryMinMs = retryMinMs;
    this.retryMaxMs = retryMaxMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.retrySoonMinMs = retrySoonMinMs;
    this.fetch = fetch;
    this.now = now;
    this.dropped = 0;
  }

  /** Puts the events kept by the last run's close() ahead of the queue and sends them. */
  async start() {
    // The file stays until the queue drains (mirrored), so a SIGKILL meanwhile loses nothing.
    const kept = await this.#takePending({ remove: false });
    if (kept.length === 0) {
      if (this.pendingPath) await rm(this.pendingPath, { force: true });
      if (this.#outage) this.#mirrorFrom();
      return;
    }
    this.#queue.unshift(...kept);
    const over = this.#queue.length - this.maxQueue;
    if (over > 0) {
      this.#queue.splice(0, over);
      this.dropped += over;
      this.log.warn({ dropped: over }, 'event queue full; oldest kept events dropped');
    }
    this.log.info({ events: kept.length }, 'events kept from the last run; sending them first');
    this.#mirrorFrom();
    if (!this.#running && !this.#closing) this.#run();
  }

  push(event, payload) {
    if (this.#closed) {
      this.log.warn({ event }, 'event after shutdown dropped');
      return;
    }
    this.#queue.push({ event, payload, timestamp: this.now().toISOString() });
    if (this.#queue.length > this.maxQueue) {
      const lost = this.#queue.shift();
      this.dropped += 1;
      this.log.warn(
        { event: lost.event, dropped: this.dropped },
        'event queue full; oldest event dropped',
      );
    }
    this.#mirrorQueue();
    if (!this.#running) this.#run();
  }

  get pending() {
    return this.#queue.length;
  }

  async #run() {
    this.#running = true;
    let attempt = 0;
    for (;;) {
      let givenUp = false;
      while (this.#queue.length > 0 && !this.#closed) {
        const head = this.#queue[0];
        const outcome = await this.#post(head);
        if (outcome === 'delivered' || outcome === 'rejected') {
          if (this.#queue[0] === head) this.#queue.shift();
          attempt = 0;
          this.#outageEnded();
          this.#mirrorQueue();
          continue;
        }
        this.#outageStarted(head, outcome);
        if (this.#closing) {
          givenUp = true; // no retries at close: what is left goes to the pending file
          break;
        }
        attempt += 1;
        const delay = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** (attempt - 1));
        this.log.debug(
          { event: head.event, attempt, delay },
          'event not delivered; retrying later',
        );
        await this.#sleep(delay);
      }
      await this.#mirror;
      // An event pushed while the file was written found this loop still running: send it too.
      if (givenUp || this.#closed || this.#queue.length === 0) break;
    }
    this.#running = false;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** Start mirroring the queue to the pending file (after start() only: before it, the file
   * may hold what an earlier run kept and this one has not read). */
  #mirrorFrom() {
    if (!this.pendingPath || !this.#loaded || this.#closing) return;
    this.#mirroring = true;
    this.#mirrorQueue();
  }

  /** Write the queue to the pending file (or remove the file once the queue is empty). */
  #mirrorQueue() {
    if (!this.#mirroring || this.#closing) return;
    if (this.#mirror) {
      this.#mirrorAgain = true;
      return;
    }
    this.#mirror = this.#writeMirror().finally(() => {
      this.#mirror = null;
    });
  }

  async #writeMirror() {
    do {
      this.#mirrorAgain = false;
      const events = this.#queue.slice();
      try {
        if (events.length > 0) {
          await writeJsonAtomic(this.pendingPath, { version: 1, events });
        } else {
          await rm(this.pendingPath, { force: true });
          this.#mirroring = false;
        }
      } catch (err) {
        this.log.error(
          { err: err.message },
          'events waiting for wasched could not be kept on disk',
        );
      }
    } while (this.#mirrorAgain && this.#mirroring && !this.#closing);
  }

  // One warn when wasched stops taking events and one info when they flow again, however
  // many retries lie between (the retries log at debug).
  #outageStarted(head, outcome) {
    if (this.#outage) {
      this.#outage.attempts += 1;
      return;
    }
    this.#outage = { attempts: 1 };
    this.#mirrorFrom();
    this.log.warn(
      { event: head.event, reason: outcome.reason, pending: this.#queue.length },
      'wasched is not taking events; they wait in the queue and are retried',
    );
  }

  #outageEnded() {
    if (!this.#outage) return;
    this.log.info(
      { failedAttempts: this.#outage.attempts, pending: this.#queue.length },
      'wasched takes events again',
    );
    this.#outage = null;
  }

  /** 'delivered', 'rejected' (a 4xx that no retry will fix, dropped) or {reason} to retry. */
  async #post(item) {
    this.#lastAttemptAt = Date.now();
    const headers = { 'content-type': 'application/json' };
    if (this.apiKey) headers['x-api-key'] = this.apiKey;
    this.#abort = new AbortController();
    const timer = setTimeout(() => this.#abort.abort(), this.requestTimeoutMs);
    try {
      const response = await this.fetch(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(item),
        signal: this.#abort.signal,
      });
      await response.arrayBuffer().catch(() => {});
      if (response.ok) return 'delivered';
      if (
        response.status >= 400 &&
        response.status < 500 &&
        ![408, 425, 429].includes(response.status)
      ) {
        this.log.warn(
          { event: item.event, status: response.status },
          'event refused by wasched; dropped',
        );
        return 'rejected';
      }
      this.log.debug({ event: item.event, status: response.status }, 'event delivery failed');
      return { reason: `HTTP ${response.status}` };
    } catch (err) {
      const reason = err.cause?.code ?? err.message;
      this.log.debug({ event: item.event, reason }, 'event delivery failed');
      return { reason };
    } finally {
      clearTimeout(timer);
      this.#abort = null;
    }
  }

  #sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => {
      this.#wake = null;
    });
  }

  /**
   * wasched was just heard from (it called this service): if events wait out a backoff, try
   * again now instead of up to retryMaxMs later. At most once per retrySoonMinMs (by default
   * retryMinMs), so a busy wasched whose events route fails gets no more than that rate.
   */
  retrySoon() {
    if (!this.#outage || !this.#wake || this.#closing) return;
    if (Date.now() - this.#lastAttemptAt < this.retrySoonMinMs) return;
    this.#wake();
  }

  /** Resolves when the queue is empty (or at once if it is). */
  idle() {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops for good. While wasched takes events, what is queued gets one try each within
   * `timeoutMs`; once one fails (or wasched was already failing) nothing more is tried, and
   * the rest is written to the pending file for the next start. Returns how many were left.
   */
  async close({ timeoutMs = 2000 } = {}) {
    this.#closing = true;
    if (this.#outage) this.#closed = true;
    this.#wake?.();
    let timer;
    await Promise.race([
      this.idle(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.#closed = true;
    this.#wake?.();
    this.#abort?.abort();
    await this.idle();
    await this.#mirror;
    const left = this.#queue.length;
    if (left > 0) await this.#keepPending();
    else if (this.#loaded && this.#mirroring) await rm(this.pendingPath, { force: true });
    this.#queue = [];
    return left;
  }

  async #keepPending() {
    const left = this.#queue.length;
    if (!this.pendingPath) {
      this.log.warn({ left }, 'events not delivered before shutdown; lost');
      return;
    }
    try {
      // Never overwrite what an earlier run kept and this one has not read yet.
      const events = [...(await this.#takePending()), ...this.#queue].slice(-this.maxQueue);
      await writeJsonAtomic(this.pendingPath, { version: 1, events });
      this.log.warn(
        { left: events.length, path: this.pendingPath },
        'events not delivered before shutdown; kept for the next start',
      );
    } catch (err) {
      this.log.error({ err, left }, 'events not delivered before shutdown could not be kept');
    }
  }

  /** The events in the pending file (once per forwarder), removing the file. */
  async #takePending({ remove = true } = {}) {
    if (!this.pendingPath || this.#loaded) return [];
    this.#loaded = true;
    let stored;
    try {
      stored = await readJson(this.pendingPath, { events: [] });
    } catch (err) {
      this.log.warn({ err: err.message, path: this.pendingPath }, 'pending events unreadable');
      stored = { events: [] };
    }
    if (remove) await rm(this.pendingPath, { force: true });
    const events = Array.isArray(stored?.events) ? stored.events : [];
    return events.filter((item) => typeof item?.event === 'string' && 'payload' in item);
  }
}
