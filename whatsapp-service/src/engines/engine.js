import { EventEmitter } from 'node:events';
import { ServiceError } from '../errors.js';

export const STATES = Object.freeze(['STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED', 'STOPPED']);

/**
 * What every engine shares: the session state, the linked account (`me`) and the current QR,
 * announced as events the app forwards to wasched:
 *   'status' {state, me}   'qr' {qr}   'ack' {id, ack}
 *
 * An engine also implements: start(), stop() (closes, never logs out), send({to, text, media,
 * idempotencyKey}) -> {id, to, timestamp}, findSent({to, text, media, since, skip}) -> {id, to,
 * timestamp}|null (a message with this content this account sent to `to` at or after the Date
 * `since`, whose id `skip` does not reject), getAck(id) -> number|null,
 * requestPairingCode(phone), logout(), listContacts(), listGroups(). Failures are ServiceErrors
 * with contract codes.
 */
export class Engine extends EventEmitter {
  state = 'STOPPED';
  me = null;
  qr = null;

  /** Moves to `state`; announces it (and a new QR) only when something changed. */
  setSession(state, { me = null, qr = null } = {}) {
    if (!STATES.includes(state)) throw new TypeError(`unknown session state ${state}`);
    const changed = state !== this.state || JSON.stringify(me) !== JSON.stringify(this.me);
    const newQr = qr !== null && qr !== this.qr;
    this.state = state;
    this.me = state === 'WORKING' ? me : null;
    this.qr = state === 'SCAN_QR_CODE' ? (qr ?? this.qr) : null;
    if (changed) this.emit('status', { state: this.state, me: this.me });
    if (newQr) this.emit('qr', { qr });
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
