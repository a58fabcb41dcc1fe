import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, describe, test } from 'node:test';
import { buildApp } from '../src/app.js';
import { FakeEngine } from '../src/engines/fake.js';
import { EventForwarder } from '../src/events.js';
import {
  API_KEY,
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
});
