import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ServiceError } from '../src/errors.js';
import { IdempotencyLedger } from '../src/ledger.js';
import { Sender } from '../src/sender.js';
import {
  authed,
  eventually,
  send,
  silentLog,
  startFakeApp,
  tempDir,
} from '../test-support/helpers.js';

/**
 * An engine whose sends finish when the test says so, and that counts them. `inChat` is what
 * findSent can find (it honours `skip`); `findFails` makes findSent throw it.
 */
class ControlledEngine {
  state = 'WORKING';
  sends = [];
  finds = [];
  inChat = [];
  findFails = null;

  send(request) {
    this.onSend?.(request);
    let resolve;
    let reject;
    const result = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.sends.push({ request, resolve, reject });
    return result;
  }

  requireWorking(what) {
    if (this.state !== 'WORKING') {
      throw new ServiceError('not_ready', `not WORKING (${this.state}): cannot ${what}`);
    }
  }

  async findSent(query) {
    this.finds.push(query);
    this.requireWorking('look for a sent message');
    if (this.findFails) throw this.findFails;
    return this.inChat.find((message) => !query.skip(message.id)) ?? null;
  }
}

async function newSender({ dir, engine = new ControlledEngine() } = {}) {
  const ledger = new IdempotencyLedger(dir ?? (await tempDir()));
  await ledger.load();
  return { engine, ledger, sender: new Sender({ engine, ledger, log: silentLog }) };
}

/** Waits until the engine was asked for its `count`th send. */
const sendAsked = (engine, count = 1) =>
  eventually(() => engine.sends.length >= count, { what: `send ${count}` });

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

describe('idempotency over HTTP: sends that may have gone out', () => {
  const fail = (app, payload) =>
    app.inject(authed({ method: 'POST', url: '/fake/fail', payload }));
  const outboxKeys = (engine) => engine.outbox.map((message) => message.idempotency_key);

  test('a send that fails after the message went out answers 201 once; the retry is a duplicate', async () => {
    const { app, engine } = await startFakeApp();
    const armed = await fail(app, { code: 'send_failed', after_send: true });
    assert.deepEqual(armed.json(), { code: 'send_failed', count: 1, after_send: true });
    const first = await send(app, { idempotency_key: 'run-10:dave' });
    assert.equal(first.statusCode, 201, first.body);
    assert.equal(first.json().duplicate, false);
    const retry = await send(app, { idempotency_key: 'run-10:dave' });
    assert.deepEqual(retry.json(), { ...first.json(), duplicate: true });
    assert.deepEqual(outboxKeys(engine), ['run-10:dave']);
  });

  test('after a crash between the send and its record, the retry answers the message sent', async () => {
    const dataDir = await tempDir();
    const before = await startFakeApp({ dataDir });
    const first = (await send(before.app, { idempotency_key: 'run-11:erin' })).json();
    await before.app.close();
    // What a SIGKILL right after WhatsApp took the message leaves: the attempt, no answer.
    const path = join(dataDir, 'idempotency-ledger.json');
    const stored = JSON.parse(await readFile(path, 'utf8'));
    const { to, recorded_at: startedAt } = stored.entries['run-11:erin'];
    stored.attempts['run-11:erin'] = { to, started_at: startedAt - 100 };
    delete stored.entries['run-11:erin'];
    await writeFile(path, JSON.stringify(stored));

    const after = await startFakeApp({ dataDir });
    const moveTo = (state) =>
      after.app.inject(authed({ method: 'POST', url: '/fake/state', payload: { state } }));
    await moveTo('STARTING');
    const early = await send(after.app, { idempotency_key: 'run-11:erin' });
    assert.equal(early.statusCode, 409, 'answered without looking in the chat');
    await moveTo('WORKING');
    const retry = await send(after.app, { idempotency_key: 'run-11:erin' });
    assert.equal(retry.statusCode, 201, retry.body);
    assert.deepEqual(retry.json(), { ...first, duplicate: true });
    assert.deepEqual(outboxKeys(after.engine), ['run-11:erin']);
  });

  test('an attempted key is not sent while it cannot be looked for, then sent once', async () => {
    const { app, engine } = await startFakeApp();
    const moveTo = (state) =>
      app.inject(authed({ method: 'POST', url: '/fake/state', payload: { state } }));
    await fail(app, { code: 'send_failed' });
    assert.equal((await send(app, { idempotency_key: 'run-12:finn' })).statusCode, 502);
    await moveTo('STARTING');
    const early = await send(app, { idempotency_key: 'run-12:finn' });
    assert.equal(early.statusCode, 409);
    assert.equal(early.json().error.code, 'not_ready');
    assert.deepEqual(outboxKeys(engine), []);

    await moveTo('WORKING');
    const retry = await send(app, { idempotency_key: 'run-12:finn' });
    assert.equal(retry.statusCode, 201);
    assert.equal(retry.json().duplicate, false);
    assert.deepEqual(outboxKeys(engine), ['run-12:finn']);
  });

  test('/fake/fail refuses after_send with a code that cannot follow a send', async () => {
    const { app } = await startFakeApp();
    const refused = await fail(app, { code: 'not_ready', after_send: true });
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().error.code, 'invalid_request');
  });
});

describe('Sender', () => {
  test('a caller arriving while the same key is in flight shares its result', async () => {
    const { engine, sender } = await newSender();
    const first = sender.send(request('k'));
    const second = sender.send(request('k'));
    await sendAsked(engine);
    assert.equal(engine.sends.length, 1);
    engine.sends[0].resolve(sent);
    assert.deepEqual(await first, { ...sent, duplicate: false });
    assert.deepEqual(await second, { ...sent, duplicate: true });
    assert.equal(engine.sends.length, 1);
  });

  test('a failed send records no answer, so a retry not found in the chat sends', async () => {
    const { engine, ledger, sender } = await newSender();
    const first = sender.send(request('k'));
    const second = sender.send(request('k'));
    await sendAsked(engine);
    engine.sends[0].reject(new ServiceError('send_failed', 'WhatsApp said no'));
    await assert.rejects(first, { code: 'send_failed' });
    await assert.rejects(second, { code: 'send_failed' });
    assert.equal(ledger.get('k'), undefined);

    const retry = sender.send(request('k'));
    await sendAsked(engine, 2);
    engine.sends[1].resolve(sent);
    assert.deepEqual(await retry, { ...sent, duplicate: false });
  });

  test('drain refuses new sends and waits for the one in flight', async () => {
    const { engine, ledger, sender } = await newSender();
    const inFlight = sender.send(request('a'));
    await sendAsked(engine);
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
    await sendAsked(engine);
    engine.sends[0].resolve(sent);
    await first;
    await sender.drain();
    assert.deepEqual(await sender.send(request('a')), { ...sent, duplicate: true });
  });
});

describe('Sender: sends that may have gone out', () => {
  const storedLedger = async (ledger) => JSON.parse(await readFile(ledger.path, 'utf8'));
  const sendFailed = () => new ServiceError('send_failed', 'WhatsApp did not take the message');

  test('the attempt is on disk before the engine sends, without the text, and gives way to the answer', async () => {
    const { engine, ledger, sender } = await newSender();
    let during;
    engine.onSend = () => {
      during = JSON.parse(readFileSync(ledger.path, 'utf8'));
    };
    const sending = sender.send({ ...request('k'), text: 'the secret plan' });
    await sendAsked(engine);
    assert.deepEqual(Object.keys(during.attempts), ['k']);
    assert.deepEqual(Object.keys(during.attempts.k).sort(), ['started_at', 'to']);
    assert.equal(during.attempts.k.to, '+4915112345678');
    assert.ok(!JSON.stringify(during).includes('secret'), 'the ledger holds the text');

    engine.sends[0].resolve(sent);
    await sending;
    const afterwards = await storedLedger(ledger);
    assert.deepEqual(afterwards.attempts, {});
    assert.deepEqual(Object.keys(afterwards.entries), ['k']);
  });

  test('a send refused as not_ready writes no attempt', async () => {
    const { engine, ledger, sender } = await newSender();
    engine.state = 'SCAN_QR_CODE';
    await assert.rejects(sender.send(request('held')), { code: 'not_ready' });
    assert.equal(ledger.attempt('held'), undefined);
    assert.equal(engine.sends.length, 0);
    assert.equal(existsSync(ledger.path), false, 'the ledger was written');
  });

  test('a retry of an attempted key whose message is in the chat answers it as a duplicate and sends nothing', async () => {
    const { engine, ledger, sender } = await newSender();
    const first = sender.send(request('k'));
    await sendAsked(engine);
    const { startedAt } = ledger.attempt('k');
    engine.sends[0].reject(sendFailed());
    await assert.rejects(first, { code: 'send_failed' });

    engine.inChat = [sent]; // WhatsApp Web sent it after all
    assert.deepEqual(await sender.send(request('k')), { ...sent, duplicate: true });
    assert.equal(engine.sends.length, 1);
    assert.equal(engine.finds.at(-1).since.getTime(), startedAt);
    assert.equal(engine.finds.at(-1).text, 'hi');
    assert.deepEqual(ledger.get('k'), sent);
    assert.equal(ledger.attempt('k'), undefined);
  });

  test('a retry of an attempted key not in the chat sends it once', async () => {
    const { engine, sender } = await newSender();
    const first = sender.send(request('k'));
    await sendAsked(engine);
    engine.sends[0].reject(sendFailed());
    await assert.rejects(first, { code: 'send_failed' });
    const checksAfterFailure = engine.finds.length;

    const retry = sender.send(request('k'));
    await sendAsked(engine, 2);
    assert.equal(engine.finds.length, checksAfterFailure + 1, 'looked in the chat first');
    engine.sends[1].resolve(sent);
    assert.deepEqual(await retry, { ...sent, duplicate: false });
    assert.deepEqual(await sender.send(request('k')), { ...sent, duplicate: true });
    assert.equal(engine.sends.length, 2);
  });

  test('a message already answered for another key is not taken for this one', async () => {
    const { engine, sender } = await newSender();
    const other = sender.send(request('other'));
    await sendAsked(engine);
    engine.sends[0].resolve(sent);
    await other;
    engine.inChat = [sent]; // the same text to the same chat, but it is the other key's

    const first = sender.send(request('k'));
    await sendAsked(engine, 2);
    engine.sends[1].reject(sendFailed());
    await assert.rejects(first, { code: 'send_failed' });
    const retry = sender.send(request('k'));
    await sendAsked(engine, 3);
    const mine = { ...sent, id: 'true_4915112345678@c.us_2' };
    engine.sends[2].resolve(mine);
    assert.deepEqual(await retry, { ...mine, duplicate: false });
  });

  for (const [what, setUp, code, message] of [
    [
      'the check fails',
      (engine) => {
        engine.findFails = new Error('Evaluation failed');
      },
      'send_failed',
      /earlier attempt .* could not be checked/,
    ],
    [
      'the session is not WORKING',
      (engine) => {
        engine.state = 'STARTING';
      },
      'not_ready',
      /WORKING/,
    ],
  ]) {
    test(`when ${what}, a retry of an attempted key answers ${code} and sends nothing`, async () => {
      const { engine, sender } = await newSender();
      const first = sender.send(request('k'));
      await sendAsked(engine);
      engine.sends[0].reject(sendFailed());
      await assert.rejects(first, { code: 'send_failed' });

      setUp(engine);
      await assert.rejects(sender.send(request('k')), { code, message });
      await assert.rejects(sender.send(request('k')), { code });
      assert.equal(engine.sends.length, 1);

      engine.state = 'WORKING';
      engine.findFails = null;
      engine.inChat = [sent]; // a later retry checks again
      assert.deepEqual(await sender.send(request('k')), { ...sent, duplicate: true });
      assert.equal(engine.sends.length, 1);
    });
  }

  test('a send that fails after the message went out is answered as sent once; a retry is a duplicate', async () => {
    const { engine, ledger, sender } = await newSender();
    const first = sender.send(request('k'));
    await sendAsked(engine);
    engine.inChat = [sent];
    engine.sends[0].reject(sendFailed());
    assert.deepEqual(await first, { ...sent, duplicate: false });
    assert.deepEqual(ledger.get('k'), sent);
    assert.deepEqual(await sender.send(request('k')), { ...sent, duplicate: true });
    assert.equal(engine.sends.length, 1);
  });

  test('a failed send whose check also fails answers the send error', async () => {
    const { engine, ledger, sender } = await newSender();
    const first = sender.send(request('k'));
    await sendAsked(engine);
    engine.findFails = new Error('Target closed');
    engine.sends[0].reject(sendFailed());
    await assert.rejects(first, { code: 'send_failed', message: /did not take/ });
    assert.equal(ledger.get('k'), undefined);
    assert.ok(ledger.attempt('k'));
  });

  test('a restart keeps the attempt: a send cut by a crash is found, not sent again', async () => {
    const dir = await tempDir();
    const before = await newSender({ dir });
    before.sender.send(request('k')); // the process dies while WhatsApp has the message
    await sendAsked(before.engine);
    const { startedAt } = before.ledger.attempt('k');

    const after = await newSender({ dir });
    assert.deepEqual(after.ledger.attempt('k'), { to: '+4915112345678', startedAt });
    after.engine.inChat = [sent];
    assert.deepEqual(await after.sender.send(request('k')), { ...sent, duplicate: true });
    assert.equal(after.engine.sends.length, 0);
    assert.equal(after.engine.finds[0].since.getTime(), startedAt);

    const again = await newSender({ dir });
    assert.deepEqual(again.ledger.get('k'), sent);
    assert.equal(again.ledger.attempt('k'), undefined);
  });

  test('a restart keeps the attempt: a send cut before it went out is sent once', async () => {
    const dir = await tempDir();
    const before = await newSender({ dir });
    before.sender.send(request('k'));
    await sendAsked(before.engine);

    const after = await newSender({ dir });
    const retry = after.sender.send(request('k'));
    await sendAsked(after.engine);
    assert.equal(after.engine.finds.length, 1);
    after.engine.sends[0].resolve(sent);
    assert.deepEqual(await retry, { ...sent, duplicate: false });
  });

  test('drain gives up after its timeout, names the keys still in flight and lets their callers go', async () => {
    const { engine, ledger, sender } = await newSender();
    const hung = sender.send(request('hung')); // the engine never settles it
    const sharing = sender.send(request('hung'));
    await sendAsked(engine);
    const started = Date.now();
    assert.deepEqual(await sender.drain({ timeoutMs: 50 }), ['hung']);
    assert.ok(Date.now() - started >= 45);
    await assert.rejects(hung, { code: 'shutting_down', statusCode: 503 });
    await assert.rejects(sharing, { code: 'shutting_down' });
    assert.ok(ledger.attempt('hung'), 'the attempt stays for the next start');
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

  test('keeps attempts across a reload and forgets those older than 30 days', async () => {
    const dir = await tempDir();
    const day = 24 * 60 * 60 * 1000;
    let now = Date.parse('2026-06-01T00:00:00Z');
    const ledger = new IdempotencyLedger(dir, { now: () => now });
    await ledger.load();
    await ledger.recordAttempt('old', { to: '+4915112345678' });
    now += 2 * day;
    await ledger.recordAttempt('recent', { to: '1203@g.us' });
    now += 1000;
    assert.deepEqual(await ledger.recordAttempt('recent', { to: '1203@g.us' }), {
      to: '1203@g.us',
      startedAt: now - 1000,
    });

    now += 29 * day;
    const reloaded = new IdempotencyLedger(dir, { now: () => now });
    await reloaded.load();
    assert.equal(reloaded.attempt('old'), undefined);
    assert.deepEqual(reloaded.attempt('recent'), {
      to: '1203@g.us',
      startedAt: now - 29 * day - 1000,
    });
  });
});
