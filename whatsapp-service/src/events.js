/**
 * Delivers events to wasched (`POST {event, payload, timestamp}` with X-Api-Key) one at a time
 * and in order, retrying the head of the queue with exponential backoff until it is accepted.
 * The queue lives in memory and is bounded: when full, the oldest event is dropped (acks and
 * states are superseded by later ones, and wasched also polls /health and /messages/:id).
 */
export class EventForwarder {
  #queue = [];
  #running = false;
  #closed = false;
  #wake = null;
  #abort = null;
  #idleWaiters = [];

  constructor({
    url,
    apiKey = null,
    log,
    maxQueue = 1000,
    retryMinMs = 500,
    retryMaxMs = 30000,
    requestTimeoutMs = 5000,
    fetch = globalThis.fetch,
    now = () => new Date(),
  }) {
    this.url = url;
    this.apiKey = apiKey;
    this.log = log;
    this.maxQueue = maxQueue;
    this.retryMinMs = retryMinMs;
    this.retryMaxMs = retryMaxMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.fetch = fetch;
    this.now = now;
    this.dropped = 0;
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
    if (!this.#running) this.#run();
  }

  get pending() {
    return this.#queue.length;
  }

  async #run() {
    this.#running = true;
    let attempt = 0;
    while (this.#queue.length > 0 && !this.#closed) {
      const head = this.#queue[0];
      const outcome = await this.#post(head);
      if (outcome === 'delivered' || outcome === 'rejected') {
        if (this.#queue[0] === head) this.#queue.shift();
        attempt = 0;
        continue;
      }
      if (this.#closed) break;
      attempt += 1;
      const delay = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** (attempt - 1));
      this.log.debug({ event: head.event, attempt, delay }, 'event not delivered; retrying later');
      await this.#sleep(delay);
    }
    this.#running = false;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** 'delivered', 'rejected' (a 4xx that no retry will fix, dropped) or 'retry'. */
  async #post(item) {
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
      return 'retry';
    } catch (err) {
      this.log.debug({ event: item.event, err: err.message }, 'event delivery failed');
      return 'retry';
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

  /** Resolves when the queue is empty (or at once if it is). */
  idle() {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Tries to deliver what is queued within `timeoutMs` (retrying without waiting out the
   * backoff), then stops for good. Returns how many events were left undelivered.
   */
  async close({ timeoutMs = 2000 } = {}) {
    if (this.#queue.length > 0) {
      const savedMin = this.retryMinMs;
      const savedMax = this.retryMaxMs;
      this.retryMinMs = Math.min(savedMin, 100);
      this.retryMaxMs = Math.min(savedMax, 200);
      this.#wake?.();
      let timer;
      await Promise.race([
        this.idle(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.#closed = true;
    this.#wake?.();
    this.#abort?.abort();
    await this.idle();
    const left = this.#queue.length;
    if (left > 0) this.log.warn({ left }, 'events not delivered before shutdown');
    this.#queue = [];
    return left;
  }
}
