import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createRequire } from 'node:module';
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
import { delay } from '../src/engines/engine.js';
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

// Words of puppeteer 24 and whatsapp-web.js 1.34.7, as they came out of the real Client on
// Debian's Chromium (an unresolvable web.whatsapp.com, a second browser on the profile, a
// killed browser).
const FRAME_DETACHED = "Attempted to use detached Frame '3F9AE5061BDAC86FE565025C8D5707C8'.";
const TARGET_CLOSED = 'Protocol error (Runtime.callFunctionOn): Target closed';
const SESSION_CLOSED =
  'Protocol error (Runtime.callFunctionOn): Session closed. Most likely the page has been closed.';
const UNRESOLVED = 'net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/';
const TROUBLESHOOTING = '\n\nTROUBLESHOOTING: https://pptr.dev/troubleshooting\n';
const RUNNING_BUILD = '2.3000.1031490220';

/** puppeteer's Browser as whatsapp-web.js uses it: connected until closed or crashed. */
class FakeBrowser extends EventEmitter {
  connected = true;
  isConnected() {
    return this.connected;
  }
  async close() {
    this.gone();
  }
  gone() {
    if (!this.connected) return;
    this.connected = false;
    this.emit('disconnected');
  }
}

/**
 * Stands in for whatsapp-web.js's Client: an EventEmitter with the methods the engine uses.
 * It records every call, and the test drives it with the events the real one emits. Like the
 * real one it has no browser until initialize() launched it (`world.launchError` makes the
 * launch fail), and once its page is gone (breakPage, crash) every call into it throws.
 */
class FakeClient extends EventEmitter {
  calls = [];
  info = null;
  sent = 0;
  pupBrowser = null;
  pageError = null;

  constructor(options, world) {
    super();
    this.options = options;
    this.world = world;
  }

  get browserOpen() {
    return this.pupBrowser?.isConnected() ?? false;
  }

  async initialize() {
    this.calls.push(['initialize']);
    // LocalAuth.beforeBrowserInitialized(): the profile directory exists before the launch.
    const { dataPath, clientId } = this.options.authStrategy.options;
    mkdirSync(join(dataPath, `session-${clientId}`), { recursive: true });
    const launchError = this.world.launchError?.(this);
    if (launchError) throw new Error(launchError);
    this.pupBrowser = new FakeBrowser();
    await this.world.onInitialize(this);
  }

  async destroy() {
    this.calls.push(['destroy', this.pupBrowser !== null]);
    if (this.pupBrowser?.isConnected()) await this.pupBrowser.close();
  }

  async logout() {
    this.calls.push(['logout']);
    await this.pupBrowser.close();
  }

  /** What every call into the page meets once the page is gone. */
  page() {
    if (this.pageError) throw new Error(this.pageError);
  }

  async getState() {
    this.calls.push(['getState']);
    this.page();
    if (this.world.stateHangs?.(this)) return new Promise(() => {});
    return this.world.pageState?.(this) ?? 'CONNECTED';
  }

  async getWWebVersion() {
    this.page();
    return this.world.runningBuild ?? RUNNING_BUILD;
  }

  async getNumberId(number) {
    this.calls.push(['getNumberId', number]);
    this.page();
    if (this.world.lookupFails || this.world.lookupFailsFor?.has(number)) {
      throw new Error('Evaluation failed');
    }
    if (this.world.lookupHangs) return new Promise(() => {});
    return number === REGISTERED
      ? { server: 'c.us', user: number, _serialized: `${number}@c.us` }
      : null;
  }

  async sendMessage(chatId, content, options) {
    this.calls.push(['sendMessage', chatId, content, options]);
    this.page();
    if (this.world.sendFails) throw new Error(this.world.sendError ?? 'Error: No LID for user');
    if (chatId.endsWith('@g.us') && !this.world.groups.includes(chatId)) return undefined;
    this.sent += 1;
    this.world.sent = (this.world.sent ?? 0) + 1;
    const media = typeof content !== 'string';
    const message = sentMessage(`true_${chatId}_3EB0${this.world.sent}`, {
      body: media ? (options.caption ?? '') : content,
      hasMedia: media,
    });
    chatIn(this.world, chatId).push(message);
    // Like Utils.js: the message is in the chat (WhatsApp Web sends it from there) before the
    // send result is awaited, and a page error after that point reaches the caller.
    if (this.world.failAfterAdding) throw new Error('Evaluation failed: t');
    if (this.world.pageGoneAfterAdding) {
      this.breakPage();
      throw new Error(TARGET_CLOSED);
    }
    return message;
  }

  async getChatById(chatId) {
    this.calls.push(['getChatById', chatId]);
    this.page();
    if (this.world.chatReadFails) throw new Error('Evaluation failed: TypeError');
    const messages = this.world.chats.get(chatId);
    if (!messages) return undefined;
    return {
      id: { _serialized: chatId },
      fetchMessages: async (options) => {
        this.calls.push(['fetchMessages', chatId, options]);
        this.page();
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
    this.calls.push(['getMessageById', id]);
    this.page();
    for (const messages of this.world.chats.values()) {
      const found = messages.find((message) => message.id._serialized === id);
      if (found) return found;
    }
    return null;
  }

  async getContacts() {
    this.page();
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
    this.page();
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

  /** The session is restored or the QR scanned: `authenticated`, with the account known. */
  authenticate() {
    this.info = { wid: { _serialized: OWNER.id, user: '4915100000000' }, pushname: OWNER.name };
    this.emit('authenticated');
  }

  link() {
    this.authenticate();
    this.emit('ready');
  }

  showLoading(percent) {
    this.percent = percent;
    this.emit('loading_screen', percent, 'WhatsApp');
  }

  ack(id, ack) {
    this.emit('message_ack', { id: { fromMe: true, _serialized: id } }, ack);
  }

  /** Like whatsapp-web.js: emit 'disconnected', then destroy itself (LOGOUT excepted). */
  disconnect(reason) {
    this.emit('disconnected', reason);
    if (reason !== 'LOGOUT') this.destroy();
  }

  /** Like Client.inject() when the auth strategy refuses the session: emit, then destroy. */
  async refuseSession(message) {
    this.emit('auth_failure', message);
    await this.destroy();
  }

  /** The page's frame detached (hours idle, #5678): the browser runs, the page is gone. */
  breakPage() {
    this.pageError = FRAME_DETACHED;
  }

  /** Chromium died: the browser disconnects and the page's frame is detached. */
  crash() {
    this.pageError = FRAME_DETACHED;
    this.pupBrowser.gone();
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

/** Stands in for pino: records every line (level, fields, message), debug included. */
class RecordingLog {
  lines = [];
  constructor() {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) {
      this[level] = (fields, message) =>
        typeof fields === 'string'
          ? this.lines.push({ level, fields: {}, message: fields })
          : this.lines.push({ level, fields: fields ?? {}, message });
    }
  }
  child() {
    return this;
  }
  /** The lines at info or above: what a production log shows. */
  shown() {
    return this.lines.filter((line) => line.level !== 'debug' && line.level !== 'trace');
  }
  saying(message) {
    return this.lines.filter((line) => line.message.startsWith(message));
  }
}

/**
 * A wwebjs-engine app whose Clients are fakes; `world.clients` lists every Client made. `env`
 * adds settings; `probe` is how long the engine waits for the page to answer.
 */
async function startWwebjsApp({
  dataDir,
  world: worldOptions = {},
  env = {},
  probe = { timeoutMs: 1000, intervalMs: 5 },
  engineOptions = {},
} = {}) {
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
    ...env,
  });
  const log = new RecordingLog();
  const engine = new WwebjsEngine({
    dataDir: config.dataDir,
    chromiumPath: config.chromiumPath,
    reconnect: config.reconnect,
    ...config.wwebjs,
    probe,
    log,
    library,
    ...engineOptions,
  });
  const events = new RecordedEvents();
  const app = buildApp(config, engine, { events });
  after(async () => {
    await app.close();
    if (!dataDir) await rm(dir, { recursive: true, force: true });
  });
  await app.ready();
  const client = () => world.clients.at(-1);
  return { app, engine, events, world, client, log, dataDir: dir };
}

/** Links the current Client and waits until the engine checked the page and is WORKING. */
async function link({ engine, client }) {
  client().link();
  await eventually(() => engine.state === 'WORKING', { what: 'WORKING' });
}

async function linked(options) {
  const started = await startWwebjsApp(options);
  await link(started);
  return started;
}

/** Waits until `world` has `count` Clients and the last one was initialized. */
async function clientsMade(world, count) {
  await eventually(
    () => world.clients.length >= count && calls(world.clients.at(-1), 'initialize').length === 1,
    { what: `${count} Clients` },
  );
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
    assert.deepEqual(health, {
      status: 'ok',
      engine: 'wwebjs',
      state: 'SCAN_QR_CODE',
      me: null,
      failure: null,
    });
    const qr = await app.inject(authed({ method: 'GET', url: '/session/qr' }));
    assert.equal(qr.json().qr, '2@first-qr');
    assert.deepEqual(events.named('session.qr'), [{ qr: '2@first-qr' }]);

    await link({ engine, client });
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

  test('POST /messages/acks answers from getMessageById what no ack event told it', async () => {
    const world = { clients: [], groups: [], chats: new Map(), onInitialize() {} };
    const { app, engine, client } = await linked({ world });
    // Sent by an earlier run of the service, read since; this run saw no ack event for it.
    const read = `true_${REGISTERED}@c.us_3EB0EARLIER`;
    chatIn(world, `${REGISTERED}@c.us`).push(sentMessage(read, { ack: 3 }));
    const theirs = `false_${REGISTERED}@c.us_3EB0THEIRS`;
    chatIn(world, `${REGISTERED}@c.us`).push(sentMessage(theirs, { ack: 3, fromMe: false }));
    const { id: sent } = (await send(app, { to: `+${REGISTERED}` })).json();
    client().ack(sent, 2);

    const response = await app.inject(
      authed({ method: 'POST', url: '/messages/acks', payload: { ids: [read, sent, theirs] } }),
    );
    assert.deepEqual(response.json(), {
      acks: [
        { id: read, ack: 3 },
        { id: sent, ack: 2 },
        { id: theirs, ack: null },
      ],
    });
    // The ack event it saw is answered from memory; the others from the page.
    assert.deepEqual(calls(client(), 'getMessageById'), [
      ['getMessageById', read],
      ['getMessageById', theirs],
    ]);

    // Not linked: what it does not remember is unknown, and the page is not asked.
    client().disconnect('NAVIGATION');
    await eventually(() => engine.state !== 'WORKING', { what: 'not WORKING' });
    const later = await app.inject(
      authed({ method: 'POST', url: '/messages/acks', payload: { ids: [read, sent] } }),
    );
    assert.deepEqual(later.json().acks, [
      { id: read, ack: null },
      { id: sent, ack: 2 },
    ]);
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

describe('wwebjs engine: checking numbers', () => {
  const check = (app, numbers) =>
    app.inject(authed({ method: 'POST', url: '/contacts/check', payload: { numbers } }));

  test('each number is looked up once, in digits: its WhatsApp id, or not on WhatsApp', async () => {
    const { app, client } = await linked();
    const response = await check(app, [`+${REGISTERED}`, '+4915199999999', `+${REGISTERED}`]);
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      numbers: [
        { number: `+${REGISTERED}`, on_whatsapp: true, whatsapp_id: `${REGISTERED}@c.us` },
        { number: '+4915199999999', on_whatsapp: false, whatsapp_id: null },
      ],
    });
    assert.deepEqual(
      calls(client(), 'getNumberId').map(([, number]) => number),
      [REGISTERED, '4915199999999'],
    );
    assert.equal(calls(client(), 'sendMessage').length, 0);
  });

  test('before the account is linked the check is 409 not_ready and asks WhatsApp nothing', async () => {
    const { app, client } = await startWwebjsApp();
    client().showQr('2@qr');
    assertStatus(await check(app, [`+${REGISTERED}`]), 409, 'not_ready');
    assert.equal(calls(client(), 'getNumberId').length, 0);
  });

  test('a lookup that fails or gets no answer is 502 send_failed, without the number', async () => {
    const { app, world } = await linked({ engineOptions: { lookupTimeoutMs: 50 } });
    world.lookupFails = true;
    const failed = await check(app, [`+${REGISTERED}`]);
    assertStatus(failed, 502, 'send_failed');
    assert.match(failed.json().error.message, /Evaluation failed/);
    assert.doesNotMatch(failed.json().error.message, new RegExp(REGISTERED));
    world.lookupFails = false;
    world.lookupHangs = true;
    const hung = await check(app, [`+${REGISTERED}`]);
    assertStatus(hung, 502, 'send_failed');
    assert.match(hung.json().error.message, /no answer within 50 ms/);
  });

  test('a lookup that fails after others answered answers those and leaves the rest out', async () => {
    const { app, world, client } = await linked();
    world.lookupFailsFor = new Set(['4915199999998']);
    const response = await check(app, [
      `+${REGISTERED}`,
      '+4915199999999',
      '+4915199999998',
      '+4915199999997',
    ]);
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      numbers: [
        { number: `+${REGISTERED}`, on_whatsapp: true, whatsapp_id: `${REGISTERED}@c.us` },
        { number: '+4915199999999', on_whatsapp: false, whatsapp_id: null },
      ],
    });
    // Stops at the failed lookup: the last number is not asked.
    assert.deepEqual(
      calls(client(), 'getNumberId').map(([, number]) => number),
      [REGISTERED, '4915199999999', '4915199999998'],
    );
  });

  test('numbers that are not +E164, none, or more than 50 are 400 invalid_request', async () => {
    const { app, client } = await linked();
    assertStatus(await check(app, ['4915112345678']), 400, 'invalid_request');
    assertStatus(await check(app, ['1203@g.us']), 400, 'invalid_request');
    assertStatus(await check(app, []), 400, 'invalid_request');
    const many = Array.from({ length: 51 }, (_, i) => `+49151000000${String(i).padStart(2, '0')}`);
    assertStatus(await check(app, many), 400, 'invalid_request');
    assert.equal((await check(app, many.slice(0, 50))).statusCode, 200);
    assert.equal(calls(client(), 'getNumberId').length, 50);
  });

  test("WhatsApp's reach-out limit (error 463) is 403 reachout_limited, not a retryable failure", async () => {
    const { app, world } = await linked();
    world.sendFails = true;
    world.sendError = 'server returned error 463';
    const refused = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'k463' });
    assertStatus(refused, 403, 'reachout_limited');
    assert.match(refused.json().error.message, /reach-out limit/);
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

    await link({ engine, client: () => second });
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
});

/** The failures the engine announced, in order, as [state, code] (null code: none). */
const failures = (events) =>
  events.named('session.status').map(({ state, failure }) => [state, failure?.code ?? null]);

describe('wwebjs engine: saying why it does not work', () => {
  test('an unreachable WhatsApp Web is FAILED whatsapp_web_unreachable, retried, and the reason stays while STARTING until it loads', async () => {
    let unreachable = 3;
    const { app, engine, events, world, client } = await startWwebjsApp({
      world: {
        onInitialize() {
          if (unreachable > 0) {
            unreachable -= 1;
            throw new Error(UNRESOLVED);
          }
        },
      },
    });
    await clientsMade(world, 4);
    const health = (await app.inject({ method: 'GET', url: '/health' })).json();
    assert.equal(health.state, 'STARTING');
    assert.equal(health.failure.code, 'whatsapp_web_unreachable');
    assert.equal(health.failure.message, UNRESOLVED);
    assert.ok(!Number.isNaN(Date.parse(health.failure.since)));
    assert.deepEqual(failures(events), [
      ['STARTING', null],
      ['FAILED', 'whatsapp_web_unreachable'],
      ['STARTING', 'whatsapp_web_unreachable'],
      ['FAILED', 'whatsapp_web_unreachable'],
      ['STARTING', 'whatsapp_web_unreachable'],
      ['FAILED', 'whatsapp_web_unreachable'],
      ['STARTING', 'whatsapp_web_unreachable'],
    ]);
    // Each failed Client's browser (it was up: the page failed) is closed.
    for (const failed of world.clients.slice(0, 3)) assert.equal(failed.browserOpen, false);

    client().showQr('2@qr'); // the page loaded: the reason is gone
    assert.equal(engine.failure, null);
    assert.equal(engine.state, 'SCAN_QR_CODE');
  });

  const launchFailures = [
    [
      'Browser was not found at the configured executablePath (/nowhere/chromium)',
      'chromium_missing',
      'Browser was not found at the configured executablePath (/nowhere/chromium)',
    ],
    [
      `Failed to launch the browser process:  spawn /usr/bin/chromium ENOENT\n\nstderr:\n${TROUBLESHOOTING}`,
      'chromium_missing',
      'Failed to launch the browser process:  spawn /usr/bin/chromium ENOENT',
    ],
    [
      'Failed to launch the browser process!\nspawn /usr/bin/chromium-browser ENOENT\n\n',
      'chromium_missing',
      'Failed to launch the browser process! | spawn /usr/bin/chromium-browser ENOENT',
    ],
    [
      `Failed to launch the browser process:  Code: 127\n\nstderr:\n/usr/bin/chromium: 1: vm: not found${TROUBLESHOOTING}`,
      'chromium_failed',
      'Failed to launch the browser process:  Code: 127 | /usr/bin/chromium: 1: vm: not found',
    ],
    [
      'The browser is already running for /data/wwebjs-auth/session-wasched. Use a different `userDataDir` or stop the running browser first.',
      'profile_locked',
      'The browser is already running for /data/wwebjs-auth/session-wasched. Use a different `userDataDir` or stop the running browser first.',
    ],
    [
      `Failed to launch the browser process!\n[1201/101010.123:ERROR:process_singleton_posix.cc(353)] Failed to create a ProcessSingleton for your profile directory. This means that running multiple instances would start multiple browser processes rather than opening a new window in the existing process. Aborting now to avoid profile corruption.${TROUBLESHOOTING}`,
      'profile_locked',
      null,
    ],
  ];
  for (const [launchError, code, message] of launchFailures) {
    test(`a launch failing with "${launchError.split('\n')[0].slice(0, 50)}" is FAILED ${code} with the browser's words, and retried`, async () => {
      let failing = 1;
      const { engine, events, world } = await startWwebjsApp({
        world: { launchError: () => (failing-- > 0 ? launchError : null) },
      });
      await clientsMade(world, 2);
      assert.deepEqual(failures(events).slice(1, 3), [
        ['FAILED', code],
        ['STARTING', code],
      ]);
      if (message) assert.equal(engine.failure.message, message);
      assert.ok(!engine.failure.message.includes('TROUBLESHOOTING'));
      assert.ok(!engine.failure.message.includes('\n'));
      assert.ok(engine.failure.message.length <= 300);
      assert.deepEqual(calls(world.clients[0], 'destroy'), [['destroy', false]]);
    });
  }

  test('a page error while loading that is no launch failure is never_ready, and a crash while loading chromium_failed', async () => {
    const { engine, events, world } = await startWwebjsApp({
      world: {
        onInitialize(client) {
          const made = client.world.clients.length;
          if (made === 1) throw 'auth timeout'; // whatsapp-web.js throws a string
          if (made === 2) {
            client.crash();
            throw new Error('Navigating frame was detached');
          }
        },
      },
    });
    await clientsMade(world, 3);
    const failed = events
      .named('session.status')
      .filter(({ failure }) => failure)
      .map(({ state, failure }) => [state, failure.code, failure.message]);
    assert.deepEqual(failed, [
      ['STARTING', 'never_ready', 'WhatsApp Web did not load its app (auth timeout)'],
      ['FAILED', 'chromium_failed', 'Chromium closed while loading: Navigating frame was detached'],
      [
        'STARTING',
        'chromium_failed',
        'Chromium closed while loading: Navigating frame was detached',
      ],
    ]);
    assert.equal(engine.failure.code, 'chromium_failed');
  });

  test('Chromium crashing while WORKING is chromium_failed, and it is started again on the kept session', async () => {
    const { engine, events, world, client, dataDir } = await linked();
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    client().crash();
    assert.deepEqual(failures(events).at(-1), ['FAILED', 'chromium_failed']);
    assert.equal(engine.failure.message, 'Chromium closed unexpectedly (browser disconnected)');
    await clientsMade(world, 2);
    assert.ok(existsSync(join(profileDir, 'Local State')), 'the session is kept');
    await link({ engine, client });
    assert.equal(engine.failure, null);
  });

  test('a session WhatsApp refuses is FAILED auth_failure, then a new QR on a fresh profile keeps the reason', async () => {
    const { engine, events, world, dataDir } = await startWwebjsApp();
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    await world.clients[0].refuseSession('Unable to log in. Are the session details valid?');
    assert.deepEqual(failures(events).at(-1), ['FAILED', 'auth_failure']);
    assert.equal(engine.failure.message, 'Unable to log in. Are the session details valid?');
    world.onInitialize = (client) => {
      client.profileExisted = existsSync(join(profileDir, 'Local State'));
    };
    await clientsMade(world, 2);
    assert.equal(world.clients[1].profileExisted, false, 'the refused session was removed');
    world.clients[1].showQr('2@again');
    assert.deepEqual(failures(events).at(-1), ['SCAN_QR_CODE', 'auth_failure']);
    assert.equal(calls(world.clients[0], 'logout').length, 0);
  });

  for (const reason of ['UNPAIRED', 'UNPAIRED_IDLE', 'LOGOUT']) {
    test(`logged out (${reason}) says logged_out, kept while the new QR is offered and cleared at WORKING`, async () => {
      const { app, engine, events, world, client } = await linked();
      world.clients[0].disconnect(reason);
      assert.deepEqual([engine.state, engine.failure?.code], ['STARTING', 'logged_out']);
      assert.equal(engine.failure.message, `WhatsApp ended this device's session (${reason})`);
      if (reason !== 'LOGOUT') await clientsMade(world, 2);
      client().showQr('2@relink');
      const health = (await app.inject({ method: 'GET', url: '/health' })).json();
      assert.deepEqual([health.state, health.failure.code], ['SCAN_QR_CODE', 'logged_out']);
      assert.deepEqual(events.named('session.qr').at(-1), { qr: '2@relink' });
      await link({ engine, client });
      assert.deepEqual(failures(events).at(-1), ['WORKING', null]);
    });
  }

  test('a connection taken over elsewhere (CONFLICT) reconnects without a failure', async () => {
    const { engine, world } = await linked();
    world.clients[0].disconnect('CONFLICT');
    assert.deepEqual([engine.state, engine.failure], ['STARTING', null]);
  });

  test('a long outage writes a few log lines, not some for every retry', async () => {
    const { engine, world, log } = await startWwebjsApp({
      world: {
        onInitialize(client) {
          if (client.world.clients.length <= 60) throw new Error(UNRESOLVED);
        },
      },
    });
    await clientsMade(world, 61);
    const shown = log.shown();
    const failed = log.saying('WhatsApp Web failed to start');
    assert.equal(failed.length, 60, 'each failure is still logged at debug');
    // The 1st, 2nd, 3rd and 10th failure in a row are shown, each with the browser's words.
    assert.deepEqual(
      shown
        .filter((line) => line.message.startsWith('WhatsApp Web failed to start'))
        .map((line) => [line.level, line.fields.times ?? 1, line.fields.err]),
      [1, 2, 3, 10].map((times) => ['error', times, UNRESOLVED]),
    );
    // ... and the lines of the first retries; none of the later ones.
    assert.equal(shown.filter((line) => line.message === 'reconnecting WhatsApp').length, 2);
    assert.equal(shown.filter((line) => line.message === 'starting WhatsApp Web').length, 3);
    assert.equal(shown.length, 9, JSON.stringify(shown.map((line) => line.message)));

    await link({ engine, client: () => world.clients.at(-1) });
    assert.deepEqual(log.saying('WhatsApp ready').map((line) => line.fields), [
      { afterFailures: 60 },
    ]);
  });

  test('a failure message never carries a phone number', async () => {
    const { engine } = await startWwebjsApp({
      world: {
        onInitialize() {
          throw new Error(
            'Evaluation failed: Error: invalid wid 4915112345678@c.us (+4915112345678)',
          );
        },
      },
    });
    await eventually(() => engine.failure);
    assert.equal(
      engine.failure.message,
      'WhatsApp Web did not start: Evaluation failed: Error: invalid wid <number> (<number>)',
    );
  });
});

describe('wwebjs engine: the ready watchdog', () => {
  test('authenticated but never ready: never_ready, the client is destroyed and launched again on the kept session, with backoff', async () => {
    const { app, engine, events, world, log, dataDir } = await startWwebjsApp({
      env: { WHATSAPP_READY_TIMEOUT_MS: '30' },
      world: {
        onInitialize(client) {
          client.authenticate(); // ready never follows
        },
      },
    });
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    await clientsMade(world, 6);
    assert.equal(engine.state, 'STARTING');
    assert.equal(engine.failure.code, 'never_ready');
    assert.equal(
      engine.failure.message,
      'WhatsApp Web was authenticated but not ready within 30 ms',
    );
    assertStatus(await send(app), 409, 'not_ready');
    assert.ok(existsSync(join(profileDir, 'Local State')), 'the session is kept');
    // Each Client is restarted once, never logged out, and the restarts back off (1 ms, doubling,
    // at most 5 ms here): no restart storm.
    for (const old of world.clients.slice(0, 5)) {
      assert.equal(calls(old, 'destroy').length, 1);
      assert.equal(calls(old, 'logout').length, 0);
    }
    const waits = log.saying('reconnecting WhatsApp').map((line) => line.fields.inMs);
    assert.deepEqual(waits.slice(0, 5), [1, 2, 4, 5, 5]);
    assert.ok(!states(events).includes('WORKING'));

    world.onInitialize = () => {};
    await clientsMade(world, world.clients.length); // the launch under way, if any
    await link({ engine, client: () => world.clients.at(-1) });
    assert.equal(engine.failure, null);
  });

  /** WhatsApp Web's loading screen as whatsapp-web.js reports it: each new percent, once. */
  const loadingUpTo = (top) => (client) => {
    let percent = 0;
    client.showLoading(percent);
    const progress = setInterval(() => {
      if (percent >= top || !client.browserOpen) return clearInterval(progress);
      percent += 1;
      client.showLoading(percent);
    }, 5);
  };

  test('a loading screen that stops moving is never_ready; the same percent again does not count', async () => {
    const { engine, world } = await startWwebjsApp({
      env: { WHATSAPP_READY_TIMEOUT_MS: '150' },
      world: {
        onInitialize(client) {
          loadingUpTo(5)(client);
          // whatsapp-web.js does not repeat a percent, but an older build could.
          const repeat = setInterval(() => {
            if (!client.browserOpen) return clearInterval(repeat);
            if (client.world.clients.length === 1) client.showLoading(0);
          }, 5);
        },
      },
    });
    await clientsMade(world, 2);
    assert.equal(engine.failure.code, 'never_ready');
    assert.equal(
      engine.failure.message,
      'WhatsApp Web stayed on its loading screen at 0% for 150 ms',
    );
    assert.equal(world.clients[0].browserOpen, false);
  });

  test('a loading screen that keeps moving is given time: WORKING after longer than the timeout', async () => {
    const { engine, world } = await startWwebjsApp({
      env: { WHATSAPP_READY_TIMEOUT_MS: '150' },
      world: { onInitialize: loadingUpTo(100) }, // about 500 ms of progress
    });
    await eventually(() => engine.failure !== null || world.clients[0].percent === 100);
    world.clients[0].link();
    await eventually(() => engine.state === 'WORKING' || world.clients.length > 1);
    assert.deepEqual([engine.state, world.clients.length], ['WORKING', 1]);
  });

  test('a page that never finishes loading (no QR, no authenticated) is never_ready too', async () => {
    const { engine, world } = await startWwebjsApp({
      env: { WHATSAPP_READY_TIMEOUT_MS: '30' },
      world: { onInitialize: () => new Promise(() => {}) },
    });
    await clientsMade(world, 2);
    assert.deepEqual([engine.state, engine.failure.code], ['STARTING', 'never_ready']);
    assert.equal(engine.failure.message, 'WhatsApp Web did not load within 30 ms');
  });

  test('after LOGOUT, a page that never shows the new QR is restarted too', async () => {
    const { engine, world } = await linked({ env: { WHATSAPP_READY_TIMEOUT_MS: '30' } });
    world.clients[0].disconnect('LOGOUT'); // whatsapp-web.js reloads the page: no QR comes
    await clientsMade(world, 2);
    assert.equal(engine.failure.code, 'never_ready');
    assert.equal(calls(world.clients[0], 'destroy').length, 1);
  });

  test('waiting for the QR to be scanned is not "never ready"', async () => {
    const { engine, world } = await startWwebjsApp({
      env: { WHATSAPP_READY_TIMEOUT_MS: '20' },
      world: { onInitialize: (client) => client.showQr('2@qr') },
    });
    await delay(100);
    assert.deepEqual(
      [engine.state, engine.failure, world.clients.length],
      ['SCAN_QR_CODE', null, 1],
    );
  });

  test('WHATSAPP_READY_TIMEOUT_MS=0 turns the watchdog off', async () => {
    const { engine, world, client } = await startWwebjsApp({
      env: { WHATSAPP_READY_TIMEOUT_MS: '0' },
    });
    client().authenticate();
    await delay(100);
    assert.deepEqual([engine.state, engine.failure, world.clients.length], ['STARTING', null, 1]);
  });
});

describe('wwebjs engine: checking the page is really connected', () => {
  test('ready on a page that is not CONNECTED is never_ready, not WORKING, and restarts keeping the session', async () => {
    const { app, engine, events, world, client, dataDir } = await startWwebjsApp({
      probe: { timeoutMs: 40, intervalMs: 5 },
      world: { pageState: (client) => (client === world.clients[0] ? 'OPENING' : 'CONNECTED') },
    });
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    client().link();
    await clientsMade(world, 2);
    assert.ok(calls(world.clients[0], 'getState').length > 1, 'asked again while OPENING');
    assert.ok(!states(events).includes('WORKING'));
    assert.deepEqual([engine.state, engine.failure.code], ['STARTING', 'never_ready']);
    assert.equal(
      engine.failure.message,
      'WhatsApp Web said ready but is not connected (state OPENING for 40 ms)',
    );
    assertStatus(await send(app), 409, 'not_ready');
    assert.equal(calls(world.clients[0], 'destroy').length, 1);
    assert.ok(existsSync(join(profileDir, 'Local State')), 'the session is kept');

    await link({ engine, client });
    assert.deepEqual(engine.me, OWNER);
  });

  test('ready without the account known, or a page that does not answer, is never_ready', async () => {
    const { engine, world } = await startWwebjsApp({
      probe: { timeoutMs: 30, intervalMs: 5 },
      world: { stateHangs: (client) => client === world.clients[1] },
    });
    world.clients[0].emit('ready'); // client.info was never set
    await eventually(() => engine.failure?.code === 'never_ready');
    assert.equal(engine.failure.message, 'WhatsApp Web said ready but has no account info');
    await clientsMade(world, 2);
    world.clients[1].link();
    await clientsMade(world, 3);
    assert.equal(
      engine.failure.message,
      'WhatsApp Web said ready but could not be asked its state: getState() gave no answer within 30 ms',
    );
  });
});

describe('wwebjs engine: a broken page', () => {
  test('a detached frame found by the page check: page_broken, STARTING, restarted on the kept session; sends 409 until WORKING', async () => {
    const { app, engine, events, world, client, dataDir } = await linked({
      env: { WHATSAPP_PAGE_CHECK_MS: '5' },
    });
    const { profileDir } = sessionPaths(dataDir);
    await mkdir(profileDir, { recursive: true });
    await writeFile(join(profileDir, 'Local State'), '{}');
    world.onInitialize = () => new Promise(() => {}); // the new page stays loading for now
    world.clients[0].breakPage();
    await eventually(() => engine.failure?.code === 'page_broken');
    assert.equal(engine.state, 'STARTING');
    assert.equal(engine.failure.message, FRAME_DETACHED);
    assertStatus(await send(app), 409, 'not_ready');
    await clientsMade(world, 2);
    assert.equal(calls(world.clients[0], 'destroy').length, 1);
    assert.equal(calls(world.clients[0], 'logout').length, 0);
    assert.ok(existsSync(join(profileDir, 'Local State')), 'the session is kept');

    await link({ engine, client });
    assert.deepEqual(failures(events).slice(-2), [
      ['STARTING', 'page_broken'],
      ['WORKING', null],
    ]);
    assert.equal((await send(app)).statusCode, 201);
  });

  test('a page check that gets no answer counts as a broken page', async () => {
    let hang = false;
    const { engine, world } = await linked({
      env: { WHATSAPP_PAGE_CHECK_MS: '5' },
      probe: { timeoutMs: 30, intervalMs: 5 },
      world: { stateHangs: () => hang },
    });
    hang = true;
    await clientsMade(world, 2);
    assert.equal(engine.failure.code, 'page_broken');
    assert.equal(engine.failure.message, 'getState() gave no answer within 30 ms');
  });

  test('the page is checked every WHATSAPP_PAGE_CHECK_MS while WORKING, and not at all with 0', async () => {
    const checked = await linked({ env: { WHATSAPP_PAGE_CHECK_MS: '5' } });
    await eventually(() => calls(checked.client(), 'getState').length >= 4);
    const unchecked = await linked({ env: { WHATSAPP_PAGE_CHECK_MS: '0' } });
    await delay(100);
    assert.equal(calls(unchecked.client(), 'getState').length, 1, 'only the check after ready');
  });

  test('a send whose page goes away is 502 send_failed as before and restarts the page; its retry is 409 until WORKING, then answered from the chat', async () => {
    const { app, engine, world, client } = await linked();
    world.pageGoneAfterAdding = true;
    const first = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'gone' });
    assertStatus(first, 502, 'send_failed');
    assert.match(first.json().error.message, /Target closed/);
    assert.deepEqual([engine.state, engine.failure.code], ['STARTING', 'page_broken']);
    assert.equal(engine.failure.message, TARGET_CLOSED);
    world.pageGoneAfterAdding = false;
    const during = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'gone' });
    assertStatus(during, 409, 'not_ready');

    await clientsMade(world, 2);
    await link({ engine, client });
    const retry = await send(app, { to: `+${REGISTERED}`, idempotency_key: 'gone' });
    assert.equal(retry.statusCode, 201, retry.body);
    assert.equal(retry.json().duplicate, true, 'found in the chat, not sent again');
    assert.equal(world.sent, 1);
  });

  for (const [what, error] of [
    ['a number lookup', FRAME_DETACHED],
    ['reading the chat', SESSION_CLOSED],
  ]) {
    test(`${what} that meets a closed page is send_failed and restarts the page`, async () => {
      const { engine, world, client } = await linked();
      chatIn(world, `${REGISTERED}@c.us`).push(sentMessage('x'));
      if (what === 'a number lookup') {
        client().breakPage();
      } else {
        client().getChatById = async () => {
          throw new Error(error);
        };
      }
      await assert.rejects(
        engine.findSent({ to: `+${REGISTERED}`, text: 'hello', since: new Date() }),
        { code: 'send_failed' },
      );
      assert.deepEqual([engine.state, engine.failure.code], ['STARTING', 'page_broken']);
      assert.equal(engine.failure.message, error);
      await clientsMade(world, 2);
    });
  }

  test('a page error that leaves the page working (a WhatsApp Web update) does not restart it', async () => {
    const { app, engine, world } = await linked();
    world.sendFails = true;
    assertStatus(await send(app), 502, 'send_failed');
    assert.deepEqual([engine.state, world.clients.length], ['WORKING', 1]);
  });
});

describe('wwebjs engine: a pinned WhatsApp Web build', () => {
  const require = createRequire(import.meta.url);
  const { createWebCache } = require('whatsapp-web.js/src/webCache/WebCacheFactory.js');

  test('unpinned, the current build runs and each build that ran is cached in the data dir', async () => {
    const { client, dataDir } = await startWwebjsApp();
    assert.equal(client().options.webVersion, undefined);
    assert.deepEqual(client().options.webVersionCache, {
      type: 'local',
      path: join(dataDir, 'wwebjs-cache'),
    });
  });

  test('WHATSAPP_WEB_VERSION is served from the local cache, and a build gone from it falls back to the current one', async () => {
    const { client, dataDir } = await startWwebjsApp({
      env: { WHATSAPP_WEB_VERSION: RUNNING_BUILD },
    });
    const { webVersion, webVersionCache } = client().options;
    assert.equal(webVersion, RUNNING_BUILD);
    assert.deepEqual(webVersionCache, {
      type: 'local',
      path: join(dataDir, 'wwebjs-cache'),
      strict: false,
    });
    // The library's own cache, with these options:
    const { type, ...options } = webVersionCache;
    const cache = createWebCache(type, options);
    await mkdir(options.path, { recursive: true });
    await writeFile(join(options.path, `${RUNNING_BUILD}.html`), '<html>pinned</html>');
    assert.equal(await cache.resolve(RUNNING_BUILD), '<html>pinned</html>');
    // null: whatsapp-web.js then loads the current build instead of failing.
    assert.equal(await cache.resolve('2.3000.1000000000'), null);
  });

  test('WHATSAPP_WEB_VERSION_URL serves the pinned build from a remote archive', async () => {
    const url = 'https://archive.example/html/{version}.html';
    const { client } = await startWwebjsApp({
      env: { WHATSAPP_WEB_VERSION: RUNNING_BUILD, WHATSAPP_WEB_VERSION_URL: url },
    });
    const { webVersion, webVersionCache } = client().options;
    assert.equal(webVersion, RUNNING_BUILD);
    assert.deepEqual(webVersionCache, { type: 'remote', remotePath: url, strict: false });
    const { type, ...options } = webVersionCache;
    assert.equal(createWebCache(type, options).remotePath, url);
  });

  test('when the pinned build could not be loaded, the log says which one runs instead (once)', async () => {
    const { engine, log, world } = await linked({
      env: { WHATSAPP_WEB_VERSION: '2.3000.1000000000', WHATSAPP_RECONNECT_MIN_MS: '1' },
    });
    await eventually(() => log.saying('the pinned WhatsApp Web build').length === 1);
    assert.deepEqual(log.saying('the pinned WhatsApp Web build')[0].fields, {
      pinned: '2.3000.1000000000',
      running: RUNNING_BUILD,
    });
    world.clients[0].disconnect('CONFLICT');
    await clientsMade(world, 2);
    await link({ engine, client: () => world.clients[1] });
    await delay(20);
    assert.equal(log.saying('the pinned WhatsApp Web build').length, 1);
  });

  test('a pinned build that never gets ready says which setting to change', async () => {
    const { engine } = await startWwebjsApp({
      env: { WHATSAPP_WEB_VERSION: '2.3000.1000000000', WHATSAPP_READY_TIMEOUT_MS: '20' },
      world: { onInitialize: () => new Promise(() => {}) },
    });
    await eventually(() => engine.failure?.code === 'never_ready');
    assert.match(engine.failure.message, /WHATSAPP_WEB_VERSION pins build 2\.3000\.1000000000/);
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
    const { app, world } = await linked();
    world.clients[0].disconnect('NAVIGATION');
    await app.shutdown();
    assert.equal(calls(world.clients[0], 'destroy').length, 1);
    for (const client of world.clients) assert.equal(calls(client, 'logout').length, 0);
  });

  test('shutdown while the browser is still launching waits for it and closes it', async () => {
    const { app, world } = await startWwebjsApp({
      world: {
        onInitialize(client) {
          const browser = client.pupBrowser;
          client.pupBrowser = null; // puppeteer.launch() has not returned yet
          setTimeout(() => {
            client.pupBrowser = browser;
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
    await writeFile(join(profileDir, 'Local State'), '{}');
    const response = await app.inject(authed({ method: 'POST', url: '/session/logout' }));
    assert.equal(response.statusCode, 204);
    assert.equal(calls(world.clients[0], 'logout').length, 1);
    // The new Client's LocalAuth makes the profile directory again, empty.
    assert.equal(existsSync(join(profileDir, 'Local State')), false);
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
