import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ServiceError } from '../errors.js';
import { SnapshotFile, readJson } from '../json-file.js';
import { logRef } from '../log-ref.js';
import { Engine, RELINK_FAILURES, delay, parseRecipient } from './engine.js';

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
// What the wwebjs engine reports for each failure code, for a failure given without a message.
export const FAKE_FAILURE_MESSAGES = Object.freeze({
  whatsapp_web_unreachable: 'net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/',
  chromium_missing: 'Browser was not found at the configured executablePath (/usr/bin/chromium)',
  chromium_failed: 'Failed to launch the browser process!',
  profile_locked: 'The browser is already running for the WhatsApp profile',
  never_ready: 'WhatsApp Web was authenticated but never became ready',
  page_broken: 'Navigating frame was detached',
  logged_out: 'WhatsApp logged this device out (LOGOUT)',
  auth_failure: 'Unable to log in. Are the session details valid?',
});
// POST /fake/acks: how many of the acks 1 (server), 2 (device), 3 (read) a new send gets.
export const FAKE_ACK_MODES = Object.freeze({ normal: 3, stop_at_2: 2, stop_at_1: 1, never: 0 });
export const FAKE_FAILURE_CODES = Object.freeze([
  'invalid_request',
  'not_on_whatsapp',
  'not_ready',
  'reachout_limited',
  'send_failed',
]);
// What the wwebjs engine says when WhatsApp refuses a new chat (error 463), for /fake/fail.
export const FAKE_REACHOUT_MESSAGE =
  'WhatsApp refused to start a chat from this account (error 463: reach-out limit)';

/**
 * Behaves like the wwebjs engine: same states, events, answers and errors. Starts STARTING and
 * after `startDelayMs` reaches `startState` (see FAKE_START_STATES), where it stays until a
 * test route moves it; acks each accepted send 1, 2, 3 (or fewer, see setAckMode); keeps every
 * accepted send in an outbox file that survives a restart.
 */
export class FakeEngine extends Engine {
  name = 'fake';
  sendsInFlight = 0;
  #outbox = [];
  #file;
  #timers = new Set();
  // The timer of the session itself (start, QR rotation, ready watchdog); a move replaces it.
  #sessionTimer = null;
  #failures = { code: null, count: 0, afterSend: false };
  #acksPerSend = FAKE_ACK_MODES.normal;
  #disconnect = null;
  #stopped = false;
  #started = false;
  // POST /fake/hold: how many more sends may go out (null: no hold), and the sends waiting.
  #allowance = null;
  #held = [];
  // The numbers (+E164) it treats as having no WhatsApp account (POST /fake/numbers).
  #notOnWhatsApp;

  constructor({
    dataDir,
    startDelayMs = 100,
    sendDelayMs = 0,
    ackDelaysMs = [50, 100, 150],
    startState = 'WORKING',
    failure = null,
    qrRotateMs = 20000,
    readyTimeoutMs = 60000,
    notOnWhatsApp = [],
    log,
  }) {
    super();
    this.startDelayMs = startDelayMs;
    this.sendDelayMs = sendDelayMs;
    this.ackDelaysMs = ackDelaysMs;
    this.startState = startState;
    this.startFailure = failure;
    this.qrRotateMs = qrRotateMs;
    this.readyTimeoutMs = readyTimeoutMs;
    this.#notOnWhatsApp = new Set(notOnWhatsApp);
    this.log = log;
    this.outboxPath = join(dataDir, 'fake-outbox.json');
    this.#file = new SnapshotFile(this.outboxPath, () => ({ version: 1, messages: this.#outbox }));
  }

  async start() {
    const stored = await readJson(this.outboxPath, { messages: [] });
    this.#outbox = stored.messages ?? [];
    this.#started = true;
    this.#stopped = false;
    if (this.startState === 'STARTING') {
      this.moveTo('STARTING', { failure: this.startFailure });
      return;
    }
    this.setSession('STARTING');
    if (this.startState === 'NEVER_READY') {
      this.moveTo('NEVER_READY');
      return;
    }
    this.#sessionLater(this.startDelayMs, () => {
      if (this.state !== 'STARTING') return;
      this.moveTo(this.startState, { failure: this.startFailure ?? undefined });
    });
  }

  async stop() {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#sessionTimer = null;
    this.holdSends(null); // held sends end (refused: the session is STOPPED)
    this.setSession('STOPPED');
    if (this.#started) await this.#file.save(); // never overwrite an outbox it did not load
  }

  /**
   * Test route POST /fake/state: what the phone or WhatsApp would do to the session, held
   * until the next move. SCAN_QR_CODE shows a new QR every `qrRotateMs`; FAILED always has a
   * failure (the one given, else the one held, else whatsapp_web_unreachable); NEVER_READY is
   * STARTING with the failure never_ready once `readyTimeoutMs` passed; WORKING clears it.
   */
  moveTo(
    state,
    { failure, qrRotateMs = this.qrRotateMs, readyTimeoutMs = this.readyTimeoutMs } = {},
  ) {
    if (state === 'WORKING' && failure) {
      throw new ServiceError('invalid_request', 'failure cannot be given with state WORKING');
    }
    this.#clearSessionTimer();
    const given = failure ? this.#failure(failure) : failure;
    if (state === 'WORKING') {
      this.setSession('WORKING', { me: FAKE_ME });
    } else if (state === 'SCAN_QR_CODE') {
      // As the real engine: a new QR ends any failure but one that says why it is needed.
      const kept = RELINK_FAILURES.has(this.failure?.code) ? this.failure : null;
      const shown = given === undefined ? kept : given;
      this.setSession('SCAN_QR_CODE', { qr: newFakeQr(), failure: shown });
      this.#rotateQr(qrRotateMs);
    } else if (state === 'FAILED') {
      const held = given ?? this.failure ?? this.#failure({ code: 'whatsapp_web_unreachable' });
      this.setSession('FAILED', { failure: held });
    } else if (state === 'NEVER_READY') {
      // Authenticated, then `ready` never fires: the real watchdog restarts the client in
      // STARTING after the timeout, again and again; every restart after the first looks the
      // same from outside (STARTING, never_ready), so one timer stands for them all.
      this.setSession('STARTING', { failure: given });
      this.#sessionLater(readyTimeoutMs, () => {
        this.setSession('STARTING', {
          failure: this.#failure({
            code: 'never_ready',
            message: `${FAKE_FAILURE_MESSAGES.never_ready} within ${readyTimeoutMs} ms`,
          }),
        });
      });
    } else {
      this.setSession(state, { failure: given });
    }
  }

  /** Test route POST /fake/acks: how far the acks of the messages sent from now on get. */
  setAckMode(mode) {
    if (!(mode in FAKE_ACK_MODES)) {
      throw new ServiceError('invalid_request', `unknown ack mode ${mode}`);
    }
    this.#acksPerSend = FAKE_ACK_MODES[mode];
  }

  /**
   * Test route POST /fake/acks/catch-up: the recipients' phones come online, so every message
   * whose ack is below `ack` (0 pending, 1 server, 2 device) moves to it, with one ack event
   * each. The outbox is saved before the events go out. Returns how many messages moved.
   */
  async catchUpAcks(ack) {
    const behind = this.#outbox.filter((message) => message.ack >= 0 && message.ack < ack);
    for (const message of behind) message.ack = ack;
    if (behind.length > 0) await this.#file.save();
    for (const message of behind) this.emit('ack', { id: message.id, ack });
    return behind.length;
  }

  /**
   * Test route POST /fake/disconnect: after `afterSends` more accepted sends the session
   * drops to `state` (with `failure`), and the sends after it are refused as not_ready.
   */
  disconnectAfter(afterSends, { state = 'STARTING', failure } = {}) {
    this.#disconnect = { left: afterSends, state, failure };
    if (afterSends === 0) this.#dropIfDue();
  }

  /**
   * Test route POST /fake/hold: from now on only `sends` more sends go out (in the order they
   * came); the others wait, in flight, until a later call lets more through. `null` lets
   * every send through again. Returns how many sends are waiting.
   */
  holdSends(sends) {
    this.#allowance = sends;
    while (this.#held.length > 0 && (this.#allowance === null || this.#allowance > 0)) {
      if (this.#allowance !== null) this.#allowance -= 1;
      this.#held.shift()();
    }
    return this.#held.length;
  }

  #dropIfDue() {
    if (!this.#disconnect || this.#disconnect.left > 0) return;
    const { state, failure } = this.#disconnect;
    this.#disconnect = null;
    this.moveTo(state, { failure });
  }

  #failure({ code, message }) {
    return { code, message: message ?? FAKE_FAILURE_MESSAGES[code] };
  }

  #rotateQr(everyMs) {
    this.#sessionLater(everyMs, () => {
      this.setSession('SCAN_QR_CODE', { qr: newFakeQr() });
      this.#rotateQr(everyMs);
    });
  }

  #sessionLater(ms, action) {
    this.#clearSessionTimer();
    this.#sessionTimer = this.#later(ms, () => {
      this.#sessionTimer = null;
      action();
    });
  }

  #clearSessionTimer() {
    if (!this.#sessionTimer) return;
    clearTimeout(this.#sessionTimer);
    this.#timers.delete(this.#sessionTimer);
    this.#sessionTimer = null;
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
    this.#clearSessionTimer();
    this.setSession('STARTING', { failure: null });
    this.moveTo('SCAN_QR_CODE');
  }

  async send({ to, text, media, idempotencyKey }) {
    let failAfterSend = false;
    if (this.#failures.count > 0) {
      this.#failures.count -= 1;
      failAfterSend = this.#failures.afterSend;
      if (!failAfterSend) {
        const { code } = this.#failures;
        const said = code === 'reachout_limited' ? FAKE_REACHOUT_MESSAGE : `injected ${code}`;
        throw new ServiceError(code, `fake engine: ${said}`);
      }
    }
    this.requireWorking('send');
    // As wwebjs: a person's number is looked up before the send, and one without WhatsApp fails.
    if (!this.#onWhatsApp(to)) {
      throw new ServiceError('not_on_whatsapp', `${to} is not on WhatsApp`);
    }
    const chatId = chatOf(to);
    if (this.#allowance !== null) {
      if (this.#allowance > 0) {
        this.#allowance -= 1;
      } else {
        this.log.info({ key: logRef(idempotencyKey) }, 'fake send held');
        await new Promise((resolve) => this.#held.push(resolve));
      }
      this.requireWorking('send'); // the session may have dropped meanwhile
    }
    if (this.sendDelayMs > 0) {
      this.sendsInFlight += 1;
      this.log.info({ key: logRef(idempotencyKey) }, 'fake send in flight');
      await delay(this.sendDelayMs);
      this.sendsInFlight -= 1;
      this.requireWorking('send'); // the session may have dropped meanwhile
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
    if (this.#disconnect) this.#disconnect.left -= 1;
    this.#dropIfDue();
    await this.#file.save();
    this.#scheduleAcks(message, this.#acksPerSend);
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
    if (!this.#onWhatsApp(to)) return null; // no chat, so nothing was sent there
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

  #scheduleAcks(message, count) {
    let after = 0;
    this.ackDelaysMs.slice(0, count).forEach((ms, index) => {
      after += ms;
      this.#later(after, () => {
        if (message.ack >= index + 1) return; // caught up already (never backwards)
        message.ack = index + 1;
        this.emit('ack', { id: message.id, ack: message.ack });
        if (message.ack === count)
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

  /**
   * Test route POST /fake/numbers: from now on these +E164 numbers have no WhatsApp account
   * (replacing the ones given before or in WHATSAPP_FAKE_NOT_ON_WHATSAPP).
   */
  setNotOnWhatsApp(numbers) {
    this.#notOnWhatsApp = new Set(numbers);
    return [...this.#notOnWhatsApp];
  }

  /** As wwebjs answers: each number with its WhatsApp id, or not on WhatsApp. */
  async checkNumbers(numbers) {
    this.requireWorking('check numbers');
    return numbers.map((number) => {
      const onWhatsApp = this.#onWhatsApp(number);
      return {
        number,
        on_whatsapp: onWhatsApp,
        whatsapp_id: onWhatsApp ? `${number.slice(1)}@c.us` : null,
      };
    });
  }

  #onWhatsApp(to) {
    const recipient = parseRecipient(to);
    return recipient.kind === 'group' || !this.#notOnWhatsApp.has(`+${recipient.digits}`);
  }

  #later(ms, action) {
    if (this.#stopped) return null;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      action();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }
}

function chatOf(to) {
  const recipient = parseRecipient(to);
  return recipient.kind === 'person' ? `${recipient.digits}@c.us` : recipient.chatId;
}

function newFakeQr() {
  return `2@fake${randomBytes(24).toString('base64')},${randomBytes(16).toString('base64')},wasched-fake`;
}
