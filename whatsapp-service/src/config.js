import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAILURE_CODES } from './engines/engine.js';

// The only module that reads process.env. Everything else gets the frozen object it returns.

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEBIAN_CHROMIUM_PATHS = Object.freeze([
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
]);
const ENGINES = ['wwebjs', 'fake'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// The fake engine's start states: the session states it can hold, and NEVER_READY
// (authenticated, but WhatsApp Web never becomes ready).
export const FAKE_START_STATES = Object.freeze([
  'WORKING',
  'STARTING',
  'SCAN_QR_CODE',
  'FAILED',
  'NEVER_READY',
]);

/** A setting is missing or malformed; its message is the one line shown at start-up. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Parses a dotenv file: `KEY=value` lines, `#` comments, optional `export ` and quotes.
 * No interpolation: the repo's .env is shared with the Python side, which does none either.
 */
export function parseDotenv(text) {
  const values = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2];
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\n/g, '\n').replace(/\\"/g, '"');
    } else {
      value = value.replace(/\s+#.*$/, '').trim();
    }
    values[match[1]] = value;
  }
  return values;
}

function readEnvFile(path) {
  if (!path || !existsSync(path)) return {};
  return parseDotenv(readFileSync(path, 'utf8'));
}

function integer(settings, name, fallback, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const raw = settings[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(
      `${name}="${raw}" is not valid: use a whole number from ${min} to ${max}`,
    );
  }
  return Number(raw);
}

function oneOf(settings, name, allowed, fallback) {
  const raw = settings[name];
  if (raw === undefined || raw === '') return fallback;
  const value = raw.trim().toLowerCase();
  if (!allowed.includes(value)) {
    throw new ConfigError(`${name}="${raw}" is not valid: use one of ${allowed.join(', ')}`);
  }
  return value;
}

function httpUrl(settings, name, fallback) {
  const raw = settings[name];
  if (raw === undefined || raw === '') return fallback;
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    url = null;
  }
  if (!url || !['http:', 'https:'].includes(url.protocol)) {
    throw new ConfigError(`${name}="${raw}" is not valid: use an http(s) URL, e.g. ${fallback}`);
  }
  return url.toString();
}

function millisecondList(settings, name, fallback) {
  const raw = settings[name];
  if (raw === undefined || raw === '') return fallback;
  const parts = raw.split(',').map((part) => part.trim());
  if (parts.length !== 3 || parts.some((part) => !/^\d+$/.test(part))) {
    throw new ConfigError(
      `${name}="${raw}" is not valid: give three delays in ms for acks 1, 2 and 3, e.g. 50,100,150`,
    );
  }
  return parts.map(Number);
}

function fakeStartState(settings) {
  const raw = settings.WHATSAPP_FAKE_START_STATE;
  if (raw === undefined || raw === '') return 'WORKING';
  const value = raw.trim().toUpperCase();
  if (!FAKE_START_STATES.includes(value)) {
    throw new ConfigError(
      `WHATSAPP_FAKE_START_STATE="${raw}" is not valid: use one of ${FAKE_START_STATES.join(', ')}`,
    );
  }
  return value;
}

/** `code` or `code:message`; only FAILED and STARTING hold a failure from the start. */
function fakeFailure(settings, startState) {
  const raw = settings.WHATSAPP_FAKE_FAILURE;
  if (raw === undefined || raw === '') return null;
  const split = raw.indexOf(':');
  const code = (split === -1 ? raw : raw.slice(0, split)).trim();
  const message = split === -1 ? null : raw.slice(split + 1).trim();
  if (!FAILURE_CODES.includes(code)) {
    throw new ConfigError(
      `WHATSAPP_FAKE_FAILURE="${raw}" is not valid: use code or code:message, the code one of ${FAILURE_CODES.join(', ')}`,
    );
  }
  if (!['FAILED', 'STARTING'].includes(startState)) {
    throw new ConfigError(
      `WHATSAPP_FAKE_FAILURE="${raw}" needs WHATSAPP_FAKE_START_STATE=FAILED or STARTING (it is ${startState}): set one or remove the failure`,
    );
  }
  return Object.freeze({ code, message });
}

/** Comma-separated `+E164` numbers (the fake engine's numbers without a WhatsApp account). */
function fakeNumbers(settings, name) {
  const raw = settings[name];
  if (raw === undefined || raw.trim() === '') return [];
  const numbers = raw.split(',').map((part) => part.trim());
  const bad = numbers.find((number) => !/^\+[1-9][0-9]{6,14}$/.test(number));
  if (bad !== undefined) {
    throw new ConfigError(
      `${name}="${raw}" is not valid: give +E164 numbers separated by commas, e.g. +4915112345678`,
    );
  }
  return numbers;
}

function chromiumPath(settings, engine, fileExists) {
  const raw = settings.CHROMIUM_PATH;
  if (raw) {
    if (!fileExists(raw)) {
      throw new ConfigError(`CHROMIUM_PATH="${raw}" does not exist: point it at a Chromium binary`);
    }
    return raw;
  }
  const found = DEBIAN_CHROMIUM_PATHS.find((candidate) => fileExists(candidate));
  if (!found && engine === 'wwebjs') {
    throw new ConfigError(
      `CHROMIUM_PATH is not set and no Chromium was found at ${DEBIAN_CHROMIUM_PATHS.join(' or ')}: ` +
        'install it (apt-get install chromium) or set CHROMIUM_PATH',
    );
  }
  return found ?? null;
}

// The real engine's settings. A WhatsApp Web build number as WhatsApp Web reports it
// (window.Debug.VERSION), e.g. 2.3000.1031490220.
const WEB_VERSION_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z]+)?$/;

function webVersion(settings) {
  const raw = settings.WHATSAPP_WEB_VERSION;
  if (raw === undefined || raw.trim() === '') return null;
  if (!WEB_VERSION_PATTERN.test(raw.trim())) {
    throw new ConfigError(
      `WHATSAPP_WEB_VERSION="${raw}" is not valid: use a WhatsApp Web build number such as 2.3000.1031490220, or leave it empty to run the current build`,
    );
  }
  return raw.trim();
}

/** A URL template with {version} where the build number goes; only with a pinned build. */
function webVersionUrl(settings, version) {
  const raw = settings.WHATSAPP_WEB_VERSION_URL;
  if (raw === undefined || raw.trim() === '') return null;
  const value = raw.trim();
  let url = null;
  try {
    url = new URL(value.replaceAll('{version}', '0'));
  } catch {
    url = null;
  }
  if (!url || !['http:', 'https:'].includes(url.protocol) || !value.includes('{version}')) {
    throw new ConfigError(
      `WHATSAPP_WEB_VERSION_URL="${raw}" is not valid: use an http(s) URL with {version} where the build number goes, e.g. https://example.org/html/{version}.html`,
    );
  }
  if (!version) {
    throw new ConfigError(
      'WHATSAPP_WEB_VERSION_URL is set but WHATSAPP_WEB_VERSION is not: set the build to pin, or remove the URL',
    );
  }
  return value;
}

/** The real engine's watchdogs (0 turns one off) and the pinned WhatsApp Web build. */
function wwebjsSettings(settings) {
  const version = webVersion(settings);
  return Object.freeze({
    readyTimeoutMs: integer(settings, 'WHATSAPP_READY_TIMEOUT_MS', 120000),
    pageCheckMs: integer(settings, 'WHATSAPP_PAGE_CHECK_MS', 60000),
    webVersion: version,
    webVersionUrl: webVersionUrl(settings, version),
  });
}

/**
 * Without the key anyone on the machine could call the sidecar (and send as the linked
 * account). wasched and the sidecar may start in any order (systemd, compose), so neither makes
 * one up: both refuse to start, with the same line saying what to put in .env.
 */
export const API_KEY_MISSING =
  "WHATSAPP_API_KEY is missing: put WHATSAPP_API_KEY=<a long random string> in .env (wasched reads the same one); make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'";

function requiredApiKey(settings) {
  const value = (settings.WHATSAPP_API_KEY ?? '').trim();
  if (value === '') throw new ConfigError(API_KEY_MISSING);
  return value;
}

/**
 * The session's directory: WHATSAPP_DATA_DIR, else `whatsapp` in WASCHED_DATA_DIR (default
 * `data`), both relative to the repo, as wasched and deploy/start.sh read them.
 */
function sessionDir(settings) {
  const dataDir = (settings.WASCHED_DATA_DIR ?? '').trim() || 'data';
  const raw = (settings.WHATSAPP_DATA_DIR ?? '').trim() || join(dataDir, 'whatsapp');
  return isAbsolute(raw) ? raw : resolve(REPO_ROOT, raw);
}

/**
 * Where wasched takes events when WHATSAPP_EVENTS_URL is empty: its own HTTP_HOST and
 * HTTP_PORT from the same .env, so a moved port needs no second setting under any way of
 * starting (0.0.0.0 is where wasched listens, not where to reach it).
 */
function waschedEventsUrl(settings) {
  const rawHost = (settings.HTTP_HOST ?? '').trim();
  const host = rawHost === '' || rawHost === '0.0.0.0' ? '127.0.0.1' : rawHost;
  const port = integer(settings, 'HTTP_PORT', 8001, { min: 1, max: 65535 });
  return `http://${host}:${port}/whatsapp/events`;
}

/**
 * Reads the settings from `env` (process.env by default) over the repo's .env file (real
 * environment wins) and checks them. Throws ConfigError naming the first bad setting.
 */
export function loadConfig({ env = process.env, fileExists = existsSync } = {}) {
  const envFile = env.WHATSAPP_ENV_FILE ?? join(REPO_ROOT, '.env');
  const settings = { ...readEnvFile(envFile), ...env };

  const apiKey = requiredApiKey(settings);
  const engine = oneOf(settings, 'WHATSAPP_ENGINE', ENGINES, 'wwebjs');
  const dataDir = sessionDir(settings);
  const host = (settings.WHATSAPP_HOST || '127.0.0.1').trim();
  const fakeStart = fakeStartState(settings);

  return Object.freeze({
    host,
    port: integer(settings, 'WHATSAPP_PORT', 3001, { min: 0, max: 65535 }),
    apiKey,
    engine,
    dataDir,
    eventsUrl: httpUrl(settings, 'WHATSAPP_EVENTS_URL', waschedEventsUrl(settings)),
    chromiumPath: chromiumPath(settings, engine, fileExists),
    shutdownTimeoutMs: integer(settings, 'WHATSAPP_SHUTDOWN_TIMEOUT_MS', 15000, { min: 1 }),
    logLevel: oneOf(settings, 'WHATSAPP_LOG_LEVEL', LOG_LEVELS, 'info'),
    bodyLimitBytes:
      integer(settings, 'WHATSAPP_MAX_BODY_MB', 64, { min: 1, max: 1024 }) * 1024 * 1024,
    events: Object.freeze({
      maxQueue: integer(settings, 'WHATSAPP_EVENTS_MAX_QUEUE', 1000, { min: 1 }),
      retryMinMs: integer(settings, 'WHATSAPP_EVENTS_RETRY_MIN_MS', 500, { min: 1 }),
      retryMaxMs: integer(settings, 'WHATSAPP_EVENTS_RETRY_MAX_MS', 30000, { min: 1 }),
      requestTimeoutMs: integer(settings, 'WHATSAPP_EVENTS_TIMEOUT_MS', 5000, { min: 1 }),
    }),
    reconnect: Object.freeze({
      minMs: integer(settings, 'WHATSAPP_RECONNECT_MIN_MS', 2000, { min: 1 }),
      maxMs: integer(settings, 'WHATSAPP_RECONNECT_MAX_MS', 300000, { min: 1 }),
    }),
    wwebjs: wwebjsSettings(settings),
    fake: Object.freeze({
      startDelayMs: integer(settings, 'WHATSAPP_FAKE_START_DELAY_MS', 100),
      sendDelayMs: integer(settings, 'WHATSAPP_FAKE_SEND_DELAY_MS', 0),
      ackDelaysMs: Object.freeze(
        millisecondList(settings, 'WHATSAPP_FAKE_ACK_DELAYS_MS', [50, 100, 150]),
      ),
      startState: fakeStart,
      failure: fakeFailure(settings, fakeStart),
      qrRotateMs: integer(settings, 'WHATSAPP_FAKE_QR_ROTATE_MS', 20000, { min: 1 }),
      readyTimeoutMs: integer(settings, 'WHATSAPP_FAKE_READY_TIMEOUT_MS', 60000, { min: 1 }),
      notOnWhatsApp: Object.freeze(fakeNumbers(settings, 'WHATSAPP_FAKE_NOT_ON_WHATSAPP')),
    }),
  });
}
