import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildApp } from '../src/app.js';
import { FakeEngine } from '../src/engines/fake.js';
import { EventForwarder, PENDING_EVENTS_FILE } from '../src/events.js';
import {
  API_KEY,
  RecordedEvents,
  eventually,
  send,
  silentLog,
  tempDir,
  testConfig,
} from '../test-support/helpers.js';

/**
 * wasched's event endpoint on a free local port. `answer(n)` gives the status for the n-th
 * request (from 1); every request is recorded.
 */
async function eventsServer(answer = () => 200) {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(body) });
      res.statusCode = answer(received.length);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/whatsapp/events`, received };
}

function forwarder(url, options = {}) {
  const events = new EventForwarder({
    url,
    apiKey: API_KEY,
    log: silentLog,
    retryMinMs: 1,
    retryMaxMs: 4,
    ...options,
  });
  after(() => events.close({ timeoutMs: 10 }));
  return events;
}

const names = (received) => received.map((item) => item.body.payload.n);

/**
 * fetch as wasched's endpoint answers it: refused (as undici throws it) while `down(n)` is
 * true for the n-th call (from 1), else 200. Records every call.
 */
function fakeFetch(down = () => false) {
  const calls = [];
  const fetch = async (url, { body }) => {
    calls.push(JSON.parse(body));
    if (down(calls.length)) {
      const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8001'), {
        code: 'ECONNREFUSED',
      });
      throw new TypeError('fetch failed', { cause: refused });
    }
    return new Response(null, { status: 200 });
  };
  return { fetch, calls };
}

/** A log that keeps every line with its level. */
function recordingLog() {
  const lines = [];
  const log = {};
  for (const level of ['debug', 'info', 'warn', 'error']) {
    log[level] = (fields, msg) => lines.push({ level, msg: msg ?? fields, fields });
  }
  log.child = () => log;
  const at = (level) => lines.filter((line) => line.level === level);
  return { log, lines, at };
}

async function readPending(dir) {
  return JSON.parse(await readFile(join(dir, PENDING_EVENTS_FILE), 'utf8')).events;
}

describe('EventForwarder', () => {
  test('posts {event, payload, timestamp} in order with the X-Api-Key header', async () => {
    const server = await eventsServer();
    const events = forwarder(server.url);
    events.push('session.status', { n: 1 });
    events.push('message.ack', { n: 2 });
    events.push('session.qr', { n: 3 });
    await events.idle();
    assert.deepEqual(names(server.received), [1, 2, 3]);
    const [first] = server.received;
    assert.equal(first.headers['x-api-key'], API_KEY);
    assert.equal(first.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(first.body).sort(), ['event', 'payload', 'timestamp']);
    assert.equal(first.body.event, 'session.status');
    assert.ok(!Number.isNaN(Date.parse(first.body.timestamp)));
  });

  test('retries a failed event before sending the next, keeping the order', async () => {
    const server = await eventsServer((n) => (n <= 3 ? 503 : 200));
    const events = forwarder(server.url);
    events.push('message.ack', { n: 1 });
    events.push('message.ack', { n: 2 });
    await events.idle();
    assert.deepEqual(names(server.received), [1, 1, 1, 1, 2]);
  });

  test('retries while wasched is down and delivers once it is up', async () => {
    const server = await eventsServer();
    const events = forwarder('http://127.0.0.1:9/unreachable');
    events.push('message.ack', { n: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(events.pending, 1);
    events.url = server.url; // as if wasched came up at this address
    await events.idle();
    assert.deepEqual(names(server.received), [1]);
  });

  test('drops an event that wasched refuses as invalid (4xx) and goes on', async () => {
    const server = await eventsServer((n) => (n === 1 ? 400 : 200));
    const events = forwarder(server.url);
    events.push('message.ack', { n: 1 });
    events.push('message.ack', { n: 2 });
    await events.idle();
    assert.deepEqual(names(server.received), [1, 2]);
  });

  test('keeps at most maxQueue events in memory, dropping the oldest', async () => {
    const events = forwarder('http://127.0.0.1:9/unreachable', {
      maxQueue: 2,
      retryMinMs: 1000,
      retryMaxMs: 1000,
    });
    for (let n = 1; n <= 5; n += 1) events.push('message.ack', { n });
    assert.equal(events.pending, 2);
    assert.equal(events.dropped, 3);
  });

  test('close delivers what is queued, then refuses new events', async () => {
    const server = await eventsServer();
    const events = forwarder(server.url);
    for (let n = 1; n <= 3; n += 1) events.push('message.ack', { n });
    assert.equal(await events.close({ timeoutMs: 5000 }), 0);
    assert.deepEqual(names(server.received), [1, 2, 3]);
    events.push('message.ack', { n: 4 });
    assert.equal(events.pending, 0);
  });

  test('close gives up after its bound when wasched is unreachable and says how many were lost', async () => {
    const events = forwarder('http://127.0.0.1:9/unreachable');
    events.push('message.ack', { n: 1 });
    events.push('message.ack', { n: 2 });
    assert.equal(await events.close({ timeoutMs: 30 }), 2);
  });
});

describe('EventForwarder while wasched is down', () => {
  test('a long outage logs one warning when it starts and one line when events flow again', async () => {
    const { log, at } = recordingLog();
    const { fetch, calls } = fakeFetch((n) => n <= 300);
    const events = forwarder('http://wasched/events', { fetch, log, retryMinMs: 0, retryMaxMs: 0 });
    for (let n = 1; n <= 3; n += 1) events.push('message.ack', { n });
    await events.idle();
    assert.equal(calls.length, 303, 'the first event was retried 300 times');
    assert.deepEqual(
      calls.slice(-3).map((body) => body.payload.n),
      [1, 2, 3],
    );
    assert.deepEqual(
      at('warn').map((line) => line.msg),
      ['wasched is not taking events; they wait in the queue and are retried'],
    );
    assert.equal(at('warn')[0].fields.reason, 'ECONNREFUSED');
    assert.deepEqual(
      at('info').map((line) => [line.msg, line.fields.failedAttempts]),
      [['wasched takes events again', 300]],
    );
    assert.equal(at('error').length, 0);
  });

  test('each outage is one warning and one recovery line', async () => {
    const { log, at } = recordingLog();
    const { fetch } = fakeFetch((n) => n <= 50 || (n > 52 && n <= 150));
    const events = forwarder('http://wasched/events', { fetch, log, retryMinMs: 0, retryMaxMs: 0 });
    for (let n = 1; n <= 4; n += 1) events.push('message.ack', { n });
    await events.idle();
    assert.equal(at('warn').length, 2);
    assert.equal(at('info').length, 2);
  });

  test('close with wasched already down tries nothing and keeps the events in a file', async () => {
    const dir = await tempDir();
    const { log } = recordingLog();
    const { fetch, calls } = fakeFetch(() => true);
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    const events = forwarder('http://wasched/events', { fetch, log, pendingPath });
    for (let n = 1; n <= 5; n += 1) events.push('message.ack', { n });
    await eventually(() => calls.length >= 3, { what: 'retries' });
    const before = calls.length;
    assert.equal(await events.close({ timeoutMs: 5000 }), 5);
    assert.equal(calls.length, before, 'no attempt at close');
    const kept = await readPending(dir);
    assert.deepEqual(
      kept.map((item) => [item.event, item.payload.n]),
      [1, 2, 3, 4, 5].map((n) => ['message.ack', n]),
    );
    assert.ok(kept.every((item) => !Number.isNaN(Date.parse(item.timestamp))));
    assert.equal((await stat(pendingPath)).mode & 0o777, 0o600);
  });

  test('close that finds wasched gone tries once, not once per event', async () => {
    const dir = await tempDir();
    const { fetch, calls } = fakeFetch(() => true);
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    const events = forwarder('http://wasched/events', { fetch, pendingPath });
    for (let n = 1; n <= 3; n += 1) events.push('message.ack', { n });
    assert.equal(await events.close({ timeoutMs: 5000 }), 3);
    assert.equal(calls.length, 1);
    assert.equal((await readPending(dir)).length, 3);
  });

  test('a new forwarder on the same file sends the kept events first, in order', async () => {
    const dir = await tempDir();
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    const down = fakeFetch(() => true);
    const first = forwarder('http://wasched/events', { fetch: down.fetch, pendingPath });
    first.push('session.status', { n: 1 });
    first.push('message.ack', { n: 2 });
    await first.close({ timeoutMs: 5000 });
    const kept = await readPending(dir);

    const { log, at } = recordingLog();
    const up = fakeFetch();
    const second = forwarder('http://wasched/events', { fetch: up.fetch, pendingPath, log });
    await second.start();
    second.push('session.status', { n: 3 });
    await second.idle();
    assert.deepEqual(
      up.calls.map((body) => body.payload.n),
      [1, 2, 3],
    );
    assert.deepEqual(up.calls.slice(0, 2), kept, 'sent as they were queued, timestamps too');
    await assert.rejects(stat(pendingPath), { code: 'ENOENT' });
    assert.deepEqual(
      at('info').map((line) => [line.msg, line.fields.events]),
      [['events kept from the last run; sending them first', 2]],
    );
    assert.equal(await second.close(), 0);
    await assert.rejects(stat(pendingPath), { code: 'ENOENT' }, 'nothing left, no file');
  });

  test('kept events beyond maxQueue lose the oldest, with one line saying so', async () => {
    const dir = await tempDir();
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    const stored = [1, 2, 3, 4, 5].map((n) => ({
      event: 'message.ack',
      payload: { n },
      timestamp: '2026-01-01T00:00:00.000Z',
    }));
    await writeFile(pendingPath, JSON.stringify({ version: 1, events: stored }));
    const { log, at } = recordingLog();
    const up = fakeFetch();
    const events = forwarder('http://wasched/events', {
      fetch: up.fetch,
      pendingPath,
      log,
      maxQueue: 3,
    });
    await events.start();
    await events.idle();
    assert.deepEqual(
      up.calls.map((body) => body.payload.n),
      [3, 4, 5],
    );
    assert.equal(events.dropped, 2);
    assert.equal(at('warn').length, 1);
  });

  test('while wasched is down the queue is on disk; once it drains the file goes', async () => {
    const dir = await tempDir();
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    let up = false;
    const { fetch, calls } = fakeFetch(() => !up);
    const events = forwarder('http://wasched/events', { fetch, pendingPath, retryMaxMs: 20 });
    await events.start();
    events.push('message.ack', { n: 1 });
    events.push('message.ack', { n: 2 });
    await eventually(async () => {
      try {
        return (await readPending(dir)).length === 2;
      } catch {
        return false;
      }
    });
    up = true;
    await events.idle();
    assert.deepEqual(
      calls.filter((body) => body.payload.n === 2).length,
      1,
      'each delivered once',
    );
    await assert.rejects(stat(pendingPath), { code: 'ENOENT' });
  });

  test('an event pushed while the file is last written is sent, not left behind', async () => {
    const dir = await tempDir();
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    const { log } = recordingLog();
    const { fetch, calls } = fakeFetch((n) => n === 1);
    let events;
    const info = log.info;
    // The line 'wasched takes events again' comes just before the queue is written out; an
    // event from the engine lands in the next microtask, while that write is under way.
    log.info = (fields, msg) => {
      info(fields, msg);
      if (msg === 'wasched takes events again') {
        queueMicrotask(() => events.push('message.ack', { n: 2 }));
      }
    };
    events = forwarder('http://wasched/events', { fetch, pendingPath, log });
    await events.start();
    events.push('message.ack', { n: 1 });
    await eventually(() => calls.some((body) => body.payload.n === 2), { what: 'the late event' });
    await events.idle();
    assert.deepEqual(
      calls.map((body) => body.payload.n),
      [1, 1, 2],
    );
  });

  test('close without start keeps what an earlier run kept ahead of its own events', async () => {
    const dir = await tempDir();
    const pendingPath = join(dir, PENDING_EVENTS_FILE);
    const earlier = { event: 'message.ack', payload: { n: 1 }, timestamp: '2026-01-01T00:00:00Z' };
    await writeFile(pendingPath, JSON.stringify({ version: 1, events: [earlier] }));
    const { fetch } = fakeFetch(() => true);
    const events = forwarder('http://wasched/events', { fetch, pendingPath });
    events.push('message.ack', { n: 2 });
    await events.close({ timeoutMs: 5000 });
    assert.deepEqual(
      (await readPending(dir)).map((item) => item.payload.n),
      [1, 2],
    );
  });
});

describe('the app forwards engine events', () => {
  test('session.status, message.ack reach WHATSAPP_EVENTS_URL with the API key', async () => {
    const server = await eventsServer();
    const dataDir = await tempDir();
    const config = testConfig({ WHATSAPP_DATA_DIR: dataDir, WHATSAPP_EVENTS_URL: server.url });
    const engine = new FakeEngine({ dataDir, log: silentLog, ...config.fake });
    const app = buildApp(config, engine);
    after(() => app.close());
    await app.ready();
    await eventually(() => engine.state === 'WORKING');
    const { id } = (await send(app)).json();
    await eventually(
      () => server.received.filter((item) => item.body.event === 'message.ack').length === 3,
    );
    await app.close();

    const bodies = server.received.map((item) => item.body);
    assert.deepEqual(
      bodies.filter((body) => body.event === 'session.status').map((body) => body.payload.state),
      ['STARTING', 'WORKING', 'STOPPED'],
    );
    assert.deepEqual(
      bodies.filter((body) => body.event === 'message.ack').map((body) => body.payload),
      [
        { id, ack: 1 },
        { id, ack: 2 },
        { id, ack: 3 },
      ],
    );
    assert.ok(server.received.every((item) => item.headers['x-api-key'] === API_KEY));
  });

  test('events queued while wasched is down survive a restart and are sent first', async () => {
    const dataDir = await tempDir();
    const down = testConfig({
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/refused',
      WHATSAPP_EVENTS_RETRY_MIN_MS: '1',
      WHATSAPP_EVENTS_RETRY_MAX_MS: '1',
    });
    const first = buildApp(down, new FakeEngine({ dataDir, log: silentLog, ...down.fake }));
    await first.ready();
    await eventually(
      async () => (await first.inject({ url: '/health' })).json().state === 'WORKING',
    );
    await first.close();
    const kept = await readPending(dataDir);
    assert.deepEqual(
      kept.map((item) => item.payload.state),
      ['STARTING', 'WORKING', 'STOPPED'],
    );

    const server = await eventsServer();
    const up = testConfig({ WHATSAPP_DATA_DIR: dataDir, WHATSAPP_EVENTS_URL: server.url });
    const engine = new FakeEngine({ dataDir, log: silentLog, ...up.fake });
    const second = buildApp(up, engine);
    after(() => second.close());
    await second.ready();
    await eventually(() => server.received.length >= 5, { what: 'five events' });
    assert.deepEqual(
      server.received.map((item) => item.body.payload.state),
      ['STARTING', 'WORKING', 'STOPPED', 'STARTING', 'WORKING'],
    );
    assert.deepEqual(
      server.received.slice(0, 3).map((item) => item.body),
      kept,
    );
  });
});

describe('events waiting out a backoff go as soon as wasched is heard from', () => {
  test('retrySoon() ends the backoff of an outage at once, and only during one', async () => {
    let up = false;
    const { fetch, calls } = fakeFetch(() => !up);
    // A backoff far longer than the test: only retrySoon() can end it in time.
    const events = forwarder('http://wasched.test/events', {
      fetch,
      retryMinMs: 600000,
      retryMaxMs: 600000,
      retrySoonMinMs: 0,
    });
    events.retrySoon(); // no outage yet: nothing to do
    events.push('session.status', { n: 1 });
    await eventually(() => calls.length === 1);
    const tried = calls.length;
    up = true;
    events.retrySoon();
    const outcome = await Promise.race([
      events.idle().then(() => 'delivered'),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 3000)),
    ]);
    assert.equal(outcome, 'delivered');
    assert.equal(calls.length, tried + 1);
  });

  test('the app calls it on requests that carry the API key, not on others', async () => {
    const dataDir = await tempDir();
    const config = testConfig({ WHATSAPP_DATA_DIR: dataDir });
    const engine = new FakeEngine({ dataDir, log: silentLog, ...config.fake });
    let heard = 0;
    const events = Object.assign(new RecordedEvents(), { retrySoon: () => (heard += 1) });
    const app = buildApp(config, engine, { events });
    after(() => app.close());
    await app.ready();

    await app.inject({ method: 'GET', url: '/health' });
    await app.inject({ method: 'GET', url: '/health', headers: { 'x-api-key': 'wrong' } });
    await app.inject({ method: 'GET', url: '/contacts' });
    assert.equal(heard, 0);
    await app.inject({ method: 'GET', url: '/health', headers: { 'x-api-key': API_KEY } });
    assert.equal(heard, 1);
  });
});
