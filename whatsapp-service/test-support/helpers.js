import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { FakeEngine } from '../src/engines/fake.js';

export const API_KEY = 'test-key-0123456789';
export const silentLog = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child() {
    return silentLog;
  },
};

/** A fresh data directory, removed after the current test unless `keep`. */
export async function tempDir({ keep = false } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'wasched-wa-'));
  if (!keep) after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Settings as loadConfig reads them, without the repo's .env and with quiet logs. */
export function testConfig(env = {}) {
  return loadConfig({
    env: {
      WHATSAPP_ENV_FILE: '',
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_LOG_LEVEL: 'silent',
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_ACK_DELAYS_MS: '1,1,1',
      ...env,
    },
  });
}

/** Stands in for the event forwarder and records what the app asked it to deliver. */
export class RecordedEvents {
  events = [];
  closed = false;
  async start() {}
  push(event, payload) {
    this.events.push({ event, payload });
  }
  async close() {
    this.closed = true;
    return 0;
  }
  named(event) {
    return this.events.filter((item) => item.event === event).map((item) => item.payload);
  }
}

/** Waits (bounded) until `check()` is truthy; fails the test if it never is. */
export async function eventually(check, { what = 'condition', attempts = 2000 } = {}) {
  for (let i = 0; i < attempts; i += 1) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A fake-engine app on a temp data dir, closed after the test file; ready and WORKING. */
export async function startFakeApp({ env = {}, dataDir } = {}) {
  const dir = dataDir ?? (await tempDir({ keep: true }));
  const config = testConfig({ WHATSAPP_DATA_DIR: dir, ...env });
  const engine = new FakeEngine({ dataDir: dir, log: silentLog, ...config.fake });
  const events = new RecordedEvents();
  const app = buildApp(config, engine, { events });
  after(async () => {
    await app.close();
    if (!dataDir) await rm(dir, { recursive: true, force: true });
  });
  await app.ready();
  await eventually(() => engine.state === 'WORKING', { what: 'WORKING' });
  return { app, engine, events, config, dataDir: dir };
}

export function authed(options) {
  return { ...options, headers: { 'x-api-key': API_KEY, ...(options.headers ?? {}) } };
}

let counter = 0;
export function send(app, body = {}) {
  counter += 1;
  return app.inject(
    authed({
      method: 'POST',
      url: '/messages',
      payload: { to: '+4915112345678', text: 'hello', idempotency_key: `key-${counter}`, ...body },
    }),
  );
}
