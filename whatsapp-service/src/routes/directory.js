import { errors } from './schemas.js';

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

/** The linked account's contacts and groups, for picking recipients. */
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
}
