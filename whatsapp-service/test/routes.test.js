import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { buildApp } from '../src/app.js';
import { FAKE_CONTACTS, FAKE_GROUPS, FAKE_ME, FakeEngine } from '../src/engines/fake.js';
import {
  API_KEY,
  RecordedEvents,
  authed,
  eventually,
  send,
  silentLog,
  startFakeApp,
  tempDir,
  testConfig,
} from '../test-support/helpers.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function assertError(response, status, code, messagePart) {
  assert.equal(response.statusCode, status, response.body);
  const body = response.json();
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  if (messagePart) assert.match(body.error.message, messagePart);
}

describe('GET /health', () => {
  test('answers the engine, state and linked account without an API key', async () => {
    const { app } = await startFakeApp();
    const response = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      status: 'ok',
      engine: 'fake',
      state: 'WORKING',
      me: FAKE_ME,
      failure: null,
    });
  });
});

describe('X-Api-Key', () => {
  const routes = [
    ['GET', '/session/qr'],
    ['POST', '/session/pairing-code'],
    ['POST', '/session/logout'],
    ['POST', '/messages'],
    ['GET', '/messages/some-id'],
    ['POST', '/messages/acks'],
    ['GET', '/contacts'],
    ['GET', '/groups'],
    ['GET', '/fake/outbox'],
    ['POST', '/fake/state'],
    ['POST', '/fake/fail'],
    ['POST', '/fake/acks'],
    ['POST', '/fake/acks/catch-up'],
    ['POST', '/fake/disconnect'],
    ['POST', '/fake/hold'],
    ['GET', '/fake/requests'],
    ['POST', '/contacts/check'],
    ['POST', '/fake/numbers'],
  ];

  test('every route but /health refuses a missing or wrong key with 401 unauthorized', async () => {
    const { app } = await startFakeApp();
    for (const [method, url] of routes) {
      assertError(await app.inject({ method, url }), 401, 'unauthorized');
      assertError(
        await app.inject({ method, url, headers: { 'x-api-key': 'wrong' } }),
        401,
        'unauthorized',
      );
    }
  });

  test('a wrong key sends nothing', async () => {
    const { app, engine } = await startFakeApp();
    const response = await app.inject({
      method: 'POST',
      url: '/messages',
      headers: { 'x-api-key': `${API_KEY}x` },
      payload: { to: '+4915112345678', text: 'hi', idempotency_key: 'k' },
    });
    assertError(response, 401, 'unauthorized');
    assert.equal(engine.outbox.length, 0);
  });

  test('an app built without a key trusts no caller (loadConfig refuses to start without one)', async () => {
    const dataDir = await tempDir();
    const config = { ...testConfig({ WHATSAPP_DATA_DIR: dataDir }), apiKey: null };
    const engine = new FakeEngine({ dataDir, log: silentLog, ...config.fake });
    const app = buildApp(config, engine, { events: new RecordedEvents() });
    after(() => app.close());
    await app.ready();
    for (const headers of [{}, { 'x-api-key': '' }, { 'x-api-key': 'null' }]) {
      const response = await app.inject({ method: 'GET', url: '/contacts', headers });
      assertError(response, 401, 'unauthorized');
    }
  });
});

describe('POST /messages', () => {
  test('sends to +E164 and answers 201 with id, chat id, timestamp and duplicate false', async () => {
    const { app, engine } = await startFakeApp();
    const response = await send(app, {
      to: '+4915112345678',
      text: 'Happy birthday',
      idempotency_key: 'run-1:+49',
    });
    assert.equal(response.statusCode, 201);
    const body = response.json();
    assert.deepEqual(Object.keys(body).sort(), ['duplicate', 'id', 'timestamp', 'to']);
    assert.equal(body.to, '4915112345678@c.us');
    assert.equal(body.duplicate, false);
    assert.ok(!Number.isNaN(Date.parse(body.timestamp)));
    assert.equal(engine.outbox.length, 1);
    assert.equal(engine.outbox[0].id, body.id);
    assert.equal(engine.outbox[0].text, 'Happy birthday');
    assert.equal(engine.outbox[0].idempotency_key, 'run-1:+49');
  });

  test('accepts digits@c.us and group ids', async () => {
    const { app } = await startFakeApp();
    const person = await send(app, { to: '4915112345678@c.us' });
    assert.equal(person.statusCode, 201);
    assert.equal(person.json().to, '4915112345678@c.us');
    const group = await send(app, { to: '120363000000000001@g.us' });
    assert.equal(group.statusCode, 201);
    assert.equal(group.json().to, '120363000000000001@g.us');
  });

  test('sends media with the text as caption', async () => {
    const { app, engine } = await startFakeApp();
    const data = Buffer.from('not really a png').toString('base64');
    const response = await send(app, {
      text: '',
      media: { mimetype: 'image/png', filename: 'card.png', data_base64: data },
    });
    assert.equal(response.statusCode, 201, response.body);
    assert.deepEqual(engine.outbox[0].media, {
      mimetype: 'image/png',
      filename: 'card.png',
      bytes: 16,
    });
  });

  test('names the field of an invalid body with 400 invalid_request', async () => {
    const { app, engine } = await startFakeApp();
    const cases = [
      [{ to: '4915112345678' }, /^to /],
      [{ to: '+49 151 1234' }, /^to /],
      [{ to: undefined }, /^to is required/],
      [{ text: undefined }, /^text is required/],
      [{ text: 42 }, /^text /],
      [{ text: '   ' }, /^text /],
      [{ idempotency_key: undefined }, /^idempotency_key is required/],
      [{ idempotency_key: '' }, /^idempotency_key /],
      [{ media: { mimetype: 'image/png' } }, /^media\.data_base64 is required/],
      [{ media: { mimetype: 'image/png', data_base64: 'not base64!' } }, /^media\.data_base64 /],
      [{ media: { mimetype: 'png', data_base64: 'AAAA' } }, /^media\.mimetype /],
    ];
    for (const [change, message] of cases) {
      assertError(await send(app, change), 400, 'invalid_request', message);
    }
    assert.equal(engine.outbox.length, 0);
  });

  test('refuses a body that is not JSON with 400 invalid_request', async () => {
    const { app } = await startFakeApp();
    const broken = await app.inject(
      authed({
        method: 'POST',
        url: '/messages',
        headers: { 'content-type': 'application/json' },
        payload: '{"to":',
      }),
    );
    assertError(broken, 400, 'invalid_request', /JSON/);
    const missing = await app.inject(authed({ method: 'POST', url: '/messages' }));
    assertError(missing, 400, 'invalid_request', /body/);
    const text = await app.inject(
      authed({
        method: 'POST',
        url: '/messages',
        headers: { 'content-type': 'text/plain' },
        payload: 'hello',
      }),
    );
    assertError(text, 400, 'invalid_request', /^body must be object/);
  });

  test('refuses with 409 not_ready while the account is not linked', async () => {
    const { app, engine } = await startFakeApp();
    for (const state of ['SCAN_QR_CODE', 'STARTING', 'FAILED', 'STOPPED']) {
      await app.inject(authed({ method: 'POST', url: '/fake/state', payload: { state } }));
      assertError(await send(app), 409, 'not_ready', new RegExp(state));
    }
    assert.equal(engine.outbox.length, 0);
  });

  for (const [code, status] of [
    ['not_on_whatsapp', 404],
    ['send_failed', 502],
    ['not_ready', 409],
    ['invalid_request', 400],
  ]) {
    test(`an injected ${code} answers ${status} and records nothing`, async () => {
      const { app, engine } = await startFakeApp();
      const armed = await app.inject(
        authed({ method: 'POST', url: '/fake/fail', payload: { code, count: 2 } }),
      );
      assert.deepEqual(armed.json(), { code, count: 2, after_send: false });
      assertError(await send(app, { idempotency_key: 'same' }), status, code);
      assertError(await send(app, { idempotency_key: 'same' }), status, code);
      const third = await send(app, { idempotency_key: 'same' });
      assert.equal(third.statusCode, 201);
      assert.equal(third.json().duplicate, false, 'a failed send must not count as sent');
      assert.equal(engine.outbox.length, 1);
    });
  }
});

describe('GET /messages/:id', () => {
  test('follows the acks 1, 2, 3 and announces each as message.ack', async () => {
    const { app, events } = await startFakeApp();
    const { id } = (await send(app)).json();
    await eventually(() => events.named('message.ack').length === 3, { what: 'three acks' });
    assert.deepEqual(events.named('message.ack'), [
      { id, ack: 1 },
      { id, ack: 2 },
      { id, ack: 3 },
    ]);
    const response = await app.inject(
      authed({ method: 'GET', url: `/messages/${encodeURIComponent(id)}` }),
    );
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { id, ack: 3 });
  });

  test('answers 404 not_found for a message this account never sent', async () => {
    const { app } = await startFakeApp();
    assertError(
      await app.inject(authed({ method: 'GET', url: '/messages/true_1@c.us_NOPE' })),
      404,
      'not_found',
    );
  });
});

describe('POST /messages/acks', () => {
  const acksOf = (app, ids) =>
    app.inject(authed({ method: 'POST', url: '/messages/acks', payload: { ids } }));

  test('answers each id as GET /messages/:id would, null for one never sent, once each', async () => {
    const { app, events } = await startFakeApp();
    const { id: first } = (await send(app)).json();
    const { id: second } = (await send(app, { idempotency_key: 'another' })).json();
    await eventually(() => events.named('message.ack').length === 6, { what: 'six acks' });
    const response = await acksOf(app, [first, 'true_1@c.us_NOPE', second, first]);
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      acks: [
        { id: first, ack: 3 },
        { id: 'true_1@c.us_NOPE', ack: null },
        { id: second, ack: 3 },
      ],
    });
  });

  test('refuses no ids, more than 100, or an empty id with 400 invalid_request', async () => {
    const { app } = await startFakeApp();
    for (const ids of [[], Array.from({ length: 101 }, (_, n) => `id-${n}`), ['']]) {
      assertError(await acksOf(app, ids), 400, 'invalid_request');
    }
    assertError(
      await app.inject(authed({ method: 'POST', url: '/messages/acks', payload: {} })),
      400,
      'invalid_request',
    );
  });
});

describe('linking', () => {
  test('GET /session/qr is 409 not_ready while linked', async () => {
    const { app } = await startFakeApp();
    assertError(
      await app.inject(authed({ method: 'GET', url: '/session/qr' })),
      409,
      'not_ready',
      /linked/,
    );
  });

  test('GET /session/qr is 409 not_ready while starting or failed', async () => {
    const { app } = await startFakeApp();
    for (const state of ['STARTING', 'FAILED', 'STOPPED']) {
      await app.inject(authed({ method: 'POST', url: '/fake/state', payload: { state } }));
      assertError(
        await app.inject(authed({ method: 'GET', url: '/session/qr' })),
        409,
        'not_ready',
      );
    }
  });

  test('in SCAN_QR_CODE the QR is given raw and as a PNG, and announced as events', async () => {
    const { app, events } = await startFakeApp();
    const moved = await app.inject(
      authed({ method: 'POST', url: '/fake/state', payload: { state: 'SCAN_QR_CODE' } }),
    );
    assert.deepEqual(moved.json(), { state: 'SCAN_QR_CODE', me: null, failure: null });
    const response = await app.inject(authed({ method: 'GET', url: '/session/qr' }));
    assert.equal(response.statusCode, 200);
    const { qr, png_base64: png } = response.json();
    assert.ok(qr.length > 20);
    assert.deepEqual(Buffer.from(png, 'base64').subarray(0, 8), PNG_SIGNATURE);
    assert.deepEqual(events.named('session.qr').at(-1), { qr });
    assert.deepEqual(events.named('session.status').at(-1), {
      state: 'SCAN_QR_CODE',
      me: null,
      failure: null,
    });
  });

  test('POST /session/pairing-code gives an 8-character code while linking', async () => {
    const { app } = await startFakeApp();
    await app.inject(
      authed({ method: 'POST', url: '/fake/state', payload: { state: 'SCAN_QR_CODE' } }),
    );
    const response = await app.inject(
      authed({
        method: 'POST',
        url: '/session/pairing-code',
        payload: { phone: '+4915112345678' },
      }),
    );
    assert.equal(response.statusCode, 200);
    assert.match(response.json().code, /^[A-Z0-9]{8}$/);
  });

  test('POST /session/pairing-code is 409 when linked and 400 without a valid phone', async () => {
    const { app } = await startFakeApp();
    const linked = await app.inject(
      authed({
        method: 'POST',
        url: '/session/pairing-code',
        payload: { phone: '+4915112345678' },
      }),
    );
    assertError(linked, 409, 'not_ready');
    await app.inject(
      authed({ method: 'POST', url: '/fake/state', payload: { state: 'SCAN_QR_CODE' } }),
    );
    for (const payload of [{}, { phone: '12' }, { phone: 'abc' }]) {
      const response = await app.inject(
        authed({ method: 'POST', url: '/session/pairing-code', payload }),
      );
      assertError(response, 400, 'invalid_request', /^phone /);
    }
  });

  test('POST /session/logout answers 204 and the session asks for a new QR', async () => {
    const { app, engine, events } = await startFakeApp();
    const response = await app.inject(authed({ method: 'POST', url: '/session/logout' }));
    assert.equal(response.statusCode, 204);
    assert.equal(response.body, '');
    assert.equal(engine.state, 'SCAN_QR_CODE');
    assert.deepEqual(events.named('session.status').at(-1), {
      state: 'SCAN_QR_CODE',
      me: null,
      failure: null,
    });
    assert.equal((await app.inject(authed({ method: 'GET', url: '/session/qr' }))).statusCode, 200);
  });
});

describe('session events', () => {
  test('start-up announces STARTING then WORKING with the account', async () => {
    const { events } = await startFakeApp();
    assert.deepEqual(events.named('session.status'), [
      { state: 'STARTING', me: null, failure: null },
      { state: 'WORKING', me: FAKE_ME, failure: null },
    ]);
  });
});

describe('contacts and groups', () => {
  test('list the fixed address book while linked', async () => {
    const { app } = await startFakeApp();
    const contacts = await app.inject(authed({ method: 'GET', url: '/contacts' }));
    assert.deepEqual(contacts.json(), FAKE_CONTACTS);
    const groups = await app.inject(authed({ method: 'GET', url: '/groups' }));
    assert.deepEqual(groups.json(), FAKE_GROUPS);
  });

  test('are 409 not_ready while not linked', async () => {
    const { app } = await startFakeApp();
    await app.inject(
      authed({ method: 'POST', url: '/fake/state', payload: { state: 'SCAN_QR_CODE' } }),
    );
    assertError(await app.inject(authed({ method: 'GET', url: '/contacts' })), 409, 'not_ready');
    assertError(await app.inject(authed({ method: 'GET', url: '/groups' })), 409, 'not_ready');
  });
});

describe('POST /contacts/check (fake engine)', () => {
  const GONE = '+4915199999999';
  const check = (app, numbers) =>
    app.inject(authed({ method: 'POST', url: '/contacts/check', payload: { numbers } }));
  const numbers = (app, list) =>
    app.inject(
      authed({ method: 'POST', url: '/fake/numbers', payload: { not_on_whatsapp: list } }),
    );

  test('answers each number as wwebjs does; the ones WHATSAPP_FAKE_NOT_ON_WHATSAPP names are not on WhatsApp', async () => {
    const { app } = await startFakeApp({ env: { WHATSAPP_FAKE_NOT_ON_WHATSAPP: GONE } });
    const response = await check(app, ['+4915112345678', GONE]);
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      numbers: [
        { number: '+4915112345678', on_whatsapp: true, whatsapp_id: '4915112345678@c.us' },
        { number: GONE, on_whatsapp: false, whatsapp_id: null },
      ],
    });
  });

  test('POST /fake/numbers sets them; a send to one is 404 not_on_whatsapp and goes nowhere', async () => {
    const { app, engine } = await startFakeApp();
    assert.equal((await numbers(app, [GONE])).statusCode, 200);
    assert.equal((await check(app, [GONE])).json().numbers[0].on_whatsapp, false);
    assertError(await send(app, { to: GONE }), 404, 'not_on_whatsapp', /is not on WhatsApp/);
    assertError(await send(app, { to: '4915199999999@c.us' }), 404, 'not_on_whatsapp');
    assert.equal((await send(app, { to: '+4915112345678' })).statusCode, 201);
    assert.equal(engine.outbox.length, 1);
    await numbers(app, []);
    assert.equal((await send(app, { to: GONE })).statusCode, 201);
    assertError(await numbers(app, ['4915199999999']), 400, 'invalid_request');
  });

  test('is 409 not_ready while not linked, and refuses a bad batch with 400', async () => {
    const { app } = await startFakeApp();
    assertError(await check(app, ['+4915112345678', '12']), 400, 'invalid_request', /numbers/);
    assertError(await check(app, []), 400, 'invalid_request');
    const many = Array.from({ length: 51 }, (_, i) => `+49151000000${String(i).padStart(2, '0')}`);
    assertError(await check(app, many), 400, 'invalid_request');
    await app.inject(
      authed({ method: 'POST', url: '/fake/state', payload: { state: 'SCAN_QR_CODE' } }),
    );
    assertError(await check(app, ['+4915112345678']), 409, 'not_ready');
  });

  test('/fake/fail reachout_limited fails the next send 403 as WhatsApp error 463 does', async () => {
    const { app, engine } = await startFakeApp();
    await app.inject(
      authed({ method: 'POST', url: '/fake/fail', payload: { code: 'reachout_limited' } }),
    );
    assertError(await send(app), 403, 'reachout_limited', /error 463/);
    assert.equal(engine.outbox.length, 0);
  });
});

describe('fake test routes', () => {
  test('/fake/state refuses an unknown state and /fake/fail an unknown code', async () => {
    const { app } = await startFakeApp();
    const state = await app.inject(
      authed({ method: 'POST', url: '/fake/state', payload: { state: 'ONLINE' } }),
    );
    assertError(state, 400, 'invalid_request', /^state must be one of/);
    const fail = await app.inject(
      authed({ method: 'POST', url: '/fake/fail', payload: { code: 'boom', count: 1 } }),
    );
    assertError(fail, 400, 'invalid_request', /^code must be one of/);
  });

  test('unknown routes answer 404 not_found in the contract shape', async () => {
    const { app } = await startFakeApp();
    assertError(await app.inject(authed({ method: 'GET', url: '/nowhere' })), 404, 'not_found');
  });
});

describe('shutdown', () => {
  test('refuses new sends with 503 shutting_down while the one in flight finishes', async () => {
    const { app, engine } = await startFakeApp({ env: { WHATSAPP_FAKE_SEND_DELAY_MS: '200' } });
    const inFlight = send(app, { idempotency_key: 'in-flight' });
    await eventually(() => engine.sendsInFlight === 1, { what: 'send in flight' });
    const closing = app.shutdown();
    const refused = await send(app, { idempotency_key: 'late' });
    assertError(refused, 503, 'shutting_down');
    assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
    const finished = await inFlight;
    assert.equal(finished.statusCode, 201);
    await closing;
    assert.equal(engine.state, 'STOPPED');
    assert.deepEqual(
      engine.outbox.map((message) => message.idempotency_key),
      ['in-flight'],
    );
  });
});
