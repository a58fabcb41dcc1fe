import { FAILURE_CODES, STATES } from '../engines/engine.js';
import { FAKE_ACK_MODES, FAKE_FAILURE_CODES } from '../engines/fake.js';
import { errors, failureSchema, meSchema, stateSchema } from './schemas.js';

// A failure to hold: `message` defaults to what the real engine says for the code.
const givenFailureSchema = {
  type: ['object', 'null'],
  required: ['code'],
  properties: {
    code: { type: 'string', enum: [...FAILURE_CODES] },
    message: { type: 'string', maxLength: 1000 },
  },
};
const sessionSchema = {
  type: 'object',
  required: ['state', 'me', 'failure'],
  properties: { state: stateSchema, me: meSchema, failure: failureSchema },
};
const countsSchema = {
  type: 'object',
  required: ['total', 'by_route'],
  properties: {
    total: { type: 'integer' },
    by_route: { type: 'object', additionalProperties: { type: 'integer' } },
  },
};

/**
 * Test-only routes of the fake engine (README.md, "The fake engine"): the outbox, session moves, failures, acks,
 * and how many requests the service answered (`requests`, a RequestCounter).
 */
export default async function fakeRoutes(app, { engine, requests }) {
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
        body: {
          type: 'object',
          required: ['state'],
          properties: {
            state: { type: 'string', enum: [...STATES, 'NEVER_READY'] },
            failure: givenFailureSchema,
            qr_rotate_ms: { type: 'integer', minimum: 1 },
            ready_timeout_ms: { type: 'integer', minimum: 1 },
          },
        },
        response: { 200: sessionSchema, ...errors(400, 401) },
      },
    },
    async (request) => {
      const { state, failure, qr_rotate_ms: qrRotateMs, ready_timeout_ms: readyTimeoutMs } =
        request.body;
      engine.moveTo(state, { failure, qrRotateMs, readyTimeoutMs });
      return { state: engine.state, me: engine.me, failure: engine.failure };
    },
  );

  app.post(
    '/fake/acks',
    {
      schema: {
        body: {
          type: 'object',
          required: ['mode'],
          properties: { mode: { type: 'string', enum: Object.keys(FAKE_ACK_MODES) } },
        },
        response: {
          200: { type: 'object', required: ['mode'], properties: { mode: { type: 'string' } } },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      engine.setAckMode(request.body.mode);
      return { mode: request.body.mode };
    },
  );

  app.post(
    '/fake/acks/catch-up',
    {
      schema: {
        body: {
          type: 'object',
          required: ['ack'],
          properties: { ack: { type: 'integer', minimum: 1, maximum: 4 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['ack', 'moved'],
            properties: { ack: { type: 'integer' }, moved: { type: 'integer' } },
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const { ack } = request.body;
      return { ack, moved: await engine.catchUpAcks(ack) };
    },
  );

  app.post(
    '/fake/disconnect',
    {
      schema: {
        body: {
          type: 'object',
          required: ['after_sends'],
          properties: {
            after_sends: { type: 'integer', minimum: 0 },
            state: {
              type: 'string',
              enum: ['STARTING', 'SCAN_QR_CODE', 'FAILED', 'NEVER_READY'],
              default: 'STARTING',
            },
            failure: givenFailureSchema,
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['after_sends', 'state'],
            properties: {
              after_sends: { type: 'integer' },
              state: { type: 'string' },
              failure: givenFailureSchema,
            },
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const { after_sends: afterSends, state, failure } = request.body;
      engine.disconnectAfter(afterSends, { state, failure });
      return { after_sends: afterSends, state, failure: failure ?? null };
    },
  );

  app.post(
    '/fake/hold',
    {
      schema: {
        body: {
          type: 'object',
          required: ['sends'],
          properties: { sends: { type: ['integer', 'null'], minimum: 0 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['sends', 'held'],
            properties: { sends: { type: ['integer', 'null'] }, held: { type: 'integer' } },
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const { sends } = request.body;
      return { sends, held: engine.holdSends(sends) };
    },
  );

  app.post(
    '/fake/numbers',
    {
      schema: {
        body: {
          type: 'object',
          required: ['not_on_whatsapp'],
          additionalProperties: false,
          properties: {
            not_on_whatsapp: {
              type: 'array',
              items: { type: 'string', pattern: '^\\+[1-9][0-9]{6,14}$' },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['not_on_whatsapp'],
            properties: { not_on_whatsapp: { type: 'array', items: { type: 'string' } } },
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => ({
      not_on_whatsapp: engine.setNotOnWhatsApp(request.body.not_on_whatsapp),
    }),
  );

  app.get(
    '/fake/requests',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['total', 'by_route', 'fake'],
            properties: { ...countsSchema.properties, fake: countsSchema },
          },
          ...errors(401),
        },
      },
    },
    async () => requests.counts(),
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

/**
 * How many requests the service answered since start, by route pattern ("GET /health",
 * "GET /messages/:id"; "GET (no route)" for unknown paths, refused ones included), so a test
 * can count what wasched costs while a state holds. The test routes (/fake/*) are counted
 * apart, under `fake`, so that asking does not change the answer.
 */
export class RequestCounter {
  #product = { total: 0, by_route: {} };
  #fake = { total: 0, by_route: {} };

  count(method, route) {
    const counts = route?.startsWith('/fake/') ? this.#fake : this.#product;
    const key = `${method} ${route ?? '(no route)'}`;
    counts.total += 1;
    counts.by_route[key] = (counts.by_route[key] ?? 0) + 1;
  }

  counts() {
    const copy = ({ total, by_route: byRoute }) => ({ total, by_route: { ...byRoute } });
    return { ...copy(this.#product), fake: copy(this.#fake) };
  }
}
