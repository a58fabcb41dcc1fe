import { FAKE_FAILURE_CODES } from '../engines/fake.js';
import { meSchema, stateSchema } from './schemas.js';

/** Test-only routes of the fake engine (DESIGN.md): the outbox, session moves, failures. */
export default async function fakeRoutes(app, { engine }) {
  app.get('/fake/outbox', async () => ({ messages: engine.outbox }));

  app.post(
    '/fake/state',
    {
      schema: {
        body: { type: 'object', required: ['state'], properties: { state: stateSchema } },
        response: { 200: { type: 'object', required: ['state', 'me'], properties: { state: stateSchema, me: meSchema } } },
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
          },
        },
      },
    },
    async (request) => {
      const { code, count } = request.body;
      engine.failNext(code, count);
      return { code, count };
    },
  );
}
