import pino from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createEngine } from './engines/index.js';

// Starts the sidecar and stops it cleanly on SIGTERM/SIGINT, so the WhatsApp session survives.

// Everything this process creates (the data directory, the ledger, pending events, Chromium's
// profile with the WhatsApp session) is private to its user, however it was started.
process.umask(0o077);

function stopWithOneLine(message) {
  process.stderr.write(`whatsapp-service: ${message}\n`);
  process.exit(1);
}

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) stopWithOneLine(err.message);
  throw err;
}

const log = pino({ level: config.logLevel, base: { service: 'whatsapp-service' } });
// whatsapp-web.js leaves promises nobody awaits (page listeners); log them, don't die of them.
process.on('unhandledRejection', (reason) => {
  log.error(
    { err: reason instanceof Error ? reason : String(reason) },
    'unhandled promise rejection',
  );
});

const engine = await createEngine(
  config,
  log.child({ component: 'engine', engine: config.engine }),
);
const app = buildApp(config, engine, { logger: log });

let stopping = false;
function onSignal(signal) {
  if (stopping) {
    log.warn({ signal }, 'already shutting down');
    return;
  }
  stopping = true;
  log.info({ signal, boundMs: config.shutdownTimeoutMs }, 'signal received; shutting down');
  const bound = setTimeout(() => {
    log.error(
      { boundMs: config.shutdownTimeoutMs },
      'shutdown did not finish in time; exiting anyway',
    );
    process.exit(1);
  }, config.shutdownTimeoutMs);
  bound.unref();
  app.shutdown().then(
    () => {
      log.info('stopped cleanly');
      process.exit(0);
    },
    (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

try {
  await app.listen({ host: config.host, port: config.port });
} catch (err) {
  if (err.code === 'EADDRINUSE')
    stopWithOneLine(`WHATSAPP_PORT ${config.port} is already in use: pick another port`);
  if (err.code === 'EADDRNOTAVAIL')
    stopWithOneLine(`WHATSAPP_HOST ${config.host} is not an address of this machine`);
  log.fatal({ err }, 'could not start');
  process.exit(1);
}
log.info(
  { engine: config.engine, dataDir: config.dataDir, auth: Boolean(config.apiKey) },
  'whatsapp-service ready',
);
