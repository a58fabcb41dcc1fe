import { EventEmitter } from 'node:events';
import { ServiceError } from '../errors.js';

export const STATES = Object.freeze(['STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED', 'STOPPED']);

/**
 * Why the session is not WORKING, as `failure.code` in /health and `session.status`. wasched
 * turns each into one sentence with the fix; the message carries the detail (the browser's
 * own error), never a phone number.
 */
export const FAILURE_CODES = Object.freeze([
  'whatsapp_web_unreachable', // no network or DNS to web.whatsapp.com; retried with backoff
  'chromium_missing', // no browser at CHROMIUM_PATH (or none installed)
  'chromium_failed', // the browser would not start or crashed
  'profile_locked', // another browser holds the session's profile
  'never_ready', // authenticated or loading, but WhatsApp Web never became ready
  'page_broken', // the page broke (detached frame, closed target); restarted
  'logged_out', // WhatsApp ended this device's session: link again
  'auth_failure', // the saved session could not be restored: link again
]);

/**
 * What every engine shares: the session state, the linked account (`me`) and the current QR,
 * announced as events the app forwards to wasched:
 *   'status' {state, me}   'qr' {qr}   'ack' {id, ack}
 *
 * An engine also implements: start(), stop() (closes, never logs out), send({to, text, media,
 * idempotencyKey}) -> {id, to, timestamp}, findSent({to, text, media, since, skip}) -> {id, to,
 * timestamp}|null (a message with this content this account sent to `to` at or after the Date
 * `since`, whose id `skip` does not reject), getAck(id) -> number|null,
 * requestPairingCode(phone), logout(), listContacts(), listGroups(), checkNumbers(numbers) ->
 * [{number, on_whatsapp, whatsapp_id}] (each `+E164` number looked up once, in order; the
 * numbers after a lookup that failed are left out, and a first lookup that fails is a failure).
 * Failures are ServiceErrors with contract codes.
 */
// Failures that say why a QR code is shown again; any other failure ends when a QR appears.
export const RELINK_FAILURES = new Set(['logged_out', 'auth_failure']);

export class Engine extends EventEmitter {
  state = 'STOPPED';
  me = null;
  qr = null;
  // {code, message, since} of the last failure while not WORKING, or null.
  failure = null;

  /**
   * Moves to `state`; announces it (and a new QR) only when something changed. `failure`
   * ({code, message}) records why the session does not work, null clears it, and leaving it
   * out keeps the last one until the session is WORKING (a retry in STARTING still fails for
   * the same reason until it succeeds).
   */
  setSession(state, { me = null, qr = null, failure } = {}) {
    if (!STATES.includes(state)) throw new TypeError(`unknown session state ${state}`);
    const nextFailure = state === 'WORKING' ? null : this.#nextFailure(failure);
    const changed =
      state !== this.state ||
      JSON.stringify(me) !== JSON.stringify(this.me) ||
      nextFailure?.code !== this.failure?.code ||
      nextFailure?.message !== this.failure?.message;
    const newQr = qr !== null && qr !== this.qr;
    this.state = state;
    this.me = state === 'WORKING' ? me : null;
    this.qr = state === 'SCAN_QR_CODE' ? (qr ?? this.qr) : null;
    this.failure = nextFailure;
    if (changed) this.emit('status', { state: this.state, me: this.me, failure: this.failure });
    if (newQr) this.emit('qr', { qr });
  }

  #nextFailure(failure) {
    if (failure === undefined) return this.failure;
    if (failure === null) return null;
    if (!FAILURE_CODES.includes(failure.code)) {
      throw new TypeError(`unknown failure code ${failure.code}`);
    }
    // `since` is when this reason was first seen; a repeat of the same code keeps it.
    const since =
      this.failure?.code === failure.code ? this.failure.since : new Date().toISOString();
    return { code: failure.code, message: String(failure.message ?? ''), since };
  }

  requireWorking(what) {
    if (this.state !== 'WORKING') {
      throw new ServiceError('not_ready', `WhatsApp is not ready to ${what} (state ${this.state})`);
    }
  }
}

/**
 * Reads a contract recipient: `+E164` or `digits@c.us` is a person, `id@g.us` a group.
 * The route's schema has already checked the shape.
 */
export function parseRecipient(to) {
  if (to.startsWith('+')) return { kind: 'person', digits: to.slice(1) };
  if (to.endsWith('@c.us')) return { kind: 'person', digits: to.slice(0, -'@c.us'.length) };
  return { kind: 'group', chatId: to };
}

export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
