import { FAKE_FAILURE_CODES } from '../engines/fake.js';
import { meSchema, stateSchema } from './schemas.js';

/** Test-only routes of the fake engine (DESIGN.md): the outbox, session moves, failures. */
export default async function fakeRoutes(app, { engine }) {
  app.get(
    '/fake/outbox',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['messages'],
            properties: {
              messages: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'to', 'text', 'media', 'idempotency_key', 'timestamp', 'ack'],
                  properties: {
                    id: { type: 'string' },
                    to: { type: 'string' },
                    text: { type: 'string' },
                    media: {
                      type: ['object', 'null'],
                      properties: {
                        mimetype: { type: 'string' },
                        filename: { type: ['string', 'null'] },
                        bytes: { type: 'integer' },
                      },
                    },
                    idempotency_key: { type: 'string' },
                    timestamp: { type: 'string' },
                    ack: { type: 'integer' },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => ({ messages: engine.outbox }),
  );

  app.post(
    '/fake/state',
    {
      schema: {
        body: { type: 'object', required: ['state'], properties: { state: stateSchema } },
        response: {
          200: {
            type: 'object',
            required: ['state', 'me'],
            properties: { state: stateSchema, me: meSchema },
          },
        },
      },
    },
    async (request) => {
      engine.moveTo(request.body.state);
      return { state: engine.state, me: engine.me };
    },
  );

  app.post(
    '/fake/fail',
    {
      schema: {
        body: {
          type: 'object',
          required: ['code'],
          properties: {
            code: { type: 'string', enum: [...FAKE_FAILURE_CODES] },
            count: { type: 'integer', minimum: 0, default: 1 },
            after_send: { type: 'boolean', default: false },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['code', 'count', 'after_send'],
            properties: {
              code: { type: 'string' },
              count: { type: 'integer' },
              after_send: { type: 'boolean' },
            },
          },
        },
      },
    },
    async (request) => {
      const { code, count, after_send: afterSend } = request.body;
      engine.failNext(code, count, { afterSend });
      return { code, count, after_send: afterSend };
    },
  );
}
