import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ServiceError } from '../errors.js';
import { SnapshotFile, readJson } from '../json-file.js';
import { Engine, delay, parseRecipient } from './engine.js';

// A linked account without a phone, for wasched's tests and demos. Its fixed address book:
export const FAKE_ME = Object.freeze({ id: '15550000000@c.us', name: 'wasched fake' });
export const FAKE_CONTACTS = Object.freeze([
  Object.freeze({ id: '15550000001@c.us', name: 'Alice Example', number: '15550000001' }),
  Object.freeze({ id: '15550000002@c.us', name: 'Bob Example', number: '15550000002' }),
  Object.freeze({ id: '15550000003@c.us', name: 'Carol Example', number: '15550000003' }),
]);
export const FAKE_GROUPS = Object.freeze([
  Object.freeze({
    id: '120363000000000001@g.us',
    name: 'Fake Family',
    participants: Object.freeze(['15550000000@c.us', '15550000001@c.us', '15550000002@c.us']),
  }),
  Object.freeze({
    id: '120363000000000002@g.us',
    name: 'Fake Team',
    participants: Object.freeze(['15550000000@c.us', '15550000003@c.us']),
  }),
]);
export const FAKE_FAILURE_CODES = Object.freeze([
  'invalid_request',
  'not_on_whatsapp',
  'not_ready',
  'send_failed',
]);

/**
 * Behaves like the wwebjs engine on a linked account: same states, events, answers and errors.
 * Starts STARTING and becomes WORKING after `startDelayMs`; acks each accepted send 1, 2, 3;
 * keeps every accepted send in an outbox file that survives a restart.
 */
export class FakeEngine extends Engine {
  name = 'fake';
  sendsInFlight = 0;
  #outbox = [];
  #file;
  #timers = new Set();
  #failures = { code: null, count: 0, afterSend: false };
  #stopped = false;
  #started = false;

  constructor({ dataDir, startDelayMs = 100, sendDelayMs = 0, ackDelaysMs = [50, 100, 150], log }) {
    super();
    this.startDelayMs = startDelayMs;
    this.sendDelayMs = sendDelayMs;
    this.ackDelaysMs = ackDelaysMs;
    this.log = log;
    this.outboxPath = join(dataDir, 'fake-outbox.json');
    this.#file = new SnapshotFile(this.outboxPath, () => ({ version: 1, messages: this.#outbox }));
  }

  async start() {
    const stored = await readJson(this.outboxPath, { messages: [] });
    this.#outbox = stored.messages ?? [];
    this.#started = true;
    this.#stopped = false;
    this.setSession('STARTING');
    this.#later(this.startDelayMs, () => {
      if (this.state === 'STARTING') this.setSession('WORKING', { me: FAKE_ME });
    });
  }

  async stop() {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.setSession('STOPPED');
    if (this.#started) await this.#file.save(); // never overwrite an outbox it did not load
  }

  /** Test route POST /fake/state: what the phone or WhatsApp would do to the session. */
  moveTo(state) {
    if (state === 'WORKING') this.setSession('WORKING', { me: FAKE_ME });
    else if (state === 'SCAN_QR_CODE') this.setSession('SCAN_QR_CODE', { qr: newFakeQr() });
    else this.setSession(state);
  }

  /**
   * Test route POST /fake/fail: the next `count` sends fail with `code`. With `afterSend` the
   * message goes out first and the send fails after (send_failed only), the way
   * whatsapp-web.js can throw once WhatsApp Web has the message.
   */
  failNext(code, count, { afterSend = false } = {}) {
    if (afterSend && code !== 'send_failed') {
      throw new ServiceError('invalid_request', 'after_send applies to send_failed only');
    }
    this.#failures = { code, count, afterSend };
  }

  get outbox() {
    return this.#outbox;
  }

  async requestPairingCode() {
    if (this.state !== 'SCAN_QR_CODE') {
      throw new ServiceError(
        'not_ready',
        `a pairing code is only given while linking (state ${this.state})`,
      );
    }
    return randomBytes(8)
      .toString('base64')
      .replace(/[^A-Z0-9]/gi, 'X')
      .slice(0, 8)
      .toUpperCase();
  }

  async logout() {
    // Like the real one: the session is gone and WhatsApp offers a new QR to link again.
    this.setSession('STARTING');
    this.setSession('SCAN_QR_CODE', { qr: newFakeQr() });
  }

  async send({ to, text, media, idempotencyKey }) {
    let failAfterSend = false;
    if (this.#failures.count > 0) {
      this.#failures.count -= 1;
      failAfterSend = this.#failures.afterSend;
      if (!failAfterSend) {
        throw new ServiceError(this.#failures.code, `fake engine: injected ${this.#failures.code}`);
      }
    }
    this.requireWorking('send');
    const chatId = chatOf(to);
    if (this.sendDelayMs > 0) {
      this.sendsInFlight += 1;
      this.log.info({ idempotencyKey }, 'fake send in flight');
      await delay(this.sendDelayMs);
      this.sendsInFlight -= 1;
    }
    const message = {
      id: `true_${chatId}_3EB0${randomBytes(8).toString('hex').toUpperCase()}`,
      to: chatId,
      text,
      media: media
        ? {
            mimetype: media.mimetype,
            filename: media.filename ?? null,
            bytes: Buffer.byteLength(media.data_base64, 'base64'),
          }
        : null,
      idempotency_key: idempotencyKey,
      timestamp: new Date().toISOString(),
      ack: 0,
    };
    this.#outbox.push(message);
    await this.#file.save();
    this.#scheduleAcks(message);
    if (failAfterSend) {
      throw new ServiceError('send_failed', 'fake engine: injected send_failed after sending');
    }
    return { id: message.id, to: message.to, timestamp: message.timestamp };
  }

  /**
   * The earliest message in the chat `to` that matches text and media (not their bytes), was
   * sent at or after `since` (Date, 2 s slack as wwebjs) and is not `skip`ped, or null. Like
   * the real chat it knows nothing of idempotency keys.
   */
  async findSent({ to, text, media, since, skip = () => false }) {
    this.requireWorking('look for a sent message');
    const chatId = chatOf(to);
    const found = this.#outbox.find(
      (message) =>
        message.to === chatId &&
        message.text === text &&
        (message.media === null) === !media &&
        Date.parse(message.timestamp) >= since.getTime() - 2000 &&
        !skip(message.id),
    );
    return found ? { id: found.id, to: found.to, timestamp: found.timestamp } : null;
  }

  #scheduleAcks(message) {
    let after = 0;
    this.ackDelaysMs.forEach((ms, index) => {
      after += ms;
      this.#later(after, () => {
        message.ack = index + 1;
        this.emit('ack', { id: message.id, ack: message.ack });
        if (message.ack === 3)
          this.#file.save().catch((err) => this.log.error({ err }, 'fake outbox not saved'));
      });
    });
  }

  getAck(id) {
    return this.#outbox.find((message) => message.id === id)?.ack ?? null;
  }

  async listContacts() {
    this.requireWorking('list contacts');
    return FAKE_CONTACTS;
  }

  async listGroups() {
    this.requireWorking('list groups');
    return FAKE_GROUPS;
  }

  #later(ms, action) {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      action();
    }, ms);
    this.#timers.add(timer);
  }
}

function chatOf(to) {
  const recipient = parseRecipient(to);
  return recipient.kind === 'person' ? `${recipient.digits}@c.us` : recipient.chatId;
}

function newFakeQr() {
  return `2@fake${randomBytes(24).toString('base64')},${randomBytes(16).toString('base64')},wasched-fake`;
}
