// JSON schemas shared by the routes. Every answer a route gives is described here.

import { FAILURE_CODES } from '../engines/engine.js';

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
};

export const stateSchema = {
  type: 'string',
  enum: ['STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED', 'STOPPED'],
};

export const meSchema = {
  type: ['object', 'null'],
  required: ['id', 'name'],
  properties: { id: { type: ['string', 'null'] }, name: { type: ['string', 'null'] } },
};

export const failureSchema = {
  type: ['object', 'null'],
  required: ['code', 'message', 'since'],
  properties: {
    code: { type: 'string', enum: [...FAILURE_CODES] },
    message: { type: 'string' },
    since: { type: 'string' },
  },
};

// +E164 (up to 15 digits), a person's WhatsApp id, or a group id.
export const RECIPIENT_PATTERN =
  '^(\\+[1-9][0-9]{6,14}|[0-9]{6,20}@c\\.us|[0-9]+(-[0-9]+)?@g\\.us)$';
export const PHONE_PATTERN = '^\\+?[1-9][0-9]{6,14}$';

export const sendResultSchema = {
  type: 'object',
  required: ['id', 'to', 'timestamp', 'duplicate'],
  properties: {
    id: { type: 'string' },
    to: { type: 'string' },
    timestamp: { type: 'string' },
    duplicate: { type: 'boolean' },
  },
};

/** Error answers a route may give, keyed by status. */
export function errors(...statuses) {
  return Object.fromEntries(statuses.map((status) => [status, errorSchema]));
}
