import { ServiceError } from './errors.js';

/**
 * Sends through the engine at most once per idempotency key. A key already sent answers its
 * first result as a duplicate; a key being sent right now makes the second caller share the
 * first one's outcome; a failed send records nothing, so a retry may send. At shutdown it stops
 * taking sends and lets the ones in flight finish.
 */
export class Sender {
  #engine;
  #ledger;
  #log;
  #inFlight = new Map();
  #accepting = true;

  constructor({ engine, ledger, log }) {
    this.#engine = engine;
    this.#ledger = ledger;
    this.#log = log;
  }

  /** Resolves to `{id, to, timestamp, duplicate}` or rejects with a ServiceError. */
  async send({ to, text, media, idempotencyKey }) {
    const recorded = this.#ledger.get(idempotencyKey);
    if (recorded) {
      this.#log.info(
        { idempotencyKey, id: recorded.id },
        'duplicate send answered from the ledger',
      );
      return { ...recorded, duplicate: true };
    }
    const running = this.#inFlight.get(idempotencyKey);
    if (running) {
      this.#log.info({ idempotencyKey }, 'same key already being sent; sharing its outcome');
      const result = await running;
      return { ...result, duplicate: true };
    }
    if (!this.#accepting) throw new ServiceError('shutting_down', 'the service is shutting down');

    const sending = this.#sendOnce({ to, text, media, idempotencyKey });
    this.#inFlight.set(idempotencyKey, sending);
    try {
      return { ...(await sending), duplicate: false };
    } finally {
      this.#inFlight.delete(idempotencyKey);
    }
  }

  async #sendOnce({ to, text, media, idempotencyKey }) {
    const result = await this.#engine.send({ to, text, media, idempotencyKey });
    try {
      await this.#ledger.record(idempotencyKey, result);
    } catch (err) {
      // The message is out; answering an error would make the caller send it again.
      this.#log.error({ err, idempotencyKey }, 'could not save the idempotency ledger');
    }
    this.#log.info({ idempotencyKey, id: result.id, to: result.to }, 'message sent');
    return result;
  }

  get accepting() {
    return this.#accepting;
  }

  /** Stops taking new sends and resolves once every send in flight has settled. */
  async drain() {
    this.#accepting = false;
    await Promise.allSettled([...this.#inFlight.values()]);
  }
}
