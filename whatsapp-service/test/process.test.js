import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { API_KEY_MISSING } from '../src/config.js';
import { logRef } from '../src/log-ref.js';
import { API_KEY, tempDir } from '../test-support/helpers.js';

const SERVICE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

/** `node src/server.js` as `npm start` runs it, with only the settings given (no repo .env). */
function startService(settings, { umask } = {}) {
  // A shell sets the umask the way systemd's UMask= (default 0022) or a login shell would.
  const command = umask === undefined ? [process.execPath, 'src/server.js'] : ['/bin/sh', '-c',
    `umask ${umask.toString(8).padStart(4, '0')} && exec "$0" src/server.js`, process.execPath];
  const child = spawn(command[0], command.slice(1), {
    cwd: SERVICE_DIR,
    env: { PATH: process.env.PATH, WHATSAPP_ENV_FILE: '', WHATSAPP_PORT: '0', ...settings },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // 'close': the process has exited and its output has been read to the end.
  const exited = once(child, 'close').then(([code, signal]) => ({ code, signal }));
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const logLines = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      return;
    }
    logLines.push(entry);
    for (const waiter of waiters) if (waiter.match(entry)) waiter.resolve(entry);
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  /** Resolves with the first log entry `match` accepts (or rejects if the process exits first). */
  function logged(match) {
    const seen = logLines.find(match);
    if (seen) return Promise.resolve(seen);
    return Promise.race([
      new Promise((resolve) => waiters.push({ match, resolve })),
      exited.then(({ code }) => {
        throw new Error(`service exited (${code}) before logging the line; stderr: ${stderr}`);
      }),
    ]);
  }
  return { child, exited, logged, stdout: () => stdout, stderr: () => stderr };
}

async function baseUrl(service) {
  const entry = await service.logged((line) =>
    /^Server listening at http:\/\/127\.0\.0\.1:\d+$/.test(line.msg),
  );
  return entry.msg.slice('Server listening at '.length);
}

async function call(url, path, { method = 'GET', body } = {}) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { 'x-api-key': API_KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

async function untilWorking(url) {
  for (let i = 0; i < 400; i += 1) {
    const { body } = await call(url, '/health');
    if (body.state === 'WORKING') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the service never became WORKING');
}

/** wasched's event endpoint: records what the sidecar posts. */
async function eventsEndpoint() {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      received.push({ key: req.headers['x-api-key'], ...JSON.parse(body) });
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => server.close());
  return { url: `http://127.0.0.1:${server.address().port}/whatsapp/events`, received };
}

describe('the service process', () => {
  test('SIGTERM during a send finishes it, exits 0, and after a restart the same key is a duplicate', async () => {
    const dataDir = await tempDir();
    const events = await eventsEndpoint();
    const settings = {
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_EVENTS_URL: events.url,
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_SEND_DELAY_MS: '400',
      WHATSAPP_FAKE_ACK_DELAYS_MS: '1,1,1',
    };
    const message = {
      to: '+4915112345678',
      text: 'see you at 8',
      idempotency_key: 'run-42:+4915112345678',
    };

    const first = startService(settings);
    const firstUrl = await baseUrl(first);
    await untilWorking(firstUrl);
    const sending = call(firstUrl, '/messages', { method: 'POST', body: message });
    await first.logged((line) => line.msg === 'fake send in flight');
    first.child.kill('SIGTERM');
    const answer = await sending;
    assert.equal(answer.status, 201);
    assert.equal(answer.body.duplicate, false);
    assert.deepEqual(await first.exited, { code: 0, signal: null });
    assert.ok(
      events.received.some(
        (event) => event.event === 'session.status' && event.payload.state === 'STOPPED',
      ),
      'the last state reached wasched before exit',
    );
    assert.ok(events.received.every((event) => event.key === API_KEY));

    const second = startService(settings);
    const secondUrl = await baseUrl(second);
    await untilWorking(secondUrl);
    const again = await call(secondUrl, '/messages', { method: 'POST', body: message });
    assert.equal(again.status, 201);
    assert.deepEqual(again.body, { ...answer.body, duplicate: true });
    const outbox = await call(secondUrl, '/fake/outbox');
    assert.deepEqual(
      outbox.body.messages.map((sent) => [sent.idempotency_key, sent.id]),
      [[message.idempotency_key, answer.body.id]],
    );
    second.child.kill('SIGINT');
    assert.deepEqual(await second.exited, { code: 0, signal: null });
  });

  test('a send hung at SIGTERM is let go after half the bound (503), the browser still closes, and the retry after a restart sends it once', async () => {
    const dataDir = await tempDir();
    const settings = {
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/nowhere',
      WHATSAPP_EVENTS_TIMEOUT_MS: '100',
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_SEND_DELAY_MS: '600000',
      WHATSAPP_SHUTDOWN_TIMEOUT_MS: '2000',
    };
    const message = { to: '+4915112345678', text: 'hung', idempotency_key: 'run-43:hung' };

    const first = startService(settings);
    const firstUrl = await baseUrl(first);
    await untilWorking(firstUrl);
    const sending = call(firstUrl, '/messages', { method: 'POST', body: message });
    await first.logged((line) => line.msg === 'fake send in flight');
    first.child.kill('SIGTERM');
    const answer = await sending;
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error.code, 'shutting_down');
    assert.deepEqual(await first.exited, { code: 0, signal: null });
    const given = await first.logged((line) => Array.isArray(line.keys));
    assert.deepEqual(given.keys, [logRef(message.idempotency_key)]);
    await first.logged((line) => line.msg === 'stopped cleanly');

    const second = startService({ ...settings, WHATSAPP_FAKE_SEND_DELAY_MS: '0' });
    const secondUrl = await baseUrl(second);
    await untilWorking(secondUrl);
    const retry = await call(secondUrl, '/messages', { method: 'POST', body: message });
    assert.equal(retry.status, 201);
    assert.equal(retry.body.duplicate, false);
    const outbox = await call(secondUrl, '/fake/outbox');
    assert.deepEqual(
      outbox.body.messages.map((sent) => sent.idempotency_key),
      [message.idempotency_key],
    );
    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  test('a send cut by SIGKILL leaves its attempt, and the retry after a restart sends it once', async () => {
    const dataDir = await tempDir();
    const settings = {
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/nowhere',
      WHATSAPP_EVENTS_TIMEOUT_MS: '100',
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_SEND_DELAY_MS: '600000',
      WHATSAPP_SHUTDOWN_TIMEOUT_MS: '3000',
    };
    const message = { to: '+4915112345678', text: 'cut', idempotency_key: 'run-44:cut' };

    const first = startService(settings);
    const firstUrl = await baseUrl(first);
    await untilWorking(firstUrl);
    const sending = call(firstUrl, '/messages', { method: 'POST', body: message }).catch(
      (err) => err,
    );
    await first.logged((line) => line.msg === 'fake send in flight');
    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    assert.ok((await sending) instanceof Error, 'the caller saw the connection drop');
    const ledger = JSON.parse(await readFile(join(dataDir, 'idempotency-ledger.json'), 'utf8'));
    assert.deepEqual(Object.keys(ledger.attempts), [message.idempotency_key]);

    const second = startService({ ...settings, WHATSAPP_FAKE_SEND_DELAY_MS: '0' });
    const secondUrl = await baseUrl(second);
    await untilWorking(secondUrl);
    const retry = await call(secondUrl, '/messages', { method: 'POST', body: message });
    assert.equal(retry.status, 201);
    assert.equal(retry.body.duplicate, false);
    const again = await call(secondUrl, '/messages', { method: 'POST', body: message });
    assert.deepEqual(again.body, { ...retry.body, duplicate: true });
    const outbox = await call(secondUrl, '/fake/outbox');
    assert.equal(outbox.body.messages.length, 1);
    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  test('SIGTERM with the events URL refusing connections exits 0 and keeps the events on disk', async () => {
    const dataDir = await tempDir();
    const settings = {
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/refused',
      WHATSAPP_EVENTS_RETRY_MIN_MS: '1',
      WHATSAPP_EVENTS_RETRY_MAX_MS: '2',
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_ACK_DELAYS_MS: '1,1,1',
    };
    const first = startService(settings);
    const url = await baseUrl(first);
    await untilWorking(url);
    const sent = await call(url, '/messages', {
      method: 'POST',
      body: { to: '+4915112345678', text: 'kept', idempotency_key: 'events-kept' },
    });
    assert.equal(sent.status, 201);
    for (let i = 0; i < 50; i += 1) await call(url, '/health');
    first.child.kill('SIGTERM');
    assert.deepEqual(await first.exited, { code: 0, signal: null });
    await first.logged((line) => line.msg === 'stopped cleanly');

    const pendingPath = join(dataDir, 'events-pending.json');
    assert.equal((await stat(pendingPath)).mode & 0o777, 0o600);
    const kept = JSON.parse(await readFile(pendingPath, 'utf8')).events;
    const statuses = kept.filter((item) => item.event === 'session.status');
    assert.deepEqual(
      statuses.map((item) => item.payload.state),
      ['STARTING', 'WORKING', 'STOPPED'],
    );
    assert.ok(kept.some((item) => item.event === 'message.ack' && item.payload.id === sent.body.id));
    // The outage was announced once, not once per retry, and no request wrote a line.
    const lines = first.stdout().trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(lines.filter((line) => line.msg?.startsWith('wasched is not taking')).length, 1);
    assert.ok(!lines.some((line) => /request/.test(line.msg ?? '') && line.level <= 30));

    // The next start sends them first (here: still refused, so they stay kept).
    const second = startService(settings);
    await second.logged((line) => line.msg === 'events kept from the last run; sending them first');
    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
    const again = JSON.parse(await readFile(pendingPath, 'utf8')).events;
    assert.deepEqual(again.slice(0, kept.length), kept);
  });

  test('SIGKILL while wasched does not take events keeps them on disk; the next start sends them', async () => {
    const dataDir = await tempDir();
    const pendingPath = join(dataDir, 'events-pending.json');
    const settings = {
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/refused',
      WHATSAPP_EVENTS_RETRY_MIN_MS: '1',
      WHATSAPP_EVENTS_RETRY_MAX_MS: '2',
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_ACK_DELAYS_MS: '1,1,1',
    };
    const first = startService(settings);
    const url = await baseUrl(first);
    await untilWorking(url);
    const sent = await call(url, '/messages', {
      method: 'POST',
      body: { to: '+4915112345678', text: 'kept', idempotency_key: 'events-killed' },
    });
    assert.equal(sent.status, 201);
    const read = (item) =>
      item.event === 'message.ack' && item.payload.id === sent.body.id && item.payload.ack === 3;
    const onDisk = async () => {
      try {
        return JSON.parse(await readFile(pendingPath, 'utf8')).events;
      } catch {
        return [];
      }
    };
    for (let i = 0; i < 500 && !(await onDisk()).some(read); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal((await stat(pendingPath)).mode & 0o777, 0o600);
    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    const kept = await onDisk();
    assert.ok(kept.some(read), 'the read ack is on disk');

    const events = await eventsEndpoint();
    const second = startService({ ...settings, WHATSAPP_EVENTS_URL: events.url });
    await baseUrl(second);
    for (let i = 0; i < 500 && !events.received.some(read); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Sent first and in order, the read ack among them, then the file is gone.
    assert.deepEqual(
      events.received.slice(0, kept.length).map(({ event, payload }) => ({ event, payload })),
      kept.map(({ event, payload }) => ({ event, payload })),
    );
    for (let i = 0; i < 500; i += 1) {
      try {
        await stat(pendingPath);
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await assert.rejects(stat(pendingPath), { code: 'ENOENT' });
    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  test('a bad setting stops start-up with one line naming it', async () => {
    const service = startService({
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_PORT: 'http',
    });
    const { code } = await service.exited;
    assert.equal(code, 1);
    const lines = service.stderr().trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /WHATSAPP_PORT/);
  });

  test('an empty WHATSAPP_API_KEY stops start-up with one line saying what to put in .env', async () => {
    for (const key of [undefined, '', ' ']) {
      const settings = { WHATSAPP_ENGINE: 'fake' };
      if (key !== undefined) settings.WHATSAPP_API_KEY = key;
      const service = startService(settings);
      const { code } = await service.exited;
      assert.equal(code, 1);
      assert.equal(service.stderr(), `whatsapp-service: ${API_KEY_MISSING}\n`);
      assert.equal(service.stdout(), '', 'it stopped before it listened');
    }
  });

  test('started as systemd does (no start.sh, umask 022) it keeps its files private', async () => {
    const wasched = await tempDir();
    const dataDir = join(wasched, 'state'); // not there yet: the service creates it
    const service = startService(
      {
        WASCHED_DATA_DIR: dataDir,
        WHATSAPP_ENGINE: 'fake',
        WHATSAPP_API_KEY: API_KEY,
        WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/refused',
        WHATSAPP_EVENTS_RETRY_MIN_MS: '1',
        WHATSAPP_EVENTS_RETRY_MAX_MS: '2',
        WHATSAPP_FAKE_START_DELAY_MS: '0',
        WHATSAPP_FAKE_ACK_DELAYS_MS: '1,1,1',
      },
      { umask: 0o022 },
    );
    const url = await baseUrl(service);
    await untilWorking(url);
    const sent = await call(url, '/messages', {
      method: 'POST',
      body: { to: '+4915112345678', text: 'private', idempotency_key: 'modes' },
    });
    assert.equal(sent.status, 201);
    service.child.kill('SIGTERM');
    assert.equal((await service.exited).code, 0);
    const session = join(dataDir, 'whatsapp');
    const mode = async (path) => (await stat(path)).mode & 0o777;
    assert.equal(await mode(dataDir), 0o700);
    assert.equal(await mode(session), 0o700);
    for (const file of ['idempotency-ledger.json', 'events-pending.json', 'fake-outbox.json']) {
      assert.equal(await mode(join(session, file)), 0o600, file);
    }
  });

  test('with the real engine the Chromium profile whatsapp-web.js creates is private too', async () => {
    const wasched = await tempDir();
    const dataDir = join(wasched, 'state');
    // A "browser" that exits at once: whatsapp-web.js has made the profile by then.
    const service = startService(
      {
        WASCHED_DATA_DIR: dataDir,
        WHATSAPP_ENGINE: 'wwebjs',
        CHROMIUM_PATH: '/bin/false',
        WHATSAPP_API_KEY: API_KEY,
        WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/refused',
        WHATSAPP_RECONNECT_MIN_MS: '600000',
        WHATSAPP_RECONNECT_MAX_MS: '600000',
      },
      { umask: 0o022 },
    );
    const url = await baseUrl(service);
    for (let i = 0; i < 2000; i += 1) {
      const { body } = await call(url, '/health');
      if (body.failure) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const { body } = await call(url, '/health');
    assert.equal(body.failure?.code, 'chromium_failed', JSON.stringify(body));
    service.child.kill('SIGTERM');
    assert.equal((await service.exited).code, 0);
    const profile = join(dataDir, 'whatsapp', 'wwebjs-auth', 'session-wasched');
    for (const dir of [dataDir, join(dataDir, 'whatsapp'), profile]) {
      assert.equal((await stat(dir)).mode & 0o777, 0o700, dir);
    }
  });

  test('numbers, message texts and the API key never reach the log at info level', async () => {
    const dataDir = await tempDir();
    const service = startService({
      WHATSAPP_ENGINE: 'fake',
      WHATSAPP_DATA_DIR: dataDir,
      WHATSAPP_API_KEY: API_KEY,
      WHATSAPP_EVENTS_URL: 'http://127.0.0.1:9/nowhere',
      WHATSAPP_FAKE_START_DELAY_MS: '0',
      WHATSAPP_FAKE_ACK_DELAYS_MS: '1,1,1',
      WHATSAPP_EVENTS_TIMEOUT_MS: '100',
      WHATSAPP_SHUTDOWN_TIMEOUT_MS: '3000',
      WHATSAPP_LOG_LEVEL: 'info',
    });
    const url = await baseUrl(service);
    await untilWorking(url);
    const secretText = 'the surprise party is on friday';
    const digits = '4915112345678';
    // As wasched builds its keys: the run, then the recipient's address.
    const key = `run7.1764324000000:+${digits}`;
    const message = { to: `+${digits}`, text: secretText, idempotency_key: key };
    const sent = await call(url, '/messages', { method: 'POST', body: message });
    assert.equal(sent.status, 201);
    assert.ok(sent.body.id.includes(digits), 'the fake ids hold the chat, as WhatsApp ids do');
    // The same key again (answered from the ledger), and the message's acks.
    assert.equal((await call(url, '/messages', { method: 'POST', body: message })).status, 201);
    assert.equal((await call(url, `/messages/${sent.body.id}`)).status, 200);
    const sentLine = await service.logged((line) => line.msg === 'message sent');
    await service.logged((line) => line.msg === 'duplicate send answered from the ledger');
    service.child.kill('SIGTERM');
    assert.equal((await service.exited).code, 0);
    const log = service.stdout();
    assert.match(log, /"msg":"stopped cleanly"/);
    const lines = log.trim().split('\n');
    assert.ok(lines.length > 5);
    for (const line of lines) {
      assert.ok(!line.includes(digits), `a number was logged: ${line}`);
      assert.ok(!line.includes(secretText), `the message text was logged: ${line}`);
      assert.ok(!line.includes(API_KEY), `the API key was logged: ${line}`);
    }
    // What a person follows a message by instead: a short reference to its key and its id.
    assert.equal(sentLine.key, logRef(key));
    assert.equal(sentLine.message, logRef(sent.body.id));
  });
});
