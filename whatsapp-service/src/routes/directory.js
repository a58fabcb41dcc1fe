import { errors } from './schemas.js';

// Most numbers POST /contacts/check looks up in one request: each is one query to WhatsApp.
export const MAX_CHECK_NUMBERS = 50;
// A person's number as the contract writes it: +E164, up to 15 digits.
const E164_PATTERN = '^\\+[1-9][0-9]{6,14}$';

const listOf = (itemProperties) => ({
  200: {
    type: 'array',
    items: {
      type: 'object',
      required: ['id', 'name'],
      properties: { id: { type: 'string' }, name: { type: ['string', 'null'] }, ...itemProperties },
    },
  },
  ...errors(401, 409),
});

/** The linked account's contacts and groups, for picking recipients; and whether numbers
 * have a WhatsApp account, asked before a first message to them. */
export default async function directoryRoutes(app, { engine }) {
  app.get(
    '/contacts',
    { schema: { response: listOf({ number: { type: ['string', 'null'] } }) } },
    async () => engine.listContacts(),
  );
  app.get(
    '/groups',
    {
      schema: { response: listOf({ participants: { type: 'array', items: { type: 'string' } } }) },
    },
    async () => engine.listGroups(),
  );
  app.post(
    '/contacts/check',
    {
      schema: {
        body: {
          type: 'object',
          required: ['numbers'],
          additionalProperties: false,
          properties: {
            numbers: {
              type: 'array',
              minItems: 1,
              maxItems: MAX_CHECK_NUMBERS,
              items: { type: 'string', pattern: E164_PATTERN },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['numbers'],
            properties: {
              numbers: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['number', 'on_whatsapp', 'whatsapp_id'],
                  properties: {
                    number: { type: 'string' },
                    on_whatsapp: { type: 'boolean' },
                    whatsapp_id: { type: ['string', 'null'] },
                  },
                },
              },
            },
          },
          ...errors(400, 401, 409, 502, 503),
        },
      },
    },
    async (request) => {
      const numbers = [...new Set(request.body.numbers)]; // each looked up once
      return { numbers: await engine.checkNumbers(numbers) };
    },
  );
}
