import { createHash, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import Fastify, { LogController } from 'fastify';
import { ServiceError, errorBody } from './errors.js';
import { EventForwarder, PENDING_EVENTS_FILE } from './events.js';
import { IdempotencyLedger } from './ledger.js';
import directoryRoutes from './routes/directory.js';
import fakeRoutes, { RequestCounter } from './routes/fake.js';
import messageRoutes from './routes/messages.js';
import sessionRoutes from './routes/session.js';
import { Sender } from './sender.js';

const OPEN_ROUTES = new Set(['/health']);
const FIELD_HINTS = {
  to: 'to must be +E164 (e.g. +4915112345678), digits@c.us or id@g.us',
  phone: 'phone must be an international number, e.g. +4915112345678',
};

/**
 * Builds the sidecar's HTTP app around `engine`. Ready starts the engine; `app.shutdown()`
 * stops taking requests (503), lets the send in flight finish (for at most half the shutdown
 * timeout: a hung send must not keep the browser from closing), then closes: the engine
 * (never logging out) and the event queue (one bounded try, the rest kept on disk).
 * Requests are logged at debug only: wasched probes /health all day, and a session held in
 * one state must not fill the log. `options.logger` is a pino instance to share;
 * `options.events` replaces the forwarder.
 */
export function buildApp(config, engine, { logger, events } = {}) {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: { level: config.logLevel } }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false } },
  });

  const ledger = new IdempotencyLedger(config.dataDir);
  const sender = new Sender({ engine, ledger, log: app.log.child({ component: 'sender' }) });
  const forwarder =
    events ??
    new EventForwarder({
      url: config.eventsUrl,
      apiKey: config.apiKey,
      log: app.log.child({ component: 'events' }),
      pendingPath: join(config.dataDir, PENDING_EVENTS_FILE),
      ...config.events,
    });
  const forwarded = {
    status: (payload) => forwarder.push('session.status', payload),
    qr: (payload) => forwarder.push('session.qr', payload),
    ack: (payload) => forwarder.push('message.ack', payload),
  };
  for (const [name, listener] of Object.entries(forwarded)) engine.on(name, listener);

  let draining = false;
  const drainSends = () => sender.drain({ timeoutMs: Math.ceil(config.shutdownTimeoutMs / 2) });

  const requests = engine.name === 'fake' ? new RequestCounter() : null;

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    requests?.count(request.method, route);
    // No key configured is no caller trusted (loadConfig refuses to start without one).
    const fromWasched =
      Boolean(config.apiKey) && sameKey(request.headers['x-api-key'], config.apiKey);
    if (!fromWasched && !OPEN_ROUTES.has(route)) {
      return reply.code(401).send(errorBody('unauthorized', 'missing or wrong X-Api-Key header'));
    }
    // wasched is up (it probes /health as it starts): events waiting out a backoff go now.
    if (fromWasched) forwarder.retrySoon?.();
    if (draining && !OPEN_ROUTES.has(route)) {
      return reply
        .code(503)
        .send(errorBody('shutting_down', 'the service is shutting down; try again shortly'));
    }
  });

  // The route pattern, never the raw URL: a message id holds the recipient's number.
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      {
        method: request.method,
        route: request.routeOptions.url ?? null,
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request answered',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof ServiceError) {
      // A 4xx is the caller's to handle (wasched retries not_ready while the session is down).
      const level = error.statusCode >= 500 ? 'warn' : 'debug';
      request.log[level]({ code: error.code }, error.message);
      return reply.code(error.statusCode).send(errorBody(error.code, error.message));
    }
    if (error.validation) {
      return reply.code(400).send(errorBody('invalid_request', describeValidation(error)));
    }
    if (
      error.code?.startsWith('FST_ERR_CTP_') ||
      (error.statusCode >= 400 && error.statusCode < 500)
    ) {
      return reply.code(400).send(errorBody('invalid_request', bodyProblem(error, config)));
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send(errorBody('internal_error', 'the service failed; see its log'));
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  app.register(sessionRoutes, { engine });
  app.register(messageRoutes, { engine, sender });
  app.register(directoryRoutes, { engine });
  if (engine.name === 'fake') app.register(fakeRoutes, { engine, requests });

  app.addHook('onReady', async () => {
    await ledger.load();
    await forwarder.start();
    await engine.start();
  });

  app.addHook('onClose', async () => {
    draining = true;
    await drainSends();
    await engine.stop();
    for (const [name, listener] of Object.entries(forwarded)) engine.off(name, listener);
    await forwarder.close({ timeoutMs: Math.min(5000, Math.ceil(config.shutdownTimeoutMs / 3)) });
  });

  let shuttingDown = null;
  app.decorate('shutdown', function shutdown() {
    shuttingDown ??= (async () => {
      draining = true;
      app.log.info('shutting down: no new sends, finishing the ones in flight');
      await drainSends();
      await app.close();
    })();
    return shuttingDown;
  });

  return app;
}

function sameKey(given, expected) {
  if (typeof given !== 'string') return false;
  const digest = (value) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** "to must be ...": the field named first, the way a caller can fix it. */
function describeValidation(error) {
  const [first] = error.validation;
  const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const field =
    first.keyword === 'required'
      ? [path, first.params.missingProperty].filter(Boolean).join('.')
      : path;
  if (first.keyword === 'pattern' && FIELD_HINTS[field]) return FIELD_HINTS[field];
  if (first.keyword === 'required') return `${field} is required`;
  if (first.keyword === 'enum')
    return `${field} must be one of ${first.params.allowedValues.join(', ')}`;
  return `${field || error.validationContext} ${first.message}`;
}

function bodyProblem(error, config) {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `body is larger than ${config.bodyLimitBytes} bytes`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'body must be JSON (Content-Type: application/json)';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'body is required';
    default:
      return `body is not valid JSON: ${error.message}`;
  }
}
