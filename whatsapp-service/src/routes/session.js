import QRCode from 'qrcode';
import { ServiceError } from '../errors.js';
import { PHONE_PATTERN, errors, failureSchema, meSchema, stateSchema } from './schemas.js';

/** Health, linking (QR or pairing code) and unlinking. */
export default async function sessionRoutes(app, { engine }) {
  app.get(
    '/health',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['status', 'engine', 'state', 'me', 'failure'],
            properties: {
              status: { type: 'string' },
              engine: { type: 'string' },
              state: stateSchema,
              me: meSchema,
              failure: failureSchema,
            },
          },
        },
      },
    },
    async () => ({
      status: 'ok',
      engine: engine.name,
      state: engine.state,
      me: engine.me,
      failure: engine.failure,
    }),
  );

  app.get(
    '/session/qr',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['qr', 'png_base64'],
            properties: { qr: { type: 'string' }, png_base64: { type: 'string' } },
          },
          ...errors(401, 409),
        },
      },
    },
    async () => {
      requireLinking(engine);
      const qr = engine.qr;
      const png = await QRCode.toBuffer(qr, {
        type: 'png',
        errorCorrectionLevel: 'M',
        margin: 2,
        width: 400,
      });
      return { qr, png_base64: png.toString('base64') };
    },
  );

  app.post(
    '/session/pairing-code',
    {
      schema: {
        body: {
          type: 'object',
          required: ['phone'],
          properties: { phone: { type: 'string', pattern: PHONE_PATTERN } },
        },
        response: {
          200: { type: 'object', required: ['code'], properties: { code: { type: 'string' } } },
          ...errors(400, 401, 409, 502),
        },
      },
    },
    async (request) => {
      requireLinking(engine);
      return { code: await engine.requestPairingCode(request.body.phone) };
    },
  );

  app.post(
    '/session/logout',
    { schema: { response: { 204: { type: 'null' }, ...errors(401) } } },
    async (request, reply) => {
      request.log.info('logout requested: unlinking the WhatsApp session');
      await engine.logout();
      return reply.code(204).send();
    },
  );
}

/** A QR or pairing code exists only while the service waits for the account to be linked. */
function requireLinking(engine) {
  if (engine.state === 'WORKING') {
    throw new ServiceError(
      'not_ready',
      'the account is already linked; log out first to link another',
    );
  }
  if (engine.state !== 'SCAN_QR_CODE' || !engine.qr) {
    throw new ServiceError('not_ready', `no QR code to scan while the session is ${engine.state}`);
  }
}
