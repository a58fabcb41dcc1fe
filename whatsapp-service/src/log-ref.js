import { createHash } from 'node:crypto';

/**
 * A short stand-in for a value that must stay out of the logs: an idempotency key embeds the
 * recipient's number and a WhatsApp message id the chat's. The same value gives the same
 * reference, which is enough to follow one message through the log.
 */
export function logRef(value) {
  return createHash('sha256').update(String(value)).digest('hex').slice(0, 12);
}
