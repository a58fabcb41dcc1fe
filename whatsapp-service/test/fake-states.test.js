import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { buildApp } from '../src/app.js';
import { FAKE_FAILURE_MESSAGES, FAKE_ME, FakeEngine } from '../src/engines/fake.js';
import {
  RecordedEvents,
  authed,
  eventually,
  send,
  silentLog,
  tempDir,
  testConfig,
} from '../test-support/helpers.js';

const UNREACHABLE = 'net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/';

/**
 * A fake-engine app built from `env` as server.js builds it, ready but in whatever state the
 * settings give; `logger` is a pino instance to capture the log.
 */
async function startApp({ env = {}, logger } = {}) {
  const dir = await tempDir({ keep: true });
  const config = testConfig({ WHATSAPP_DATA_DIR: dir, ...env });
  const engine = new FakeEngine({ dataDir: dir, log: silentLog, ...config.fake });
  const events = new RecordedEvents();
  const app = buildApp(config, engine, { events, logger });
  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });
  await app.ready();
  return { app, engine, events };
}

const health = async (app) => (await app.inject({ method: 'GET', url: '/health' })).json();
const fake = (app, url, payload) => app.inject(authed({ method: 'POST', url, payload }));
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A pino logger writing into `lines` (parsed), at `level`. */
function capturedLog(level) {
  const lines = [];
  const logger = pino({ level }, { write: (line) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe('WHATSAPP_FAKE_START_STATE', () => {
  test('STARTING stays STARTING and refuses sends', async () => {
    const { app, events } = await startApp({
      env: { WHATSAPP_FAKE_START_STATE: 'STARTING', WHATSAPP_FAKE_START_DELAY_MS: '1' },
    });
    await pause(30); // far past the start delay that would have made it WORKING
    assert.deepEqual(await health(app), {
      status: 'ok',
      engine: 'fake',
      state: 'STARTING',
      me: null,
      failure: null,
    });
    assert.equal((await send(app)).statusCode, 409);
    assert.deepEqual(events.named('session.status'), [
      { state: 'STARTING', me: null, failure: null },
    ]);
  });

  test('SCAN_QR_CODE shows a new QR every WHATSAPP_FAKE_QR_ROTATE_MS, each a session.qr', async () => {
    const { app, events } = await startApp({
      env: { WHATSAPP_FAKE_START_STATE: 'SCAN_QR_CODE', WHATSAPP_FAKE_QR_ROTATE_MS: '2' },
    });
    await eventually(() => events.named('session.qr').length >= 4, { what: 'four QRs' });
    const qrs = events.named('session.qr').map((event) => event.qr);
    assert.equal(new Set(qrs).size, qrs.length, 'every rotation is a new QR');
    const shown = (await app.inject(authed({ method: 'GET', url: '/session/qr' }))).json();
    assert.ok(events.named('session.qr').some((event) => event.qr === shown.qr));
    // Rotating is not a change of state: one session.status for it, not one per QR.
    assert.deepEqual(
      events.named('session.status').map((status) => status.state),
      ['STARTING', 'SCAN_QR_CODE'],
    );
    assert.equal((await send(app)).statusCode, 409);
  });

  test('FAILED with WHATSAPP_FAKE_FAILURE=code holds the real message for it', async () => {
    const { app, events } = await startApp({
      env: {
        WHATSAPP_FAKE_START_STATE: 'FAILED',
        WHATSAPP_FAKE_FAILURE: 'whatsapp_web_unreachable',
      },
    });
    await eventually(async () => (await health(app)).state === 'FAILED', { what: 'FAILED' });
    const { failure } = await health(app);
    assert.equal(failure.code, 'whatsapp_web_unreachable');
    assert.equal(failure.message, UNREACHABLE);
    assert.ok(!Number.isNaN(Date.parse(failure.since)));
    assert.deepEqual(events.named('session.status'), [
      { state: 'STARTING', me: null, failure: null },
      { state: 'FAILED', me: null, failure },
    ]);
    const refused = await send(app);
    assert.equal(refused.statusCode, 409);
    assert.equal(refused.json().error.code, 'not_ready');
  });

  test('FAILED with WHATSAPP_FAKE_FAILURE=code:message holds that message', async () => {
    const { app } = await startApp({
      env: {
        WHATSAPP_FAKE_START_STATE: 'FAILED',
        WHATSAPP_FAKE_FAILURE: 'profile_locked: Code: 21, the profile is in use',
      },
    });
    await eventually(async () => (await health(app)).state === 'FAILED', { what: 'FAILED' });
    const { failure } = await health(app);
    assert.deepEqual(
      { code: failure.code, message: failure.message },
      { code: 'profile_locked', message: 'Code: 21, the profile is in use' },
    );
  });

  test('NEVER_READY stays STARTING and gets never_ready after the ready timeout', async () => {
    const { app, events } = await startApp({
      env: { WHATSAPP_FAKE_START_STATE: 'NEVER_READY', WHATSAPP_FAKE_READY_TIMEOUT_MS: '5' },
    });
    await eventually(async () => (await health(app)).failure !== null, { what: 'a failure' });
    const now = await health(app);
    assert.equal(now.state, 'STARTING');
    assert.equal(now.failure.code, 'never_ready');
    assert.match(now.failure.message, /never became ready within 5 ms/);
    assert.deepEqual(events.named('session.status'), [
      { state: 'STARTING', me: null, failure: null },
      { state: 'STARTING', me: null, failure: now.failure },
    ]);
    await pause(30); // several more "restarts": still the same, nothing announced
    assert.equal(events.named('session.status').length, 2);
    assert.equal((await send(app)).statusCode, 409);
  });
});

describe('POST /fake/state with a failure', () => {
  test('FAILED and STARTING carry the failure given; WORKING clears it', async () => {
    const { app, events } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });

    const failed = await fake(app, '/fake/state', {
      state: 'FAILED',
      failure: { code: 'chromium_missing' },
    });
    assert.equal(failed.statusCode, 200, failed.body);
    assert.equal(failed.json().state, 'FAILED');
    assert.equal(failed.json().failure.code, 'chromium_missing');
    assert.equal(failed.json().failure.message, FAKE_FAILURE_MESSAGES.chromium_missing);
    assert.deepEqual((await health(app)).failure, failed.json().failure);

    const retrying = await fake(app, '/fake/state', {
      state: 'STARTING',
      failure: { code: 'whatsapp_web_unreachable', message: UNREACHABLE },
    });
    assert.equal(retrying.json().state, 'STARTING');
    assert.equal(retrying.json().failure.message, UNREACHABLE);

    const working = await fake(app, '/fake/state', { state: 'WORKING' });
    assert.deepEqual(working.json(), { state: 'WORKING', me: FAKE_ME, failure: null });
    assert.deepEqual(
      events
        .named('session.status')
        .slice(-3)
        .map((status) => [status.state, status.failure?.code]),
      [
        ['FAILED', 'chromium_missing'],
        ['STARTING', 'whatsapp_web_unreachable'],
        ['WORKING', undefined],
      ],
    );
  });

  test('a new QR ends a failure, as the real engine does, unless it says why one is needed', async () => {
    const { app } = await startApp();
    const move = async (body) => (await fake(app, '/fake/state', body)).json();
    await move({ state: 'FAILED', failure: { code: 'chromium_failed' } });
    assert.equal((await move({ state: 'SCAN_QR_CODE' })).failure, null);
    await move({ state: 'FAILED', failure: { code: 'logged_out' } });
    assert.equal((await move({ state: 'SCAN_QR_CODE' })).failure.code, 'logged_out');
    const loggedOut = await app.inject(authed({ method: 'POST', url: '/session/logout' }));
    assert.equal(loggedOut.statusCode, 204);
    const unlinked = await health(app);
    assert.equal(unlinked.state, 'SCAN_QR_CODE');
    assert.equal(unlinked.failure, null);
  });

  test('FAILED without a failure still says why, as the real engine always does', async () => {
    const { app } = await startApp();
    const failed = await fake(app, '/fake/state', { state: 'FAILED' });
    assert.equal(failed.json().failure.code, 'whatsapp_web_unreachable');
    assert.equal(failed.json().failure.message, UNREACHABLE);
  });

  test('refuses a failure with WORKING and an unknown failure code', async () => {
    const { app } = await startApp();
    const working = await fake(app, '/fake/state', {
      state: 'WORKING',
      failure: { code: 'page_broken' },
    });
    assert.equal(working.statusCode, 400);
    assert.match(working.json().error.message, /WORKING/);
    const unknown = await fake(app, '/fake/state', { state: 'FAILED', failure: { code: 'boom' } });
    assert.equal(unknown.statusCode, 400);
    assert.match(unknown.json().error.message, /^failure\.code must be one of/);
  });

  test('SCAN_QR_CODE rotates at qr_rotate_ms until the session moves on', async () => {
    const { app, events } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    await fake(app, '/fake/state', { state: 'SCAN_QR_CODE', qr_rotate_ms: 2 });
    await eventually(() => events.named('session.qr').length >= 3, { what: 'three QRs' });
    await fake(app, '/fake/state', { state: 'WORKING' });
    const shown = events.named('session.qr').length;
    await pause(30);
    assert.equal(events.named('session.qr').length, shown, 'no QR after linking');
  });

  test('NEVER_READY is a state the route can hold too', async () => {
    const { app } = await startApp();
    const moved = await fake(app, '/fake/state', { state: 'NEVER_READY', ready_timeout_ms: 3 });
    assert.deepEqual(moved.json(), { state: 'STARTING', me: null, failure: null });
    await eventually(async () => (await health(app)).failure?.code === 'never_ready', {
      what: 'never_ready',
    });
  });
});

describe('POST /fake/acks', () => {
  /** Sends one message in `mode`, then one in normal mode and waits for that one's read ack. */
  async function sendIn(app, events, mode) {
    assert.deepEqual((await fake(app, '/fake/acks', { mode })).json(), { mode });
    const { id } = (await send(app)).json();
    await fake(app, '/fake/acks', { mode: 'normal' });
    const { id: later } = (await send(app)).json();
    // The later message's acks come after the earlier one's would have (same delays).
    await eventually(() => events.named('message.ack').some((a) => a.id === later && a.ack === 3));
    const acks = events
      .named('message.ack')
      .filter((a) => a.id === id)
      .map((a) => a.ack);
    const polled = await app.inject(authed({ method: 'GET', url: `/messages/${id}` }));
    return { acks, polled: polled.json().ack };
  }

  for (const [mode, acks] of [
    ['never', []],
    ['stop_at_1', [1]],
    ['stop_at_2', [1, 2]],
    ['normal', [1, 2, 3]],
  ]) {
    test(`${mode}: the acks stop where the mode says and GET /messages/:id agrees`, async () => {
      const { app, events } = await startApp();
      await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
      const seen = await sendIn(app, events, mode);
      assert.deepEqual(seen.acks, acks);
      assert.equal(seen.polled, acks.at(-1) ?? 0);
    });
  }

  test('catch-up: the phones come online; acks below move up, one event each, never back', async () => {
    const { app, engine, events } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    await fake(app, '/fake/acks', { mode: 'stop_at_1' });
    const { id: first } = (await send(app)).json();
    const { id: second } = (await send(app)).json();
    await eventually(() => events.named('message.ack').filter((a) => a.ack === 1).length === 2);
    await fake(app, '/fake/acks', { mode: 'normal' });
    const { id: third } = (await send(app)).json();
    await eventually(() => events.named('message.ack').some((a) => a.id === third && a.ack === 3));

    const caught = await fake(app, '/fake/acks/catch-up', { ack: 3 });
    assert.deepEqual(caught.json(), { ack: 3, moved: 2 });
    const acks = (id) =>
      events
        .named('message.ack')
        .filter((a) => a.id === id)
        .map((a) => a.ack);
    assert.deepEqual(acks(first), [1, 3]);
    assert.deepEqual(acks(second), [1, 3]);
    assert.deepEqual(acks(third), [1, 2, 3], 'already there: no event');
    for (const id of [first, second, third]) {
      const polled = await app.inject(authed({ method: 'GET', url: `/messages/${id}` }));
      assert.equal(polled.json().ack, 3);
    }
    // Kept in the outbox file, as a restart reads it.
    const saved = JSON.parse(await readFile(engine.outboxPath, 'utf8')).messages;
    assert.deepEqual(
      saved.map((message) => message.ack),
      [3, 3, 3],
    );
    assert.deepEqual((await fake(app, '/fake/acks/catch-up', { ack: 2 })).json(), {
      ack: 2,
      moved: 0,
    });
    assert.equal((await fake(app, '/fake/acks/catch-up', { ack: 5 })).statusCode, 400);
  });

  test('refuses an unknown mode', async () => {
    const { app } = await startApp();
    const response = await fake(app, '/fake/acks', { mode: 'sometimes' });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().error.message, /^mode must be one of/);
  });
});

describe('POST /fake/hold', () => {
  test('lets N more sends of a burst out, holds the rest in flight until released', async () => {
    const { app, engine } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    assert.deepEqual((await fake(app, '/fake/hold', { sends: 2 })).json(), { sends: 2, held: 0 });
    let answered = 0;
    const burst = Array.from({ length: 5 }, () =>
      send(app).then((response) => {
        answered += 1;
        return response;
      }),
    );
    await eventually(async () => answered === 2, { what: 'two sends answered' });
    assert.equal(engine.outbox.length, 2);
    assert.deepEqual((await fake(app, '/fake/hold', { sends: 1 })).json(), { sends: 1, held: 2 });
    await eventually(async () => answered === 3, { what: 'one more answered' });
    assert.equal(engine.outbox.length, 3);
    assert.deepEqual((await fake(app, '/fake/hold', { sends: null })).json(), {
      sends: null,
      held: 0,
    });
    const responses = await Promise.all(burst);
    assert.deepEqual(
      responses.map((response) => response.statusCode),
      [201, 201, 201, 201, 201],
    );
    assert.equal(engine.outbox.length, 5);
    assert.equal((await fake(app, '/fake/hold', { sends: -1 })).statusCode, 400);
  });

  test('a held send is refused when the engine stops', async () => {
    const { app, engine } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    await fake(app, '/fake/hold', { sends: 0 });
    const held = send(app);
    await eventually(async () => (await fake(app, '/fake/hold', { sends: 0 })).json().held === 1, {
      what: 'the send held',
    });
    await engine.stop();
    assert.equal((await held).statusCode, 409);
    assert.equal(engine.outbox.length, 0);
  });
});

describe('POST /fake/disconnect', () => {
  test('drops the session after N more sends of a burst; the rest get 409 not_ready', async () => {
    const { app, engine, events } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    const armed = await fake(app, '/fake/disconnect', { after_sends: 2 });
    assert.deepEqual(armed.json(), { after_sends: 2, state: 'STARTING', failure: null });
    const burst = await Promise.all(Array.from({ length: 5 }, () => send(app)));
    assert.deepEqual(
      burst.map((response) => response.statusCode),
      [201, 201, 409, 409, 409],
    );
    assert.ok(burst.slice(2).every((response) => response.json().error.code === 'not_ready'));
    assert.equal(engine.outbox.length, 2);
    assert.equal((await health(app)).state, 'STARTING');
    assert.deepEqual(events.named('session.status').at(-1), {
      state: 'STARTING',
      me: null,
      failure: null,
    });
    assert.equal((await send(app)).statusCode, 409, 'it stays down');
    await fake(app, '/fake/state', { state: 'WORKING' });
    assert.equal((await send(app)).statusCode, 201);
  });

  test('can drop to FAILED with a failure, at once with after_sends 0', async () => {
    const { app } = await startApp();
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    await fake(app, '/fake/disconnect', {
      after_sends: 0,
      state: 'FAILED',
      failure: { code: 'page_broken', message: 'Navigating frame was detached' },
    });
    const now = await health(app);
    assert.equal(now.state, 'FAILED');
    assert.equal(now.failure.code, 'page_broken');
    assert.equal((await send(app)).statusCode, 409);
  });
});

describe('GET /fake/requests', () => {
  test('counts the requests answered by route pattern, the test routes apart', async () => {
    const { app } = await startApp();
    for (let i = 0; i < 12; i += 1) await app.inject({ method: 'GET', url: '/health' });
    await fake(app, '/fake/state', { state: 'WORKING' });
    const sent = [];
    for (let i = 0; i < 3; i += 1) sent.push((await send(app)).json());
    await app.inject(authed({ method: 'GET', url: `/messages/${sent[0].id}` }));
    await app.inject(authed({ method: 'GET', url: `/messages/${sent[1].id}` }));
    await app.inject({ method: 'GET', url: '/contacts' }); // refused 401: answered all the same
    await app.inject(authed({ method: 'GET', url: '/nowhere' }));

    const counts = (await app.inject(authed({ method: 'GET', url: '/fake/requests' }))).json();
    assert.deepEqual(counts, {
      total: 19,
      by_route: {
        'GET /health': 12,
        'POST /messages': 3,
        'GET /messages/:id': 2,
        'GET /contacts': 1,
        'GET (no route)': 1,
      },
      fake: { total: 2, by_route: { 'POST /fake/state': 1, 'GET /fake/requests': 1 } },
    });
  });
});

describe('logs at rest', () => {
  /** What wasched does all day to a session that is not linked: probe, try, fail. */
  async function probeWhileUnlinked(app) {
    for (let i = 0; i < 200; i += 1) await app.inject({ method: 'GET', url: '/health' });
    for (let i = 0; i < 30; i += 1) await send(app);
    for (let i = 0; i < 30; i += 1) await app.inject(authed({ method: 'GET', url: '/session/qr' }));
  }

  test('a session held in SCAN_QR_CODE writes no line per request or per QR at info', async () => {
    const { logger, lines } = capturedLog('info');
    const { app, events } = await startApp({
      logger,
      env: { WHATSAPP_FAKE_START_STATE: 'SCAN_QR_CODE', WHATSAPP_FAKE_QR_ROTATE_MS: '1' },
    });
    await eventually(async () => (await health(app)).state === 'SCAN_QR_CODE');
    const before = lines.length;
    await probeWhileUnlinked(app);
    await eventually(() => events.named('session.qr').length >= 5, { what: 'QR rotations' });
    assert.deepEqual(lines.slice(before), []);
  });

  test('the same requests are logged one line each at debug (the count above can fail)', async () => {
    const { logger, lines } = capturedLog('debug');
    const { app } = await startApp({
      logger,
      env: { WHATSAPP_FAKE_START_STATE: 'SCAN_QR_CODE' },
    });
    const before = lines.length;
    await probeWhileUnlinked(app);
    const answered = lines.slice(before).filter((line) => line.msg === 'request answered');
    assert.equal(answered.length, 260);
    assert.ok(answered.every((line) => !JSON.stringify(line).includes('4915112345678')));
  });

  test('a failed send (5xx) still logs a warning', async () => {
    const { logger, lines } = capturedLog('info');
    const { app } = await startApp({ logger });
    await eventually(async () => (await health(app)).state === 'WORKING', { what: 'WORKING' });
    await fake(app, '/fake/fail', { code: 'send_failed', count: 1 });
    const before = lines.length;
    assert.equal((await send(app)).statusCode, 502);
    const warned = lines.slice(before).filter((line) => line.level === 40);
    assert.equal(warned.length, 1);
    assert.equal(warned[0].code, 'send_failed');
  });
});
