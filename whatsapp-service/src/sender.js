import { ServiceError } from './errors.js';
import { logRef } from './log-ref.js';

/**
 * Sends through the engine at most once per idempotency key. A key already sent answers its
 * first result as a duplicate; a key being sent right now makes the second caller share the
 * first one's outcome. Before each send the key's attempt is written to the ledger: whatsapp-web.js
 * can fail after WhatsApp took the message, and the service can die before the answer is
 * recorded, so a key with an attempt but no answer is first looked for in the chat, and sent
 * only when it is not there. At shutdown it stops taking sends and lets the ones in flight
 * finish, for a bounded time.
 */
export class Sender {
  #engine;
  #ledger;
  #log;
  #inFlight = new Map();
  #accepting = true;
  #draining = null;
  #giveUp;
  // Rejects the callers still waiting when shutdown stops waiting for their sends.
  #givenUp = new Promise((resolve, reject) => {
    this.#giveUp = reject;
  });

  constructor({ engine, ledger, log }) {
    this.#engine = engine;
    this.#ledger = ledger;
    this.#log = log;
    this.#givenUp.catch(() => {});
  }

  /** Resolves to `{id, to, timestamp, duplicate}` or rejects with a ServiceError. */
  async send({ to, text, media, idempotencyKey }) {
    const recorded = this.#ledger.get(idempotencyKey);
    if (recorded) {
      this.#log.info(
        { key: logRef(idempotencyKey), message: logRef(recorded.id) },
        'duplicate send answered from the ledger',
      );
      return { ...recorded, duplicate: true };
    }
    const running = this.#inFlight.get(idempotencyKey);
    if (running) {
      this.#log.info(
        { key: logRef(idempotencyKey) },
        'same key already being sent; sharing its outcome',
      );
      const result = await Promise.race([running, this.#givenUp]);
      return { ...result, duplicate: true };
    }
    if (!this.#accepting) throw new ServiceError('shutting_down', 'the service is shutting down');

    const sending = this.#sendOnce({ to, text, media, idempotencyKey });
    this.#inFlight.set(idempotencyKey, sending);
    try {
      return await Promise.race([sending, this.#givenUp]);
    } finally {
      this.#inFlight.delete(idempotencyKey);
    }
  }

  async #sendOnce({ to, text, media, idempotencyKey }) {
    // Refused before anything is written: deliveries held while not linked retry often.
    this.#engine.requireWorking('send');
    const request = { to, text, media, idempotencyKey };
    const earlier = this.#ledger.attempt(idempotencyKey);
    if (earlier) {
      const found = await this.#findEarlier(request, earlier);
      if (found) {
        await this.#record(idempotencyKey, found, 'an earlier attempt was found in the chat');
        return { ...found, duplicate: true };
      }
    }

    let attempt;
    try {
      attempt = await this.#ledger.recordAttempt(idempotencyKey, { to });
    } catch (err) {
      this.#log.error(
        { err, key: logRef(idempotencyKey) },
        'could not save the idempotency ledger',
      );
      throw new ServiceError(
        'send_failed',
        'could not save the idempotency ledger before sending; nothing was sent',
      );
    }

    let result;
    try {
      result = await this.#engine.send(request);
    } catch (err) {
      if (err?.code !== 'send_failed') throw err;
      // whatsapp-web.js can throw after the message was added to the chat, which WhatsApp Web
      // then sends by itself: look once before answering an error the caller would retry.
      const found = await this.#findQuietly(request, attempt);
      if (!found) throw err;
      this.#log.warn(
        { key: logRef(idempotencyKey), message: logRef(found.id), reason: err.message },
        'the send failed but the message is in the chat',
      );
      result = found;
    }
    await this.#record(idempotencyKey, result, 'message sent');
    return { ...result, duplicate: false };
  }

  /** The message of an earlier, unanswered attempt if it is in the chat; throws if unsure. */
  async #findEarlier(request, attempt) {
    try {
      return await this.#find(request, attempt);
    } catch (err) {
      this.#log.warn(
        { key: logRef(request.idempotencyKey), reason: err?.message },
        'could not check an earlier attempt; not sending',
      );
      if (err?.code === 'not_ready') throw err;
      throw new ServiceError(
        'send_failed',
        `an earlier attempt of this key could not be checked, so nothing was sent: ${err?.message ?? err}`,
      );
    }
  }

  async #findQuietly(request, attempt) {
    try {
      return await this.#find(request, attempt);
    } catch (err) {
      this.#log.warn(
        { key: logRef(request.idempotencyKey), reason: err?.message },
        'could not check whether the failed send reached the chat',
      );
      return null;
    }
  }

  async #find({ to, text, media }, attempt) {
    const found = await this.#engine.findSent({
      to,
      text,
      media,
      since: new Date(attempt.startedAt),
      // A message already answered for another key (same text, same chat) is not this one.
      skip: (id) => this.#ledger.answers(id),
    });
    return found ?? null;
  }

  async #record(idempotencyKey, result, what) {
    try {
      await this.#ledger.record(idempotencyKey, result);
    } catch (err) {
      // The message is out; answering an error would make the caller send it again. The
      // attempt stays on disk, so after a restart the key is looked for in the chat.
      this.#log.error(
        { err, key: logRef(idempotencyKey) },
        'could not save the idempotency ledger',
      );
    }
    // Neither the number nor the text: references to the key and WhatsApp's id (both hold the
    // number) are enough to follow a message.
    this.#log.info({ key: logRef(idempotencyKey), message: logRef(result.id) }, what);
  }

  get accepting() {
    return this.#accepting;
  }

  /**
   * Stops taking new sends and resolves once every send in flight has settled. After
   * `timeoutMs` it stops waiting: the callers still waiting get `shutting_down` (so their
   * requests end and the browser can be closed) and it resolves to the keys still in flight.
   * Their attempts stay in the ledger, so the next try looks for them in the chat first.
   */
  drain({ timeoutMs = Infinity } = {}) {
    this.#accepting = false;
    this.#draining ??= this.#drain(timeoutMs);
    return this.#draining;
  }

  async #drain(timeoutMs) {
    const settled = Promise.allSettled([...this.#inFlight.values()]).then(() => true);
    let timer;
    const expired = new Promise((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(resolve, timeoutMs, false);
    });
    const finished = await Promise.race([settled, expired]);
    clearTimeout(timer);
    if (finished) return [];
    const keys = [...this.#inFlight.keys()];
    this.#log.warn(
      { keys: keys.map(logRef), waitedMs: timeoutMs },
      'sends still in flight at shutdown; their attempts stay in the ledger',
    );
    this.#giveUp(
      new ServiceError(
        'shutting_down',
        'the service is shutting down before this send finished; the next try checks whether it went out',
      ),
    );
    return keys;
  }
}
