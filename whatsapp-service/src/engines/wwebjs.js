import { readFile, readlink, rm, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import wwebjs from 'whatsapp-web.js';
import { ServiceError } from '../errors.js';
import { Engine, RELINK_FAILURES, delay, parseRecipient } from './engine.js';

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
// How long a question to the page (getState) may take before the page counts as hung, and how
// often the check after `ready` asks again while WhatsApp Web is not CONNECTED yet.
const PROBE = Object.freeze({ timeoutMs: 15000, intervalMs: 500 });
// client.destroy() on a hung browser can hang too; after this the browser process is killed.
const DESTROY_TIMEOUT_MS = 15000;
// A failure repeated this many times in a row is logged at debug from then on, except at the
// 10th, 100th, 1000th... time: a long outage must not fill the log.
const LOUD_REPEATS = 3;
const FAILURE_DETAIL_CHARS = 300;
// How puppeteer, Chromium and whatsapp-web.js word what went wrong (checked against puppeteer
// 24 and whatsapp-web.js 1.34.7 on Debian's Chromium).
const UNREACHABLE = /net::ERR_[A-Z_]+|Navigation timeout of \d+ ms exceeded/;
const PROFILE_LOCKED =
  /The browser is already running for|ProcessSingleton|profile appears to be in use/;
const CHROMIUM_MISSING = /Browser was not found at the configured executablePath|\bENOENT\b/;
// The page is gone: every later call fails the same way. "Execution context was destroyed" is
// left out: WhatsApp Web reloading itself says that once, and the next call then works.
const PAGE_GONE =
  /Attempted to use detached Frame|Navigating frame was detached|Target closed|Session closed|Connection closed/;
// Failures of a restart that keeps the session; they stay until WhatsApp Web is ready.
// WhatsApp's refusal to start new chats from this account (server error 463, the reach-out
// timelock): the page's send rejects with a text naming it (ours cannot be told apart
// otherwise; it may also come later as ack -1, which fails the message as any error ack).
const REACHOUT = /\b463\b|reach-?out|timelock/i;
const RESTART_FAILURES = new Set(['never_ready', 'page_broken']);

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
  #readyTimer = null;
  #readyStage = null;
  #loadingPercent = -1;
  #pageCheckTimer = null;
  // The failure code last logged and how many times in a row (see #report).
  #reported = { code: null, count: 0 };
  #runningVersion = null;
  #destroyed = new WeakMap();
  #starting = new WeakMap();
  #closing = new Set();
  #acks = new Map();

  constructor({
    dataDir,
    chromiumPath,
    log,
    reconnect = { minMs: 2000, maxMs: 300000 },
    readyTimeoutMs = 120000,
    pageCheckMs = 60000,
    webVersion = null,
    webVersionUrl = null,
    probe = PROBE,
    library = wwebjs,
    // How long one number lookup (a query to WhatsApp's servers from the page) may take.
    lookupTimeoutMs = 20000,
  }) {
    super();
    this.paths = sessionPaths(dataDir);
    this.chromiumPath = chromiumPath;
    this.log = log;
    this.reconnect = reconnect;
    this.readyTimeoutMs = readyTimeoutMs;
    this.pageCheckMs = pageCheckMs;
    this.webVersion = webVersion;
    this.webVersionUrl = webVersionUrl;
    this.probe = probe;
    this.library = library;
    this.lookupTimeoutMs = lookupTimeoutMs;
  }

  async start() {
    this.#stopping = false;
    await this.#launch();
  }

  async #launch() {
    if (this.#stopping) return;
    await endOrphanedChromium(this.paths.profileDir, this.log);
    const removed = await removeSingletonLocks(this.paths.profileDir);
    if (removed.length > 0) {
      this.log[this.#level('warn')]({ removed }, 'removed stale Chromium profile locks');
    }
    const { Client, LocalAuth } = this.library;
    const client = new Client({
      authStrategy: new LocalAuth({ clientId: CLIENT_ID, dataPath: this.paths.authDir }),
      puppeteer: { executablePath: this.chromiumPath, headless: true, args: [...CHROMIUM_ARGS] },
      ...this.#webVersionOptions(),
    });
    this.#client = client;
    this.#listen(client);
    this.setSession('STARTING');
    this.log[this.#level('info')]({ profile: this.paths.profileDir }, 'starting WhatsApp Web');
    this.#loadingPercent = -1;
    this.#watchReady(client, 'load');
    const initializing = client.initialize();
    this.#starting.set(client, initializing);
    initializing.then(
      () => {
        this.#starting.delete(client);
        this.#initialized(client);
      },
      (err) => {
        this.#starting.delete(client);
        if (client !== this.#client) return;
        const failure = startFailure(err, client);
        const state = RESTART_FAILURES.has(failure.code) ? 'STARTING' : 'FAILED';
        this.#restart(client, state, failure, 'WhatsApp Web failed to start');
      },
    );
  }

  /**
   * The WhatsApp Web build to load. Unpinned, the current build is loaded and each build that
   * ran is kept in the cache directory as <version>.html. Pinned, that build is served from the
   * cache (or the remote archive); strict is off, so a build that is gone from there falls back
   * to the current one instead of keeping WhatsApp from starting.
   */
  #webVersionOptions() {
    if (!this.webVersion) return { webVersionCache: { type: 'local', path: this.paths.cacheDir } };
    const webVersionCache = this.webVersionUrl
      ? { type: 'remote', remotePath: this.webVersionUrl, strict: false }
      : { type: 'local', path: this.paths.cacheDir, strict: false };
    return { webVersion: this.webVersion, webVersionCache };
  }

  /** initialize() is done: the page is up. Watches its browser from now on. */
  #initialized(client) {
    if (client !== this.#client) return;
    const browser = client.pupBrowser;
    if (!browser?.isConnected?.()) {
      this.#browserGone(client);
      return;
    }
    browser.once('disconnected', () => this.#browserGone(client));
  }

  /** whatsapp-web.js does not watch its browser: a Chromium that crashed is found here. */
  #browserGone(client) {
    if (client !== this.#client || this.#stopping) return;
    this.#restart(
      client,
      'FAILED',
      { code: 'chromium_failed', message: 'Chromium closed unexpectedly (browser disconnected)' },
      'Chromium closed unexpectedly; starting it again',
    );
  }

  #listen(client) {
    // Events from a client that was replaced or is being shut down are ignored.
    const on = (event, handler) =>
      client.on(event, (...args) => {
        if (client === this.#client) handler(...args);
      });
    on('qr', (qr) => {
      this.#stopWatching();
      this.#reported = { code: null, count: 0 };
      this.log.info('QR code received; scan it to link the account');
      // A QR shows the browser and page work: only a reason to link again stays.
      const keep = RELINK_FAILURES.has(this.failure?.code);
      this.setSession('SCAN_QR_CODE', { qr, failure: keep ? undefined : null });
    });
    on('code', () => this.log.info('pairing code renewed'));
    on('loading_screen', (percent) => {
      this.log.debug({ percent }, 'WhatsApp Web loading');
      // Progress gives it time again (a long backlog to sync); the percent only rises to 100,
      // so that happens at most about 100 times per start.
      const progress = Number(percent) > this.#loadingPercent;
      if (progress) this.#loadingPercent = Number(percent);
      this.#watchReady(client, `loading screen at ${percent}%`, { restart: progress });
    });
    on('authenticated', () => {
      this.log.info('WhatsApp session authenticated');
      // The page is up and linked: only the reason for a restart in progress stays.
      const keep = RESTART_FAILURES.has(this.failure?.code);
      this.setSession('STARTING', { failure: keep ? undefined : null });
      this.#watchReady(client, 'authenticated', { restart: true });
    });
    on('auth_failure', (message) => this.#onAuthFailure(client, message));
    on('ready', () => {
      this.#onReady(client).catch((err) =>
        this.log.error({ err: describe(err) }, 'handling ready failed'),
      );
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

  /**
   * Starts the ready watchdog: WhatsApp Web that goes readyTimeoutMs without getting closer to
   * ready is restarted (never_ready), keeping the session. Armed at launch; `authenticated` and
   * progress on the loading screen start it over (`restart`).
   */
  #watchReady(client, stage, { restart = false } = {}) {
    if (this.readyTimeoutMs === 0 || client !== this.#client) return;
    this.#readyStage = stage;
    if (this.#readyTimer && !restart) return;
    clearTimeout(this.#readyTimer);
    this.#readyTimer = setTimeout(() => {
      this.#readyTimer = null;
      if (client !== this.#client || this.state === 'WORKING') return;
      this.#restart(
        client,
        'STARTING',
        { code: 'never_ready', message: this.#notReadyMessage() + this.#pinHint() },
        'WhatsApp Web never became ready; restarting it (the session is kept)',
      );
    }, this.readyTimeoutMs);
  }

  #notReadyMessage() {
    const within = duration(this.readyTimeoutMs);
    const stage = this.#readyStage;
    if (stage === 'load') return `WhatsApp Web did not load within ${within}`;
    if (stage === 'authenticated') {
      return `WhatsApp Web was authenticated but not ready within ${within}`;
    }
    return `WhatsApp Web stayed on its ${stage} for ${within}`;
  }

  #stopWatching() {
    clearTimeout(this.#readyTimer);
    this.#readyTimer = null;
    clearInterval(this.#pageCheckTimer);
    this.#pageCheckTimer = null;
  }

  /**
   * `ready` is announced as WORKING only once the page says it is CONNECTED and knows the
   * account: whatsapp-web.js can fire it on a page that is not (wwebjs #3785, #5768).
   */
  async #onReady(client) {
    this.#stopWatching();
    const problem = await this.#notConnected(client);
    if (client !== this.#client) return;
    if (problem) {
      this.#restart(
        client,
        'STARTING',
        { code: 'never_ready', message: problem + this.#pinHint() },
        'WhatsApp Web said ready but is not connected; restarting it (the session is kept)',
      );
      return;
    }
    this.#attempt = 0;
    const failures = this.#reported.count;
    this.#reported = { code: null, count: 0 };
    const info = client.info;
    const me = { id: info.wid._serialized ?? null, name: info.pushname || info.wid.user || null };
    this.log.info(failures > 0 ? { afterFailures: failures } : {}, 'WhatsApp ready');
    this.setSession('WORKING', { me });
    this.#watchPage(client);
    await this.#noteVersion(client);
  }

  /** Why the page is not really connected after `ready`, or null when it is. */
  async #notConnected(client) {
    if (!client.info?.wid) return 'WhatsApp Web said ready but has no account info';
    const deadline = Date.now() + this.probe.timeoutMs;
    let state = null;
    for (;;) {
      try {
        state = await bounded(client.getState(), this.probe.timeoutMs, 'getState()');
      } catch (err) {
        return `WhatsApp Web said ready but could not be asked its state: ${failureDetail(err)}`;
      }
      if (state === 'CONNECTED') return null;
      if (client !== this.#client || Date.now() + this.probe.intervalMs > deadline) break;
      await delay(this.probe.intervalMs);
    }
    const during = duration(this.probe.timeoutMs);
    return `WhatsApp Web said ready but is not connected (state ${state ?? 'unknown'} for ${during})`;
  }

  /** While WORKING, asks the page its state every pageCheckMs: a broken page is restarted. */
  #watchPage(client) {
    if (this.pageCheckMs === 0) return;
    clearInterval(this.#pageCheckTimer);
    let checking = false;
    this.#pageCheckTimer = setInterval(async () => {
      if (checking || client !== this.#client || this.state !== 'WORKING') return;
      checking = true;
      try {
        await bounded(client.getState(), this.probe.timeoutMs, 'getState()');
      } catch (err) {
        if (err.timedOut || PAGE_GONE.test(describe(err))) this.#pageBroken(client, err);
        else this.log.debug({ err: describe(err) }, 'the WhatsApp Web page check failed');
      } finally {
        checking = false;
      }
    }, this.pageCheckMs);
  }

  #pageBroken(client, err) {
    if (client !== this.#client || this.#stopping) return;
    this.#restart(
      client,
      'STARTING',
      { code: 'page_broken', message: failureDetail(err) },
      'the WhatsApp Web page broke; restarting the browser (the session is kept)',
    );
  }

  /**
   * Runs a call into the page. A page that broke under it (detached frame, closed target) is
   * restarted; the error still goes to the caller.
   */
  async #onPage(client, call) {
    try {
      return await call();
    } catch (err) {
      if (PAGE_GONE.test(describe(err))) this.#pageBroken(client, err);
      throw err;
    }
  }

  /** Logs which build runs, and says so when it is not the pinned one. */
  async #noteVersion(client) {
    let version;
    try {
      version = await bounded(client.getWWebVersion(), this.probe.timeoutMs, 'getWWebVersion()');
    } catch {
      return;
    }
    if (!version || version === this.#runningVersion) return;
    this.#runningVersion = version;
    if (this.webVersion && version !== this.webVersion) {
      this.log.warn(
        { pinned: this.webVersion, running: version },
        'the pinned WhatsApp Web build could not be loaded; running the current one',
      );
    } else {
      this.log.info({ version }, 'WhatsApp Web build');
    }
  }

  #pinHint() {
    if (!this.webVersion) return '';
    return ` (WHATSAPP_WEB_VERSION pins build ${this.webVersion}; if WhatsApp no longer serves it, update or unset it)`;
  }

  /**
   * Records why the session does not work, closes this client's browser and launches again
   * with the reconnect backoff, keeping the session on disk.
   */
  #restart(client, state, failure, what) {
    this.#drop(client);
    this.#report(failure, what);
    this.setSession(state, { failure });
    this.#destroyOnce(client);
    this.#scheduleReconnect(client, { wipe: false });
  }

  /** Stops listening to `client` (its events are ignored from now on) and its timers. */
  #drop(client) {
    if (client && client === this.#client) this.#client = null;
    this.#stopWatching();
  }

  /**
   * Logs a failure the first LOUD_REPEATS times in a row and then only at the 10th, 100th...
   * time (debug in between), so that retrying through a long outage does not fill the log.
   */
  #report(failure, what) {
    const count = this.#reported.code === failure.code ? this.#reported.count + 1 : 1;
    this.#reported = { code: failure.code, count };
    const loud = count <= LOUD_REPEATS || Number.isInteger(Math.log10(count));
    const fields = { code: failure.code, err: failure.message };
    if (count > 1) fields.times = count;
    const note =
      count === LOUD_REPEATS ? ' (from now on logged at the 10th, 100th, ... time)' : '';
    this.log[loud ? 'error' : 'debug'](fields, what + note);
  }

  /** `level` for the lines of each retry, debug once a failure repeats (see #report). */
  #level(level) {
    return this.#reported.count >= LOUD_REPEATS ? 'debug' : level;
  }

  #onDisconnected(client, reason) {
    const loggedOut = LOGGED_OUT_REASONS.has(reason);
    this.#stopWatching();
    this.log.warn({ reason, loggedOut }, 'WhatsApp disconnected');
    // Kept while the new QR is offered: it tells the owner why linking is needed again.
    const failure = loggedOut
      ? { code: 'logged_out', message: `WhatsApp ended this device's session (${reason})` }
      : undefined;
    this.setSession('STARTING', { failure });
    if (reason === 'LOGOUT') {
      // whatsapp-web.js keeps this client: it wipes the LocalAuth profile itself, reloads the
      // page and emits a new QR (a page that never shows one is restarted).
      this.#watchReady(client, 'load', { restart: true });
      return;
    }
    // For any other reason whatsapp-web.js has already called destroy() on this client;
    // calling it again is how #1946 breaks, so only wait for its browser to close.
    this.#destroyed.set(client, this.#track(waitForBrowserClosed(client)));
    this.#client = null;
    this.#scheduleReconnect(client, { wipe: loggedOut });
  }

  /**
   * The saved session was refused. whatsapp-web.js destroys the client itself, and may start it
   * over on its own: wait for its initialize() to end, close what it left open, then start on a
   * fresh profile for a new QR.
   */
  #onAuthFailure(client, message) {
    const failure = {
      code: 'auth_failure',
      message: message ? failureDetail(message) : 'the saved session could not be restored',
    };
    this.#drop(client);
    this.#report(failure, 'the WhatsApp session could not be restored; linking again');
    this.setSession('FAILED', { failure });
    const initializing = (this.#starting.get(client) ?? Promise.resolve()).catch(() => {});
    const closing = bounded(initializing, DESTROY_TIMEOUT_MS, 'initialize()')
      .catch(() => {})
      .then(() => (client.pupBrowser?.isConnected?.() ? client.destroy() : undefined))
      .catch((err) => this.log.warn({ err: describe(err) }, 'closing WhatsApp Web failed'));
    this.#destroyed.set(client, this.#track(closing));
    this.#scheduleReconnect(client, { wipe: true });
  }

  #scheduleReconnect(oldClient, { wipe }) {
    if (this.#stopping) return;
    const wait = Math.min(this.reconnect.maxMs, this.reconnect.minMs * 2 ** this.#attempt);
    this.#attempt += 1;
    this.log[this.#level('info')](
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
        // Preparing the profile failed (removing it, its locks, or an orphaned browser).
        const failure = { code: 'chromium_failed', message: failureDetail(err) };
        this.#report(failure, 'reconnect failed');
        this.setSession('FAILED', { failure });
        this.#scheduleReconnect(oldClient, { wipe: false });
      }
    }, wait);
  }

  /**
   * Closes the browser once per client, however many paths ask for it. A destroy() that hangs
   * (a hung browser) is given up after DESTROY_TIMEOUT_MS and its browser process killed.
   */
  #destroyOnce(client) {
    if (!this.#destroyed.has(client)) {
      const destroying = this.#browserLaunched(client)
        .then(() => bounded(client.destroy(), DESTROY_TIMEOUT_MS, 'destroy()'))
        .catch((err) => {
          this.log.warn({ err: describe(err) }, 'closing WhatsApp Web failed');
          if (err.timedOut) client.pupBrowser?.process?.()?.kill('SIGKILL');
        });
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
    this.#drop(client);
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
      wid = await this.#onPage(client, () => client.getNumberId(recipient.digits));
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
      message = await this.#onPage(client, () => client.sendMessage(chatId, content, options));
    } catch (err) {
      if (REACHOUT.test(describe(err))) {
        throw new ServiceError(
          'reachout_limited',
          `WhatsApp refused to start a chat from this account (error 463: reach-out limit): ${describe(err)}`,
        );
      }
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
      messages = await this.#onPage(client, async () => {
        const chat = await client.getChatById(chatId);
        return chat ? await chat.fetchMessages({ limit: FOUND_AMONG, fromMe: true }) : [];
      });
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
    const client = this.#client;
    try {
      const message = await this.#onPage(client, () => client.getMessageById(id));
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
    this.#drop(client);
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
    this.#reported = { code: null, count: 0 };
    this.setSession('STARTING', { failure: null });
    await this.#launch();
  }

  async listContacts() {
    this.requireWorking('list contacts');
    const client = this.#client;
    const contacts = await this.#onPage(client, () => client.getContacts());
    return contacts
      .filter((contact) => contact.isUser && contact.isMyContact && contact.id?.server === 'c.us')
      .map((contact) => ({
        id: contact.id._serialized,
        name: contact.name ?? contact.pushname ?? contact.number,
        number: contact.number,
      }));
  }

  /**
   * Whether each +E164 number has a WhatsApp account, asked one at a time (each is a query to
   * WhatsApp's servers; getNumberId answers the canonical id, or null for none). A lookup that
   * fails or hangs ends the check: the numbers looked up before it are answered and the rest
   * left out (not checked; the next lookups would likely fail or hang too). When the first
   * one fails, the check fails (send_failed). No answer is a guess.
   */
  async checkNumbers(numbers) {
    this.requireWorking('check numbers');
    const client = this.#client;
    const answers = [];
    for (const number of numbers) {
      let wid;
      try {
        wid = await bounded(
          this.#onPage(client, () => client.getNumberId(number.slice(1))),
          this.lookupTimeoutMs,
          'WhatsApp',
        );
      } catch (err) {
        // Without the number: this message may be logged.
        const detail = `could not look a number up on WhatsApp: ${failureDetail(err)}`;
        if (answers.length === 0) throw new ServiceError('send_failed', detail);
        this.log.warn(
          { answered: answers.length, left_out: numbers.length - answers.length },
          `${detail}; answering the numbers looked up so far`,
        );
        break;
      }
      const whatsappId = wid?._serialized ?? null;
      answers.push({ number, on_whatsapp: whatsappId !== null, whatsapp_id: whatsappId });
    }
    return answers;
  }

  async listGroups() {
    this.requireWorking('list groups');
    const client = this.#client;
    const chats = await this.#onPage(client, () => client.getChats());
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

/**
 * Why initialize() failed, as a failure. Before the browser is up (no pupBrowser) it is
 * puppeteer's launch; after, the page: unreachable, broken, or WhatsApp Web never coming up
 * (whatsapp-web.js throws the string 'auth timeout' when its app does not load in 30 s).
 */
function startFailure(err, client) {
  const text = describe(err);
  const message = failureDetail(err);
  if (UNREACHABLE.test(text)) return { code: 'whatsapp_web_unreachable', message };
  if (!client.pupBrowser) {
    if (PROFILE_LOCKED.test(text)) return { code: 'profile_locked', message };
    if (CHROMIUM_MISSING.test(text)) return { code: 'chromium_missing', message };
    return { code: 'chromium_failed', message };
  }
  if (!client.pupBrowser.isConnected?.()) {
    return { code: 'chromium_failed', message: `Chromium closed while loading: ${message}` };
  }
  if (PAGE_GONE.test(text)) return { code: 'page_broken', message };
  if (text === 'auth timeout') {
    return { code: 'never_ready', message: 'WhatsApp Web did not load its app (auth timeout)' };
  }
  return { code: 'never_ready', message: `WhatsApp Web did not start: ${message}` };
}

/**
 * The error's own words for a failure message: puppeteer's first line and the browser's first
 * lines of stderr, without its troubleshooting link, short, and with anything that looks like
 * a phone number taken out.
 */
function failureDetail(err) {
  const lines = describe(err)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && line !== 'stderr:' && !line.startsWith('TROUBLESHOOTING'));
  const text = lines
    .slice(0, 3)
    .join(' | ')
    .replace(/(?<![\w.])\+?\d{8,15}(?:@[a-z.]+)?(?![\w])/g, '<number>');
  return text.length > FAILURE_DETAIL_CHARS
    ? `${text.slice(0, FAILURE_DETAIL_CHARS - 1)}…`
    : text;
}

/** `ms` as a person reads it: 120 s, 30 ms. */
function duration(ms) {
  return ms >= 10000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

/** `promise`, or a rejection with `timedOut` set after `ms`. */
function bounded(promise, ms, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`${what} gave no answer within ${duration(ms)}`);
      err.timedOut = true;
      reject(err);
    }, ms);
  });
  return Promise.race([Promise.resolve(promise), expired]).finally(() => clearTimeout(timer));
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

