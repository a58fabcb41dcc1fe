import { readFile, readlink, rm, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import wwebjs from 'whatsapp-web.js';
import { ServiceError } from '../errors.js';
import { Engine, delay, parseRecipient } from './engine.js';

// The only module that imports whatsapp-web.js.

export const CLIENT_ID = 'wasched';
export const SINGLETON_FILES = Object.freeze([
  'SingletonLock',
  'SingletonSocket',
  'SingletonCookie',
]);
// Headless Chromium on a server: no setuid sandbox (often root, no user namespaces), and a small
// /dev/shm in containers.
export const CHROMIUM_ARGS = Object.freeze([
  '--no-sandbox',
  '--disable-setuid-sandbox',
  '--disable-dev-shm-usage',
  '--disable-gpu',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-extensions',
]);
// Disconnect reasons after which WhatsApp no longer knows this device: the session is void.
const LOGGED_OUT_REASONS = new Set(['LOGOUT', 'UNPAIRED', 'UNPAIRED_IDLE']);
const REMEMBERED_ACKS = 10000;
// findSent looks among this many of the chat's latest messages from this account, and allows
// this much for the send's start and WhatsApp's message time being taken on different clocks.
const FOUND_AMONG = 20;
const CLOCK_SLACK_S = 2;
// Message types of media (Constants.js MessageTypes). `hasMedia` needs the upload's
// directPath, so a media message whose upload has not finished is known by its type.
const MEDIA_TYPES = new Set(['image', 'video', 'document', 'audio', 'ptt', 'sticker']);
// MessageAck.ACK_ERROR: WhatsApp Web gave up on the message; it did not go out.
const ACK_ERROR = -1;

/** Where LocalAuth keeps the session (the Chromium profile) under the data directory. */
export function sessionPaths(dataDir) {
  const authDir = join(dataDir, 'wwebjs-auth');
  return {
    authDir,
    profileDir: join(authDir, `session-${CLIENT_ID}`),
    cacheDir: join(dataDir, 'wwebjs-cache'),
  };
}

/**
 * Removes the lock files a Chromium killed without closing leaves in its profile. They name
 * the old host and pid, and Chromium refuses the profile while they are there (after a crash
 * or when a container comes back with a new hostname). Safe only because this service is the
 * profile's single owner.
 */
export async function removeSingletonLocks(profileDir) {
  const removed = [];
  for (const name of SINGLETON_FILES) {
    try {
      await unlink(join(profileDir, name)); // unlink: SingletonLock is a (dangling) symlink
      removed.push(name);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

/**
 * The pid of a Chromium still running on `profileDir`, or null. When this service is killed
 * (SIGKILL, OOM) its Chromium lives on as an orphan holding the profile; the lock names
 * `<host>-<pid>`, and /proc tells whether that pid is a browser on this very profile.
 */
export async function chromiumHoldingProfile(profileDir) {
  let owner;
  try {
    owner = await readlink(join(profileDir, 'SingletonLock'));
  } catch {
    return null;
  }
  const match = /^(.+)-(\d+)$/.exec(owner);
  if (!match || match[1] !== hostname()) return null;
  const pid = Number(match[2]);
  try {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return args.includes(`--user-data-dir=${profileDir}`) ? pid : null;
  } catch {
    return null; // gone, or no /proc here
  }
}

/** Ends an orphaned Chromium (SIGTERM, then SIGKILL) so two browsers never share a profile. */
async function endOrphanedChromium(profileDir, log) {
  const pid = await chromiumHoldingProfile(profileDir);
  if (pid === null) return;
  log.warn({ pid }, 'a Chromium from an earlier run still holds the WhatsApp profile; ending it');
  for (const [signal, waitMs] of [
    ['SIGTERM', 5000],
    ['SIGKILL', 2000],
  ]) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (let waited = 0; waited < waitMs; waited += 50) {
      if (!isAlive(pid)) return;
      await delay(50);
    }
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The real engine: one whatsapp-web.js Client at a time on a LocalAuth session kept under the
 * data directory. `library` ({Client, LocalAuth, MessageMedia}) is injectable so tests can
 * drive the engine with a fake Client.
 */
export class WwebjsEngine extends Engine {
  name = 'wwebjs';
  #client = null;
  #stopping = false;
  #attempt = 0;
  #reconnectTimer = null;
  #destroyed = new WeakMap();
  #starting = new WeakMap();
  #closing = new Set();
  #acks = new Map();

  constructor({
    dataDir,
    chromiumPath,
    log,
    reconnect = { minMs: 2000, maxMs: 300000 },
    library = wwebjs,
  }) {
    super();
    this.paths = sessionPaths(dataDir);
    this.chromiumPath = chromiumPath;
    this.log = log;
    this.reconnect = reconnect;
    this.library = library;
  }

  async start() {
    this.#stopping = false;
    await this.#launch();
  }

  async #launch() {
    if (this.#stopping) return;
    await endOrphanedChromium(this.paths.profileDir, this.log);
    const removed = await removeSingletonLocks(this.paths.profileDir);
    if (removed.length > 0) this.log.warn({ removed }, 'removed stale Chromium profile locks');
    const { Client, LocalAuth } = this.library;
    const client = new Client({
      authStrategy: new LocalAuth({ clientId: CLIENT_ID, dataPath: this.paths.authDir }),
      puppeteer: { executablePath: this.chromiumPath, headless: true, args: [...CHROMIUM_ARGS] },
      webVersionCache: { type: 'local', path: this.paths.cacheDir },
    });
    this.#client = client;
    this.#listen(client);
    this.setSession('STARTING');
    this.log.info({ profile: this.paths.profileDir }, 'starting WhatsApp Web');
    const initializing = client.initialize();
    this.#starting.set(client, initializing);
    initializing.then(
      () => this.#starting.delete(client),
      () => this.#starting.delete(client),
    );
    initializing.catch((err) => {
      if (client !== this.#client) return;
      this.log.error({ err: describe(err) }, 'WhatsApp Web failed to start');
      this.#client = null;
      this.setSession('FAILED');
      this.#destroyOnce(client);
      this.#scheduleReconnect(client, { wipe: false });
    });
  }

  #listen(client) {
    // Events from a client that was replaced or is being shut down are ignored.
    const on = (event, handler) =>
      client.on(event, (...args) => {
        if (client === this.#client) handler(...args);
      });
    on('qr', (qr) => {
      this.log.info('QR code received; scan it to link the account');
      this.setSession('SCAN_QR_CODE', { qr });
    });
    on('code', () => this.log.info('pairing code renewed'));
    on('authenticated', () => {
      this.log.info('WhatsApp session authenticated');
      this.setSession('STARTING');
    });
    on('auth_failure', (message) => {
      this.log.error({ reason: String(message) }, 'WhatsApp session could not be restored');
      this.setSession('FAILED');
    });
    on('ready', () => {
      this.#attempt = 0;
      const info = client.info ?? {};
      const me = {
        id: info.wid?._serialized ?? null,
        name: info.pushname || info.wid?.user || null,
      };
      this.log.info({ me: me.id }, 'WhatsApp ready');
      this.setSession('WORKING', { me });
    });
    on('change_state', (state) => this.log.debug({ state }, 'WhatsApp connection state'));
    on('message_ack', (message, ack) => {
      if (!message?.id?.fromMe) return;
      const id = message.id._serialized;
      this.#rememberAck(id, ack);
      this.emit('ack', { id, ack });
    });
    on('disconnected', (reason) => this.#onDisconnected(client, String(reason)));
  }

  #onDisconnected(client, reason) {
    const loggedOut = LOGGED_OUT_REASONS.has(reason);
    this.log.warn({ reason, loggedOut }, 'WhatsApp disconnected');
    this.setSession('STARTING');
    if (reason === 'LOGOUT') {
      // whatsapp-web.js keeps this client: it wipes the LocalAuth profile itself, reloads the
      // page and emits a new QR.
      return;
    }
    // For any other reason whatsapp-web.js has already called destroy() on this client;
    // calling it again is how #1946 breaks, so only wait for its browser to close.
    this.#destroyed.set(client, this.#track(waitForBrowserClosed(client)));
    this.#client = null;
    this.#scheduleReconnect(client, { wipe: loggedOut });
  }

  #scheduleReconnect(oldClient, { wipe }) {
    if (this.#stopping) return;
    const wait = Math.min(this.reconnect.maxMs, this.reconnect.minMs * 2 ** this.#attempt);
    this.#attempt += 1;
    this.log.info(
      { inMs: wait, attempt: this.#attempt, keepSession: !wipe },
      'reconnecting WhatsApp',
    );
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(async () => {
      this.#reconnectTimer = null;
      try {
        await this.#destroyed.get(oldClient);
        if (this.#stopping) return;
        if (wipe) await rm(this.paths.profileDir, { recursive: true, force: true });
        await this.#launch();
      } catch (err) {
        this.log.error({ err: describe(err) }, 'reconnect failed');
        this.setSession('FAILED');
        this.#scheduleReconnect(oldClient, { wipe: false });
      }
    }, wait);
  }

  /** Closes the browser once per client, however many paths ask for it. */
  #destroyOnce(client) {
    if (!this.#destroyed.has(client)) {
      const destroying = this.#browserLaunched(client)
        .then(() => client.destroy())
        .catch((err) => this.log.warn({ err: describe(err) }, 'closing WhatsApp Web failed'));
      this.#destroyed.set(client, this.#track(destroying));
    }
    return this.#destroyed.get(client);
  }

  /** Remembers a browser being closed until it is, so stop() can wait for every one. */
  #track(closing) {
    this.#closing.add(closing);
    closing.finally(() => this.#closing.delete(closing));
    return closing;
  }

  /**
   * Waits (bounded) for a Client still launching its browser to have one, so that destroy()
   * closes it instead of leaving a Chromium behind.
   */
  async #browserLaunched(client) {
    for (
      let waited = 0;
      waited < 10000 && this.#starting.has(client) && !client.pupBrowser;
      waited += 50
    ) {
      await delay(50);
    }
  }

  /** Closes the browser, keeping the session on disk. Never logs out. */
  async stop() {
    this.#stopping = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const client = this.#client;
    this.#client = null;
    if (client) this.#destroyOnce(client);
    await Promise.all([...this.#closing]);
    this.setSession('STOPPED');
  }

  /** The chat id of a contract recipient; a number is looked up (not_on_whatsapp if absent). */
  async #chatIdOf(client, to) {
    const recipient = parseRecipient(to);
    if (recipient.kind === 'group') return recipient.chatId;
    let wid;
    try {
      wid = await client.getNumberId(recipient.digits);
    } catch (err) {
      throw new ServiceError(
        'send_failed',
        `could not look up ${to} on WhatsApp: ${describe(err)}`,
      );
    }
    if (!wid) throw new ServiceError('not_on_whatsapp', `${to} is not on WhatsApp`);
    return wid._serialized;
  }

  async send({ to, text, media }) {
    this.requireWorking('send');
    const client = this.#client;
    const recipient = parseRecipient(to);
    const chatId = await this.#chatIdOf(client, to);
    // sendSeen would mark the recipient's chat as read for the account's owner: not ours to do.
    const options = { sendSeen: false, waitUntilMsgSent: true };
    let content = text;
    if (media) {
      content = new this.library.MessageMedia(
        media.mimetype,
        media.data_base64,
        media.filename ?? null,
      );
      if (text) options.caption = text;
    }
    let message;
    try {
      message = await client.sendMessage(chatId, content, options);
    } catch (err) {
      throw new ServiceError('send_failed', `WhatsApp did not take the message: ${describe(err)}`);
    }
    if (!message?.id?._serialized) {
      if (recipient.kind === 'group') {
        throw new ServiceError(
          'not_on_whatsapp',
          `no WhatsApp group ${chatId} (is the account a member?)`,
        );
      }
      throw new ServiceError('send_failed', 'WhatsApp returned no message');
    }
    return this.#answer(message, chatId);
  }

  /**
   * The earliest message this account sent to `to` at or after `since` (a Date) with this text
   * (a media message: its caption, and media) that `skip` does not reject, among the chat's
   * last FOUND_AMONG sent messages; or null. Throws not_ready unless WORKING, send_failed when
   * WhatsApp Web cannot be asked.
   */
  async findSent({ to, text, media, since, skip = () => false }) {
    this.requireWorking('look for a sent message');
    const client = this.#client;
    let chatId;
    try {
      chatId = await this.#chatIdOf(client, to);
    } catch (err) {
      if (err.code === 'not_on_whatsapp') return null; // no chat, so nothing was sent there
      throw err;
    }
    let messages;
    try {
      const chat = await client.getChatById(chatId);
      if (!chat) return null;
      messages = await chat.fetchMessages({ limit: FOUND_AMONG, fromMe: true });
    } catch (err) {
      throw new ServiceError(
        'send_failed',
        `could not read the chat ${chatId} on WhatsApp: ${describe(err)}`,
      );
    }
    // WhatsApp's clock is the browser's, on this machine: seconds, allow for rounding.
    const earliest = Math.floor(since.getTime() / 1000) - CLOCK_SLACK_S;
    // fetchMessages({fromMe: true}) gives only this account's messages.
    const found = (messages ?? [])
      .filter((message) => {
        if (!message?.id?._serialized || message.timestamp < earliest) return false;
        if (message.ack === ACK_ERROR || skip(message.id._serialized)) return false;
        const sent = sentContent(message);
        return sent.media === Boolean(media) && sent.text === (text ?? '');
      })
      .sort((a, b) => a.timestamp - b.timestamp)[0];
    return found ? this.#answer(found, chatId) : null;
  }

  #answer(message, chatId) {
    const id = message.id._serialized;
    this.#rememberAck(id, message.ack ?? 0);
    const sentAt = message.timestamp ? new Date(message.timestamp * 1000) : new Date();
    return { id, to: chatId, timestamp: sentAt.toISOString() };
  }

  #rememberAck(id, ack) {
    this.#acks.delete(id);
    this.#acks.set(id, ack);
    if (this.#acks.size > REMEMBERED_ACKS) this.#acks.delete(this.#acks.keys().next().value);
  }

  async getAck(id) {
    if (this.#acks.has(id)) return this.#acks.get(id);
    if (this.state !== 'WORKING') return null;
    try {
      const message = await this.#client.getMessageById(id);
      return message?.id?.fromMe ? (message.ack ?? 0) : null;
    } catch {
      return null;
    }
  }

  async requestPairingCode(phone) {
    if (this.state !== 'SCAN_QR_CODE' || !this.#client) {
      throw new ServiceError(
        'not_ready',
        `a pairing code is only given while linking (state ${this.state})`,
      );
    }
    try {
      return await this.#client.requestPairingCode(phone.replace(/^\+/, ''), true);
    } catch (err) {
      throw new ServiceError('send_failed', `WhatsApp gave no pairing code: ${describe(err)}`);
    }
  }

  /** Unlinks this device (or throws away a broken session) and starts over with a new QR. */
  async logout() {
    const client = this.#client;
    this.#client = null;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    if (client && this.state === 'WORKING') {
      try {
        await client.logout();
      } catch (err) {
        this.log.warn(
          { err: describe(err) },
          'WhatsApp logout failed; removing the session anyway',
        );
      }
    }
    if (client) await this.#destroyOnce(client);
    await rm(this.paths.profileDir, { recursive: true, force: true });
    this.log.info('WhatsApp session removed; a new QR code will follow');
    this.#attempt = 0;
    this.setSession('STARTING');
    await this.#launch();
  }

  async listContacts() {
    this.requireWorking('list contacts');
    const contacts = await this.#client.getContacts();
    return contacts
      .filter((contact) => contact.isUser && contact.isMyContact && contact.id?.server === 'c.us')
      .map((contact) => ({
        id: contact.id._serialized,
        name: contact.name ?? contact.pushname ?? contact.number,
        number: contact.number,
      }));
  }

  async listGroups() {
    this.requireWorking('list groups');
    const chats = await this.#client.getChats();
    return chats
      .filter((chat) => chat.isGroup)
      .map((chat) => ({
        id: chat.id._serialized,
        name: chat.name,
        participants: (chat.groupMetadata?.participants ?? []).map(
          (member) => member.id._serialized,
        ),
      }));
  }
}

/** Resolves when the client's browser has gone (or after ten seconds, to never hang). */
async function waitForBrowserClosed(client) {
  for (let waited = 0; waited < 10000; waited += 100) {
    if (!client.pupBrowser?.isConnected?.()) return;
    await delay(100);
  }
}

function describe(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether a Message carries media, and its text: the caption of a media message ('' when it has
 * none), else the body. Message.body is the caption only once the upload finished (hasMedia);
 * before that the caption is read from the raw data.
 */
function sentContent(message) {
  const media = Boolean(message.hasMedia) || MEDIA_TYPES.has(message.type);
  if (!media) return { media, text: message.body ?? '' };
  const text = message.hasMedia ? message.body : message._data?.caption;
  return { media, text: text ?? '' };
}

