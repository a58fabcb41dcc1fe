import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ServiceError } from '../src/errors.js';
import { IdempotencyLedger } from '../src/ledger.js';
import { Sender } from '../src/sender.js';
import { authed, send, silentLog, startFakeApp, tempDir } from '../test-support/helpers.js';

/** An engine whose sends finish when the test says so, and that counts them. */
class ControlledEngine {
  sends = [];
  send(request) {
    let resolve;
    let reject;
    const result = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.sends.push({ request, resolve, reject });
    return result;
  }
}

async function newSender() {
  const ledger = new IdempotencyLedger(await tempDir());
  await ledger.load();
  const engine = new ControlledEngine();
  return { engine, ledger, sender: new Sender({ engine, ledger, log: silentLog }) };
}

const request = (key) => ({ to: '+4915112345678', text: 'hi', media: null, idempotencyKey: key });
const sent = {
  id: 'true_4915112345678@c.us_1',
  to: '4915112345678@c.us',
  timestamp: '2026-01-01T00:00:00.000Z',
};

describe('idempotency over HTTP', () => {
  test('a second send with the same key answers the first result as a duplicate and sends nothing', async () => {
    const { app, engine } = await startFakeApp();
    const first = await send(app, { idempotency_key: 'run-7:alice' });
    const second = await send(app, { idempotency_key: 'run-7:alice', text: 'changed' });
    assert.equal(first.statusCode, 201);
    assert.equal(second.statusCode, 201);
    assert.deepEqual(second.json(), { ...first.json(), duplicate: true });
    assert.equal(engine.outbox.length, 1);
  });

  test('the record of keys survives a restart of the service', async () => {
    const dataDir = await tempDir();
    const before = await startFakeApp({ dataDir });
    const first = (await send(before.app, { idempotency_key: 'run-8:bob' })).json();
    await before.app.close();

    const after = await startFakeApp({ dataDir });
    const again = await send(after.app, { idempotency_key: 'run-8:bob' });
    assert.equal(again.statusCode, 201);
    assert.deepEqual(again.json(), { ...first, duplicate: true });
    const outbox = (await after.app.inject(authed({ method: 'GET', url: '/fake/outbox' }))).json();
    assert.deepEqual(
      outbox.messages.map((message) => message.idempotency_key),
      ['run-8:bob'],
    );
  });

  test('two concurrent sends with one key send once', async () => {
    const { app, engine } = await startFakeApp({ env: { WHATSAPP_FAKE_SEND_DELAY_MS: '50' } });
    const answers = await Promise.all([
      send(app, { idempotency_key: 'run-9:carol' }),
      send(app, { idempotency_key: 'run-9:carol' }),
    ]);
    const bodies = answers.map((answer) => answer.json());
    assert.deepEqual(bodies.map((body) => body.duplicate).sort(), [false, true]);
    assert.equal(bodies[0].id, bodies[1].id);
    assert.equal(engine.outbox.length, 1);
  });
});

describe('Sender', () => {
  test('a caller arriving while the same key is in flight shares its result', async () => {
    const { engine, sender } = await newSender();
    const first = sender.send(request('k'));
    const second = sender.send(request('k'));
    assert.equal(engine.sends.length, 1);
    engine.sends[0].resolve(sent);
    assert.deepEqual(await first, { ...sent, duplicate: false });
    assert.deepEqual(await second, { ...sent, duplicate: true });
    assert.equal(engine.sends.length, 1);
  });

  test('a failed send records nothing, so the next attempt sends', async () => {
    const { engine, ledger, sender } = await newSender();
    const first = sender.send(request('k'));
    const second = sender.send(request('k'));
    engine.sends[0].reject(new ServiceError('send_failed', 'WhatsApp said no'));
    await assert.rejects(first, { code: 'send_failed' });
    await assert.rejects(second, { code: 'send_failed' });
    assert.equal(ledger.get('k'), undefined);

    const retry = sender.send(request('k'));
    assert.equal(engine.sends.length, 2);
    engine.sends[1].resolve(sent);
    assert.deepEqual(await retry, { ...sent, duplicate: false });
  });

  test('drain refuses new sends and waits for the one in flight', async () => {
    const { engine, ledger, sender } = await newSender();
    const inFlight = sender.send(request('a'));
    let drained = false;
    const draining = sender.drain().then(() => {
      drained = true;
    });
    await assert.rejects(sender.send(request('b')), { code: 'shutting_down', statusCode: 503 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(drained, false);
    engine.sends[0].resolve(sent);
    await inFlight;
    await draining;
    assert.equal(drained, true);
    assert.deepEqual(ledger.get('a'), sent);
    assert.equal(engine.sends.length, 1);
  });

  test('a key already sent is still answered as a duplicate while draining', async () => {
    const { engine, sender } = await newSender();
    const first = sender.send(request('a'));
    engine.sends[0].resolve(sent);
    await first;
    await sender.drain();
    assert.deepEqual(await sender.send(request('a')), { ...sent, duplicate: true });
  });
});

describe('IdempotencyLedger', () => {
  test('writes through a temporary file and leaves only the ledger behind', async () => {
    const dir = await tempDir();
    const ledger = new IdempotencyLedger(dir);
    await ledger.load();
    await Promise.all([
      ledger.record('a', sent),
      ledger.record('b', sent),
      ledger.record('c', sent),
    ]);
    assert.deepEqual(await readdir(dir), ['idempotency-ledger.json']);
    const stored = JSON.parse(await readFile(join(dir, 'idempotency-ledger.json'), 'utf8'));
    assert.deepEqual(Object.keys(stored.entries).sort(), ['a', 'b', 'c']);

    const reloaded = new IdempotencyLedger(dir);
    await reloaded.load();
    assert.deepEqual(reloaded.get('c'), sent);
  });

  test('forgets keys older than 30 days when loading', async () => {
    const dir = await tempDir();
    const day = 24 * 60 * 60 * 1000;
    const now = Date.parse('2026-06-30T00:00:00Z');
    await writeFile(
      join(dir, 'idempotency-ledger.json'),
      JSON.stringify({
        version: 1,
        entries: {
          old: { ...sent, recorded_at: now - 31 * day },
          recent: { ...sent, recorded_at: now - 29 * day },
        },
      }),
    );
    const ledger = new IdempotencyLedger(dir, { now: () => now });
    await ledger.load();
    assert.equal(ledger.get('old'), undefined);
    assert.deepEqual(ledger.get('recent'), sent);
  });
});
