import { ServiceError } from '../errors.js';
import { RECIPIENT_PATTERN, errors, sendResultSchema } from './schemas.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
// Most message ids POST /messages/acks answers in one request.
export const MAX_ACK_IDS = 100;

/** Sending (at most once per idempotency key) and asking how far a message got. */
export default async function messageRoutes(app, { engine, sender }) {
  app.post(
    '/messages',
    {
      schema: {
        body: {
          type: 'object',
          required: ['to', 'text', 'idempotency_key'],
          properties: {
            to: { type: 'string', pattern: RECIPIENT_PATTERN },
            text: { type: 'string', maxLength: 65536 },
            media: {
              type: ['object', 'null'],
              required: ['mimetype', 'data_base64'],
              properties: {
                mimetype: { type: 'string', pattern: '^[\\w.+-]+/[\\w.+-]+' },
                filename: { type: ['string', 'null'], maxLength: 255 },
                data_base64: { type: 'string', minLength: 1 },
              },
            },
            idempotency_key: { type: 'string', minLength: 1, maxLength: 200 },
          },
        },
        response: { 201: sendResultSchema, ...errors(400, 401, 403, 404, 409, 502, 503) },
      },
    },
    async (request, reply) => {
      const { to, text, media, idempotency_key: idempotencyKey } = request.body;
      if (!media && text.trim() === '') {
        throw new ServiceError('invalid_request', 'text must not be empty when no media is sent');
      }
      if (media && (media.data_base64.length % 4 !== 0 || !BASE64.test(media.data_base64))) {
        throw new ServiceError('invalid_request', 'media.data_base64 is not valid base64');
      }
      const result = await sender.send({ to, text, media: media ?? null, idempotencyKey });
      return reply.code(201).send(result);
    },
  );

  // Before GET /messages/:id reads one: up to MAX_ACK_IDS at once, each answered as that
  // route would (an id this account never sent, or that WhatsApp forgot, has ack null).
  app.post(
    '/messages/acks',
    {
      schema: {
        body: {
          type: 'object',
          required: ['ids'],
          additionalProperties: false,
          properties: {
            ids: {
              type: 'array',
              minItems: 1,
              maxItems: MAX_ACK_IDS,
              items: { type: 'string', minLength: 1, maxLength: 300 },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['acks'],
            properties: {
              acks: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'ack'],
                  properties: { id: { type: 'string' }, ack: { type: ['integer', 'null'] } },
                },
              },
            },
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const acks = [];
      // One at a time: each may be a call into the WhatsApp Web page.
      for (const id of new Set(request.body.ids)) {
        acks.push({ id, ack: (await engine.getAck(id)) ?? null });
      }
      return { acks };
    },
  );

  app.get(
    '/messages/:id',
    {
      schema: {
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', minLength: 1, maxLength: 300 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['id', 'ack'],
            properties: { id: { type: 'string' }, ack: { type: 'integer' } },
          },
          ...errors(401, 404),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const ack = await engine.getAck(id);
      if (ack === null || ack === undefined)
        throw new ServiceError('not_found', `no message ${id} sent by this account`);
      return { id, ack };
    },
  );
}
