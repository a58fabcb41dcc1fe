import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildApp } from '../src/app.js';
import {
  CHROMIUM_ARGS,
  WwebjsEngine,
  chromiumHoldingProfile,
  removeSingletonLocks,
  sessionPaths,
} from '../src/engines/wwebjs.js';
import {
  RecordedEvents,
  authed,
  eventually,
  send,
  silentLog,
  tempDir,
  testConfig,
} from '../test-support/helpers.js';

const OWNER = { id: '4915100000000@c.us', name: 'Owner' };
const REGISTERED = '4915112345678';

/**
 * Stands in for whatsapp-web.js's Client: an EventEmitter with the methods the engine uses.
 * It records every call, and the test drives it with the events the real one emits.
 */
class FakeClient extends EventEmitter {
  calls = [];
  info = null;
  sent = 0;
  browserOpen = true;
  pupBrowser = { isConnected: () => this.browserOpen };

  constructor(options, world) {
    super();
    this.options = options;
    this.world = world;
  }

  async initialize() {
    this.calls.push(['initialize']);
    await this.world.onInitialize(this);
  }

  async destroy() {
    this.calls.push(['destroy', this.pupBrowser !== null]);
    this.browserOpen = false;
  }

  async logout() {
    this.calls.push(['logout']);
    this.browserOpen = false;
  }

  async getNumberId(number) {
    this.calls.push(['getNumberId', number]);
    if (this.world.lookupFails) throw new Error('Evaluation failed');
    return number === REGISTERED
      ? { server: 'c.us', user: number, _serialized: `${number}@c.us` }
      : null;
  }

  async sendMessage(chatId, content, options) {
    this.calls.push(['sendMessage', chatId, content, options]);
    if (this.world.sendFails) throw new Error('Error: No LID for user');
    if (chatId.endsWith('@g.us') && !this.world.groups.includes(chatId)) return undefined;
    this.sent += 1;
    const media = typeof content !== 'string';
    const message = sentMessage(`true_${chatId}_3EB0${this.sent}`, {
      body: media ? (options.caption ?? '') : content,
      hasMedia: media,
    });
    chatIn(this.world, chatId).push(message);
    // Like Utils.js: the message is in the chat (WhatsApp Web sends it from there) before the
    // send result is awaited, and a page error after that point reaches the caller.
    if (this.world.failAfterAdding) throw new Error('Protocol error: Target closed');
    return message;
  }

  async getChatById(chatId) {
    this.calls.push(['getChatById', chatId]);
    if (this.world.chatReadFails) throw new Error('Evaluation failed: TypeError');
    const messages = this.world.chats.get(chatId);
    if (!messages) return undefined;
    return {
      id: { _serialized: chatId },
      fetchMessages: async (options) => {
        this.calls.push(['fetchMessages', chatId, options]);
        const found = messages.filter((message) => message.id.fromMe === options.fromMe);
        return found.slice(-options.limit);
      },
    };
  }

  async requestPairingCode(phone, showNotification) {
    this.calls.push(['requestPairingCode', phone, showNotification]);
    return 'ABCD1234';
  }

  async getMessageById(id) {
    return null;
  }

  async getContacts() {
    return [
      {
        id: { server: 'c.us', _serialized: '491511@c.us' },
        isUser: true,
        isMyContact: true,
        name: 'Ann',
        number: '491511',
      },
      {
        id: { server: 'c.us', _serialized: '491512@c.us' },
        isUser: true,
        isMyContact: false,
        pushname: 'Stranger',
        number: '491512',
      },
      {
        id: { server: 'g.us', _serialized: '1203@g.us' },
        isUser: false,
        isMyContact: false,
        name: 'Group',
      },
    ];
  }

  async getChats() {
    return [
      {
        id: { _serialized: '1203@g.us' },
        isGroup: true,
        name: 'Family',
        groupMetadata: {
          participants: [
            { id: { _serialized: '491511@c.us' } },
            { id: { _serialized: '491512@c.us' } },
          ],
        },
      },
      { id: { _serialized: '491511@c.us' }, isGroup: false, name: 'Ann' },
    ];
  }

  // What WhatsApp Web does, as whatsapp-web.js reports it:
  showQr(qr) {
    this.emit('qr', qr);
  }

  link() {
    this.info = { wid: { _serialized: OWNER.id }, pushname: OWNER.name };
    this.emit('authenticated');
    this.emit('ready');
  }

  ack(id, ack) {
    this.emit('message_ack', { id: { fromMe: true, _serialized: id } }, ack);
  }

  /** Like whatsapp-web.js: emit 'disconnected', then destroy itself (LOGOUT excepted). */
  disconnect(reason) {
    this.emit('disconnected', reason);
    if (reason !== 'LOGOUT') this.destroy();
  }
}

/**
 * A Message as whatsapp-web.js builds it (structures/Message.js): `timestamp` in seconds;
 * `hasMedia` only once the upload has a directPath, `body` the caption then; `_data` the raw
 * model (its `caption` is there before the upload finished too).
 */
function sentMessage(
  serialized,
  {
    body = 'hello',
    hasMedia = false,
    type = hasMedia ? 'document' : 'chat',
    caption = hasMedia ? body : undefined,
    ack = 0,
    fromMe = true,
    timestamp = nowSeconds(),
  } = {},
) {
  const _data = { type, body, ...(caption === undefined ? {} : { caption }) };
  return {
    id: { fromMe, _serialized: serialized },
    fromMe,
    ack,
    timestamp,
    body,
    hasMedia,
    type,
    _data,
  };
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/** The chat's messages in `world` (WhatsApp's side: they outlive any one Client). */
function chatIn(world, chatId) {
  if (!world.chats.has(chatId)) world.chats.set(chatId, []);
  return world.chats.get(chatId);
}

class FakeLocalAuth {
  constructor(options) {
    this.options = options;
  }
}

class FakeMessageMedia {
  constructor(mimetype, data, filename) {
    Object.assign(this, { mimetype, data, filename });
  }
}

/** A wwebjs-engine app whose Clients are fakes; `world.clients` lists every Client made. */
async function startWwebjsApp({ dataDir, world: worldOptions = {} } = {}) {
  const dir = dataDir ?? (await tempDir({ keep: true }));
  const world = {
    clients: [],
    groups: ['1203@g.us'],
    chats: new Map(),
    onInitialize() {},
    ...worldOptions,
  };
  const library = {
    Client: class extends FakeClient {
      constructor(options) {
        super(options, world);
        world.clients.push(this);
      }
    },
    LocalAuth: FakeLocalAuth,
    MessageMedia: FakeMessageMedia,
  };
  const config = testConfig({
    WHATSAPP_ENGINE: 'wwebjs',
    WHATSAPP_DATA_DIR: dir,
    CHROMIUM_PATH: process.execPath,
    WHATSAPP_RECONNECT_MIN_MS: '1',
    WHATSAPP_RECONNECT_MAX_MS: '5',
  });
  const engine = new WwebjsEngine({ ...config, log: silentLog, library });
  const events = new RecordedEvents();
  const app = buildApp(config, engine, { events });
  after(async () => {
    await app.close();
    if (!dataDir) await rm(dir, { recursive: true, force: true });
  });
  await app.ready();
  const client = () => world.clients.at(-1);
  return { app, engine, events, world, client, dataDir: dir };
}

async function linked(options) {
  const started = await startWwebjsApp(options);
  started.client().link();
  return started;
}

const calls = (client, name) => client.calls.filter(([called]) => called === name);
const states = (events) => events.named('session.status').map((payload) => payload.state);

describe('wwebjs engine: linking', () => {
  test('builds the Client on LocalAuth under the data dir with a headless system Chromium', async () => {
    const { client, dataDir } = await startWwebjsApp();
    const { options } = client();
    assert.equal(options.authStrategy.options.dataPath, join(dataDir, 'wwebjs-auth'));
    assert.equal(options.authStrategy.options.clientId, 'wasched');
    assert.equal(options.puppeteer.executablePath, process.execPath);
    assert.equal(options.puppeteer.headless, true);
    for (const flag of ['--no-sandbox', '--disable-setuid-sandbox', '--disable-dev-shm-usage']) {
      assert.ok(options.puppeteer.args.includes(flag), flag);
    }
    assert.deepEqual(calls(client(), 'initialize').length, 1);
  });

  test('QR -> ready -> send -> ack', async () => {
    const { app, engine, events, client } = await startWwebjsApp();
    assert.equal(engine.state, 'STARTING');
    assertStatus(await app.inject(authed({ method: 'GET', url: '/session/qr' })), 409);

    client().showQr('2@first-qr');
    const health = (await app.inject({ method: 'GET', url: '/health' })).json();
    assert.deepEqual(health, { status: 'ok', engine: 'wwebjs', state: 'SCAN_QR_CODE', me: null });
    const qr = await app.inject(authed({ method: 'GET', url: '/session/qr' }));
    assert.equal(qr.json().qr, '2@first-qr');
    assert.deepEqual(events.named('session.qr'), [{ qr: '2@first-qr' }]);

    client().link();
    assert.deepEqual((await app.inject({ method: 'GET', url: '/health' })).json().me, OWNER);
    assert.deepEqual(states(events), ['STARTING', 'SCAN_QR_CODE', 'STARTING', 'WORKING']);

    const response = await send(app, { to: `+${REGISTERED}`, text: 'hello' });
    assert.equal(response.statusCode, 201, response.body);
    const { id, to } = response.json();
    assert.equal(to, `${REGISTERED}@c.us`);
    assert.deepEqual(calls(client(), 'getNumberId'), [['getNumberId', REGISTERED]]);
    assert.deepEqual(calls(client(), 'sendMessage'), [
      ['sendMessage', `${REGISTERED}@c.us`, 'hello', { sendSeen: false, waitUntilMsgSent: true }],
    ]);

    client().ack(id, 2);
    assert.deepEqual(events.named('message.ack'), [{ id, ack: 2 }]);
    const status = await app.inject(
      authed({ method: 'GET', url: `/messages/${encodeURIComponent(id)}` }),
    );
    assert.deepEqual(status.json(), { id, ack: 2 });
  });

  test('a pairing code is asked for with the number in digits', async () => {
    const { app, client } = await startWwebjsApp();
    client().showQr('2@qr');
    const response = await app.inject(
      authed({
        method: 'POST',
        url: '/session/pairing-code',
        payload: { phone: `+${REGISTERED}` },
      }),
    );
    assert.deepEqual(response.json(), { code: 'ABCD1234' });
    assert.deepEqual(calls(client(), 'requestPairingCode'), [
      ['requestPairingCode', REGISTERED, true],
    ]);
  });

  test('sends nothing before the account is linked (409 not_ready)', async () => {
    const { app, client } = await startWwebjsApp();
    client().showQr('2@qr');
    assertStatus(await send(app), 409, 'not_ready');
    assert.equal(calls(client(), 'sendMessage').length, 0);
  });
});

describe('wwebjs engine: sending', () => {
  test('a number that is not on WhatsApp is 404 not_on_whatsapp and nothing is sent', async () => {
    const { app, client } = await linked();
    assertStatus(await send(app, { to: '+4915199999999' }), 404, 'not_on_whatsapp');
    assertStatus(await send(app, { to: '4915199999999@c.us' }), 404, 'not_on_whatsapp');
    assert.equal(calls(client(), 'sendMessage').length, 0);
  });

  test('groups are sent to by their @g.us id without a number lookup', async () => {
    const { app, client } = await linked();
    const response = await send(app, { to: '1203@g.us' });
    assert.equal(response.statusCode, 201);
    assert.equal(calls(client(), 'getNumberId').length, 0);
    assert.equal(calls(client(), 'sendMessage')[0][1], '1203@g.us');
    assertStatus(await send(app, { to: '9999@g.us' }), 404, 'not_on_whatsapp');
  });

  test('media goes as MessageMedia with the text as caption', async () => {
    const { app, client } = await linked();
    const data = Buffer.from('%PDF-1.4').toString('base64');
    const response = await send(app, {
      to: `+${REGISTERED}`,
      text: 'the invoice',
      media: { mimetype: 'application/pdf', filename: 'invoice.pdf', data_base64: data },
    });
    assert.equal(response.statusCode, 201);
    const [, , content, options] = calls(client(), 'sendMessage')[0];
    assert.ok(content instanceof FakeMessageMedia);
    assert.deepEqual(
      { ...content },
      { mimetype: 'application/pdf', data, filename: 'invoice.pdf' },
    );
    assert.equal(options.caption, 'the invoice');
  });

  test('a send WhatsApp refuses is 502 send_failed and may be retried with the same key', async () => {
    const { app, world, client } = await linked();
    world.sendFails = true;
    assertStatus(
      await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k1' }),
      502,
      'send_failed',
    );
    world.lookupFails = true;
    assertStatus(
      await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k1' }),
      502,
      'send_failed',
    );
    world.sendFails = false;
    world.lookupFails = false;
    const retry = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k1' });
    assert.equal(retry.statusCode, 201);
    assert.equal(retry.json().duplicate, false);
    assert.equal(client().sent, 1);
  });

  test('contacts are the saved people, groups the group chats with their size', async () => {
    const { app } = await linked();
    const contacts = await app.inject(authed({ method: 'GET', url: '/contacts' }));
    assert.deepEqual(contacts.json(), [{ id: '491511@c.us', name: 'Ann', number: '491511' }]);
    const groups = await app.inject(authed({ method: 'GET', url: '/groups' }));
    assert.deepEqual(groups.json(), [
      { id: '1203@g.us', name: 'Family', participants: ['491511@c.us', '491512@c.us'] },
    ]);
  });
});

describe('wwebjs engine: finding a sent message', () => {
  const personChat = `${REGISTERED}@c.us`;
  const query = (overrides = {}) => ({
    to: `+${REGISTERED}`,
    text: 'hello',
    media: null,
    since: new Date(),
    ...overrides,
  });

  test('looks the number up, reads the chat and answers the message like send does', async () => {
    const { engine, world, client } = await linked();
    const message = sentMessage(`true_${personChat}_3EB0A`);
    chatIn(world, personChat).push(message);
    const found = await engine.findSent(query({ since: new Date(message.timestamp * 1000) }));
    assert.deepEqual(found, {
      id: `true_${personChat}_3EB0A`,
      to: personChat,
      timestamp: new Date(message.timestamp * 1000).toISOString(),
    });
    assert.deepEqual(calls(client(), 'getNumberId'), [['getNumberId', REGISTERED]]);
    assert.deepEqual(calls(client(), 'getChatById'), [['getChatById', personChat]]);
    assert.deepEqual(calls(client(), 'fetchMessages'), [
      ['fetchMessages', personChat, { limit: 20, fromMe: true }],
    ]);
  });

  test('takes only a message from this account with this text, sent since the attempt began (2 s slack)', async () => {
    const { engine, world } = await linked();
    const since = new Date();
    const start = Math.floor(since.getTime() / 1000);
    chatIn(world, personChat).push(
      sentMessage('too-early', { timestamp: start - 3 }),
      sentMessage('other-text', { body: 'hello there' }),
      sentMessage('from-them', { fromMe: false }),
      sentMessage('with-media', { hasMedia: true }),
      sentMessage('answered-for-another-key'),
    );
    const skip = (id) => id === 'answered-for-another-key';
    assert.equal(await engine.findSent(query({ since, skip })), null);

    chatIn(world, personChat).push(sentMessage('just-before', { timestamp: start - 2 }));
    assert.equal((await engine.findSent(query({ since, skip }))).id, 'just-before');
  });

  test('a media message is found by its caption, or with no text by its empty body', async () => {
    const { engine, world } = await linked();
    const media = { mimetype: 'application/pdf', filename: 'a.pdf', data_base64: 'JVBERg==' };
    chatIn(world, personChat).push(
      sentMessage('text-only', { body: 'the invoice' }),
      sentMessage('captioned', { body: 'the invoice', hasMedia: true }),
      sentMessage('bare', { body: '', hasMedia: true }),
    );
    assert.equal((await engine.findSent(query({ text: 'the invoice', media }))).id, 'captioned');
    assert.equal((await engine.findSent(query({ text: '', media }))).id, 'bare');
    assert.equal((await engine.findSent(query({ text: 'the invoice' }))).id, 'text-only');
  });

  test('a media message whose upload has not finished is found by its type and raw caption', async () => {
    const { engine, world } = await linked();
    const media = { mimetype: 'image/jpeg', filename: 'a.jpg', data_base64: '/9j/' };
    // No directPath yet: hasMedia false, and body is not the caption (Message.js).
    chatIn(world, personChat).push(
      sentMessage('uploading', { type: 'image', body: '/9j/thumbnail', caption: 'look' }),
    );
    assert.equal((await engine.findSent(query({ text: 'look', media }))).id, 'uploading');
    assert.equal(await engine.findSent(query({ text: 'look' })), null); // not a text message
    assert.equal(await engine.findSent(query({ text: '/9j/thumbnail' })), null);
  });

  test('a message WhatsApp marked failed (ack -1) did not go out and is not taken', async () => {
    const { engine, world } = await linked();
    chatIn(world, personChat).push(sentMessage('failed', { ack: -1 }));
    assert.equal(await engine.findSent(query()), null);
    chatIn(world, personChat).push(sentMessage('out', { ack: 1 }));
    assert.equal((await engine.findSent(query())).id, 'out');
  });

  test('a group is read by its id without a number lookup; an unknown chat or number has nothing', async () => {
    const { engine, world, client } = await linked();
    chatIn(world, '1203@g.us').push(sentMessage('in-group'));
    assert.equal((await engine.findSent(query({ to: '1203@g.us' }))).id, 'in-group');
    assert.equal(calls(client(), 'getNumberId').length, 0);
    assert.equal(await engine.findSent(query({ to: '9999@g.us' })), null);
    assert.equal(await engine.findSent(query({ to: '+4915199999999' })), null);
  });

  test('throws send_failed when WhatsApp Web cannot be read, and not_ready unless WORKING', async () => {
    const { engine, world, client } = await linked();
    world.chatReadFails = true;
    await assert.rejects(engine.findSent(query()), { code: 'send_failed' });
    world.chatReadFails = false;
    world.lookupFails = true;
    await assert.rejects(engine.findSent(query()), { code: 'send_failed' });
    client().disconnect('CONFLICT');
    await assert.rejects(engine.findSent(query()), { code: 'not_ready' });
  });

  test('a sendMessage that throws after WhatsApp Web took the message answers 201 once; the retry is a duplicate', async () => {
    const { app, world, client } = await linked();
    world.failAfterAdding = true;
    const first = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k2' });
    assert.equal(first.statusCode, 201, first.body);
    assert.equal(first.json().duplicate, false);
    assert.equal(first.json().id, `true_${personChat}_3EB01`);
    const retry = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k2' });
    assert.deepEqual(retry.json(), { ...first.json(), duplicate: true });
    assert.equal(client().sent, 1);
  });

  test('a retry whose earlier attempt cannot be checked sends nothing until it can', async () => {
    const { app, world, client } = await linked();
    world.failAfterAdding = true;
    world.chatReadFails = true;
    const first = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k3' });
    assertStatus(first, 502, 'send_failed');
    const retry = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k3' });
    assertStatus(retry, 502, 'send_failed');
    assert.match(retry.json().error.message, /earlier attempt/);
    assert.equal(client().sent, 1);

    world.chatReadFails = false;
    const checked = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k3' });
    assert.equal(checked.statusCode, 201, checked.body);
    assert.equal(checked.json().duplicate, true);
    assert.equal(client().sent, 1);
  });
});

describe('wwebjs engine: connection loss', () => {
  test('disconnected -> STARTING, then a new Client on the same session; the old one is not destroyed twice', async () => {
    const { engine, events, world, dataDir } = await linked();
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    const first = world.clients[0];

    first.disconnect('CONFLICT');
    assert.equal(engine.state, 'STARTING');
    assert.deepEqual(states(events).slice(-2), ['WORKING', 'STARTING']);
    await eventually(() => world.clients.length === 2, { what: 'a new Client' });
    const second = world.clients[1];
    await eventually(() => calls(second, 'initialize').length === 1, { what: 'initialize' });
    assert.ok(existsSync(join(profileDir, 'Local State')), 'the session is kept');
    assert.equal(
      calls(first, 'destroy').length,
      1,
      'only whatsapp-web.js destroyed the old client',
    );

    second.link();
    assert.equal(engine.state, 'WORKING');
    first.showQr('2@stale'); // events of the replaced client are ignored
    assert.equal(engine.state, 'WORKING');
  });

  test('UNPAIRED (logged out on the phone) removes the session before the new Client', async () => {
    const { events, world, dataDir } = await linked();
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    world.onInitialize = (client) => {
      client.profileExisted = existsSync(join(profileDir, 'Local State'));
    };
    world.clients[0].disconnect('UNPAIRED');
    await eventually(
      () => world.clients.length === 2 && calls(world.clients[1], 'initialize').length === 1,
    );
    assert.equal(world.clients[1].profileExisted, false);
    world.clients[1].showQr('2@again');
    assert.deepEqual(states(events).slice(-2), ['STARTING', 'SCAN_QR_CODE']);
  });

  test('LOGOUT keeps the same Client, which shows a new QR (whatsapp-web.js reloads the page itself)', async () => {
    const { engine, world } = await linked();
    world.clients[0].disconnect('LOGOUT');
    assert.equal(engine.state, 'STARTING');
    world.clients[0].showQr('2@relink');
    assert.equal(engine.state, 'SCAN_QR_CODE');
    assert.equal(world.clients.length, 1);
    assert.equal(calls(world.clients[0], 'destroy').length, 0);
  });

  test('a failed start is FAILED, and the engine tries again with a new Client', async () => {
    let failures = 1;
    const { events, world } = await startWwebjsApp({
      world: {
        onInitialize() {
          if (failures > 0) {
            failures -= 1;
            throw new Error('Failed to launch the browser process');
          }
        },
      },
    });
    await eventually(
      () => world.clients.length === 2 && calls(world.clients[1], 'initialize').length === 1,
    );
    assert.ok(states(events).includes('FAILED'));
    assert.equal(calls(world.clients[0], 'destroy').length, 1);
  });
});

describe('wwebjs engine: stopping and unlinking', () => {
  test('shutdown destroys the client once and never logs out', async () => {
    const { app, engine, world, events } = await linked();
    await app.shutdown();
    const [client] = world.clients;
    assert.equal(calls(client, 'destroy').length, 1);
    assert.equal(calls(client, 'logout').length, 0);
    assert.equal(engine.state, 'STOPPED');
    assert.equal(states(events).at(-1), 'STOPPED');
    assert.equal(events.closed, true);
  });

  test('shutdown after a disconnect does not destroy the disconnected client again', async () => {
    const { app, world } = await startWwebjsApp({ world: {} });
    world.clients[0].link();
    world.clients[0].disconnect('NAVIGATION');
    await app.shutdown();
    assert.equal(calls(world.clients[0], 'destroy').length, 1);
    for (const client of world.clients) assert.equal(calls(client, 'logout').length, 0);
  });

  test('shutdown while the browser is still launching waits for it and closes it', async () => {
    const { app, world } = await startWwebjsApp({
      world: {
        onInitialize(client) {
          client.pupBrowser = null;
          setTimeout(() => {
            client.pupBrowser = { isConnected: () => client.browserOpen };
          }, 20);
          return new Promise(() => {}); // WhatsApp Web never finishes loading
        },
      },
    });
    await app.shutdown();
    assert.deepEqual(calls(world.clients[0], 'destroy'), [['destroy', true]]);
  });

  test('POST /session/logout logs out, removes the session and starts a new Client for a QR', async () => {
    const { app, world, dataDir } = await linked();
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    const response = await app.inject(authed({ method: 'POST', url: '/session/logout' }));
    assert.equal(response.statusCode, 204);
    assert.equal(calls(world.clients[0], 'logout').length, 1);
    assert.equal(existsSync(profileDir), false);
    assert.equal(world.clients.length, 2);
  });
});

describe('Chromium profile locks', () => {
  test('stale Singleton* files are removed before initialize(); the rest of the profile stays', async () => {
    const dataDir = await tempDir({ keep: true });
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(join(profileDir, 'Default'), { recursive: true });
    await symlink('old-host-4242', join(profileDir, 'SingletonLock')); // dangling, as Chromium leaves it
    await symlink('/tmp/gone/SingletonSocket', join(profileDir, 'SingletonSocket'));
    await symlink('123456789', join(profileDir, 'SingletonCookie'));
    await writeFile(join(profileDir, 'Default', 'Preferences'), '{}');

    let atInitialize = null;
    await startWwebjsApp({
      dataDir,
      world: {
        async onInitialize() {
          atInitialize = (await readdir(profileDir)).sort();
        },
      },
    });
    after(() => rm(dataDir, { recursive: true, force: true }));
    await eventually(() => atInitialize !== null);
    assert.deepEqual(atInitialize, ['Default']);
    assert.ok((await lstat(join(profileDir, 'Default', 'Preferences'))).isFile());
  });

  test('a Chromium left running on the profile by a killed service is ended before the new start', async () => {
    const dataDir = await tempDir({ keep: true });
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    // Stands in for the orphaned browser: a process whose arguments name the profile.
    const orphan = spawn(
      process.execPath,
      ['-e', 'setInterval(() => {}, 100000)', '--', `--user-data-dir=${profileDir}`],
      {
        stdio: 'ignore',
      },
    );
    after(() => orphan.kill('SIGKILL'));
    await once(orphan, 'spawn');
    await symlink(`${hostname()}-${orphan.pid}`, join(profileDir, 'SingletonLock'));
    assert.equal(await chromiumHoldingProfile(profileDir), orphan.pid);
    const ended = once(orphan, 'exit');

    let orphanAliveAtInitialize = null;
    await startWwebjsApp({
      dataDir,
      world: {
        onInitialize() {
          orphanAliveAtInitialize = orphan.exitCode === null && orphan.signalCode === null;
        },
      },
    });
    after(() => rm(dataDir, { recursive: true, force: true }));
    const [, signal] = await ended;
    assert.equal(signal, 'SIGTERM');
    await eventually(() => orphanAliveAtInitialize !== null);
    assert.equal(orphanAliveAtInitialize, false);
  });

  test('a lock naming another host or a process that is not Chromium on this profile is left alone', async () => {
    const dir = await tempDir();
    await symlink(`other-host-${process.pid}`, join(dir, 'SingletonLock'));
    assert.equal(await chromiumHoldingProfile(dir), null);
    await unlinkLock(dir);
    await symlink(`${hostname()}-${process.pid}`, join(dir, 'SingletonLock')); // the test runner itself
    assert.equal(await chromiumHoldingProfile(dir), null);
  });

  test('removeSingletonLocks tolerates a profile without locks', async () => {
    const dir = await tempDir();
    assert.deepEqual(await removeSingletonLocks(join(dir, 'missing')), []);
  });
});

test('CHROMIUM_ARGS are the headless server flags', () => {
  assert.ok(CHROMIUM_ARGS.includes('--no-sandbox'));
  assert.ok(CHROMIUM_ARGS.includes('--disable-dev-shm-usage'));
});

async function unlinkLock(dir) {
  await rm(join(dir, 'SingletonLock'), { force: true });
}

function assertStatus(response, status, code) {
  assert.equal(response.statusCode, status, response.body);
  if (code) assert.equal(response.json().error.code, code);
}
