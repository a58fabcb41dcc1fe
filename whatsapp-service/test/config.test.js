import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  API_KEY_MISSING,
  ConfigError,
  REPO_ROOT,
  loadConfig,
  parseDotenv,
} from '../src/config.js';
import { tempDir } from '../test-support/helpers.js';

const KEY = 'config-test-key-0123456789';
const chromiumEverywhere = () => true;
const noChromium = () => false;

describe('loadConfig', () => {
  test('defaults: loopback, port 3001, wwebjs, data under the repo, wasched events URL', () => {
    const config = loadConfig({ env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY }, fileExists: chromiumEverywhere });
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 3001);
    assert.equal(config.apiKey, KEY);
    assert.equal(config.engine, 'wwebjs');
    assert.equal(config.dataDir, join(REPO_ROOT, 'data', 'whatsapp'));
    assert.equal(config.eventsUrl, 'http://127.0.0.1:8001/whatsapp/events');
    assert.equal(config.chromiumPath, '/usr/bin/chromium');
    assert.equal(config.shutdownTimeoutMs, 15000);
  });

  test('reads the .env file, and the real environment wins over it', async () => {
    const dir = await tempDir();
    const envFile = join(dir, '.env');
    await writeFile(
      envFile,
      [
        '# wasched settings',
        'WHATSAPP_PORT=4000',
        'export WHATSAPP_HOST=0.0.0.0',
        'WHATSAPP_API_KEY="s3cret value"',
        "WHATSAPP_ENGINE='fake'  ",
        'WHATSAPP_DATA_DIR=data/wa # relative to the repo',
        'TELEGRAM_BOT_TOKEN=ignored-here',
      ].join('\n'),
    );
    const config = loadConfig({
      env: { WHATSAPP_ENV_FILE: envFile, WHATSAPP_PORT: '5000' },
      fileExists: noChromium,
    });
    assert.equal(config.port, 5000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.apiKey, 's3cret value');
    assert.equal(config.engine, 'fake');
    assert.equal(config.dataDir, join(REPO_ROOT, 'data', 'wa'));
    assert.equal(config.chromiumPath, null, 'the fake engine needs no browser');
  });

  test('CHROMIUM_PATH wins over the Debian paths', () => {
    const config = loadConfig({
      env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, CHROMIUM_PATH: '/opt/chrome/chrome' },
      fileExists: chromiumEverywhere,
    });
    assert.equal(config.chromiumPath, '/opt/chrome/chrome');
  });

  const bad = [
    [{ WHATSAPP_PORT: 'abc' }, 'WHATSAPP_PORT'],
    [{ WHATSAPP_PORT: '70000' }, 'WHATSAPP_PORT'],
    [{ WHATSAPP_ENGINE: 'baileys' }, 'WHATSAPP_ENGINE'],
    [{ WHATSAPP_EVENTS_URL: 'ftp://example.org/x' }, 'WHATSAPP_EVENTS_URL'],
    [{ WHATSAPP_EVENTS_URL: 'not a url' }, 'WHATSAPP_EVENTS_URL'],
    [{ WHATSAPP_SHUTDOWN_TIMEOUT_MS: '-5' }, 'WHATSAPP_SHUTDOWN_TIMEOUT_MS'],
    [{ WHATSAPP_SHUTDOWN_TIMEOUT_MS: '0' }, 'WHATSAPP_SHUTDOWN_TIMEOUT_MS'],
    [{ WHATSAPP_LOG_LEVEL: 'loud' }, 'WHATSAPP_LOG_LEVEL'],
    [{ WHATSAPP_FAKE_ACK_DELAYS_MS: '1,2' }, 'WHATSAPP_FAKE_ACK_DELAYS_MS'],
    [{ WHATSAPP_READY_TIMEOUT_MS: 'soon' }, 'WHATSAPP_READY_TIMEOUT_MS'],
    [{ WHATSAPP_READY_TIMEOUT_MS: '-1' }, 'WHATSAPP_READY_TIMEOUT_MS'],
    [{ WHATSAPP_PAGE_CHECK_MS: '1.5' }, 'WHATSAPP_PAGE_CHECK_MS'],
    [{ WHATSAPP_WEB_VERSION: 'latest' }, 'WHATSAPP_WEB_VERSION'],
    [{ WHATSAPP_WEB_VERSION: '2.3000' }, 'WHATSAPP_WEB_VERSION'],
    [
      { WHATSAPP_WEB_VERSION: '2.3000.1031490220', WHATSAPP_WEB_VERSION_URL: 'ftp://a/{version}' },
      'WHATSAPP_WEB_VERSION_URL',
    ],
    [
      { WHATSAPP_WEB_VERSION: '2.3000.1031490220', WHATSAPP_WEB_VERSION_URL: 'https://a/x.html' },
      'WHATSAPP_WEB_VERSION_URL',
    ],
    [{ WHATSAPP_WEB_VERSION_URL: 'https://a/{version}.html' }, 'WHATSAPP_WEB_VERSION_URL'],
    [{ WHATSAPP_FAKE_START_STATE: 'ONLINE' }, 'WHATSAPP_FAKE_START_STATE'],
    [{ WHATSAPP_FAKE_NOT_ON_WHATSAPP: '+4915112345678,0151' }, 'WHATSAPP_FAKE_NOT_ON_WHATSAPP'],
    [{ WHATSAPP_FAKE_START_STATE: 'STOPPED' }, 'WHATSAPP_FAKE_START_STATE'],
    [
      { WHATSAPP_FAKE_START_STATE: 'FAILED', WHATSAPP_FAKE_FAILURE: 'boom' },
      'WHATSAPP_FAKE_FAILURE',
    ],
    [
      { WHATSAPP_FAKE_START_STATE: 'FAILED', WHATSAPP_FAKE_FAILURE: ':net::ERR' },
      'WHATSAPP_FAKE_FAILURE',
    ],
    [{ WHATSAPP_FAKE_FAILURE: 'chromium_missing' }, 'WHATSAPP_FAKE_FAILURE'],
    [{ WHATSAPP_FAKE_QR_ROTATE_MS: '0' }, 'WHATSAPP_FAKE_QR_ROTATE_MS'],
    [{ WHATSAPP_FAKE_READY_TIMEOUT_MS: '1m' }, 'WHATSAPP_FAKE_READY_TIMEOUT_MS'],
  ];
  for (const [env, name] of bad) {
    test(`a bad ${name} stops start-up with one line naming it`, () => {
      assert.throws(
        () =>
          loadConfig({ env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, ...env }, fileExists: chromiumEverywhere }),
        (err) =>
          err instanceof ConfigError && err.message.startsWith(name) && !err.message.includes('\n'),
      );
    });
  }

  test('the fake engine starts WORKING, rotates QRs every 20 s and waits 60 s for ready', () => {
    const config = loadConfig({ env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY }, fileExists: chromiumEverywhere });
    assert.equal(config.fake.startState, 'WORKING');
    assert.equal(config.fake.failure, null);
    assert.equal(config.fake.qrRotateMs, 20000);
    assert.equal(config.fake.readyTimeoutMs, 60000);
  });

  test('WHATSAPP_FAKE_FAILURE reads code or code:message, the message keeping its colons', () => {
    const load = (env) =>
      loadConfig({ env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, ...env }, fileExists: chromiumEverywhere }).fake;
    const failed = load({
      WHATSAPP_FAKE_START_STATE: 'failed',
      WHATSAPP_FAKE_FAILURE: 'whatsapp_web_unreachable:net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/',
    });
    assert.equal(failed.startState, 'FAILED');
    assert.deepEqual(failed.failure, {
      code: 'whatsapp_web_unreachable',
      message: 'net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/',
    });
    const starting = load({
      WHATSAPP_FAKE_START_STATE: 'STARTING',
      WHATSAPP_FAKE_FAILURE: 'chromium_failed',
    });
    assert.deepEqual(starting.failure, { code: 'chromium_failed', message: null });
  });

  test('WHATSAPP_FAKE_FAILURE with a state that holds none says how to fix it', () => {
    assert.throws(
      () =>
        loadConfig({
          env: {
            WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY,
            WHATSAPP_FAKE_START_STATE: 'SCAN_QR_CODE',
            WHATSAPP_FAKE_FAILURE: 'logged_out',
          },
          fileExists: chromiumEverywhere,
        }),
      (err) =>
        err instanceof ConfigError &&
        /^WHATSAPP_FAKE_FAILURE.*WHATSAPP_FAKE_START_STATE=FAILED or STARTING/.test(err.message),
    );
  });

  test('the real engine waits 120 s for ready, checks the page every minute and pins no build', () => {
    const config = loadConfig({ env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY }, fileExists: chromiumEverywhere });
    assert.deepEqual(config.wwebjs, {
      readyTimeoutMs: 120000,
      pageCheckMs: 60000,
      webVersion: null,
      webVersionUrl: null,
    });
  });

  test('the real engine settings: 0 turns a check off, the version URL template is kept as written', () => {
    const config = loadConfig({
      env: {
        WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY,
        WHATSAPP_READY_TIMEOUT_MS: '0',
        WHATSAPP_PAGE_CHECK_MS: '30000',
        WHATSAPP_WEB_VERSION: ' 2.3000.1031490220 ',
        WHATSAPP_WEB_VERSION_URL: 'https://archive.example/wa/html/{version}.html',
      },
      fileExists: chromiumEverywhere,
    });
    assert.deepEqual(config.wwebjs, {
      readyTimeoutMs: 0,
      pageCheckMs: 30000,
      webVersion: '2.3000.1031490220',
      webVersionUrl: 'https://archive.example/wa/html/{version}.html',
    });
  });

  test('a version URL without a pinned version says to set WHATSAPP_WEB_VERSION', () => {
    assert.throws(
      () =>
        loadConfig({
          env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, WHATSAPP_WEB_VERSION_URL: 'https://a/{version}.html' },
          fileExists: chromiumEverywhere,
        }),
      /^ConfigError: WHATSAPP_WEB_VERSION_URL is set but WHATSAPP_WEB_VERSION is not/,
    );
  });

  test('the wwebjs engine without any Chromium names CHROMIUM_PATH', () => {
    assert.throws(
      () => loadConfig({ env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY }, fileExists: noChromium }),
      (err) =>
        err instanceof ConfigError &&
        err.message.startsWith('CHROMIUM_PATH') &&
        /apt-get install chromium/.test(err.message),
    );
  });

  test('a CHROMIUM_PATH that does not exist names CHROMIUM_PATH', () => {
    assert.throws(
      () =>
        loadConfig({
          env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, CHROMIUM_PATH: '/nowhere/chrome' },
          fileExists: noChromium,
        }),
      (err) => err instanceof ConfigError && err.message.startsWith('CHROMIUM_PATH'),
    );
  });
});

describe('WHATSAPP_API_KEY and the session directory', () => {
  for (const key of [undefined, '', '   ']) {
    test(`an empty key (${JSON.stringify(key)}) stops start-up with what to put in .env`, () => {
      const env = { WHATSAPP_ENV_FILE: '', WHATSAPP_ENGINE: 'fake' };
      if (key !== undefined) env.WHATSAPP_API_KEY = key;
      assert.throws(
        () => loadConfig({ env, fileExists: chromiumEverywhere }),
        (err) =>
          err instanceof ConfigError &&
          err.message === API_KEY_MISSING &&
          err.message.startsWith('WHATSAPP_API_KEY is missing: put WHATSAPP_API_KEY=') &&
          err.message.includes('secrets.token_urlsafe(32)') &&
          !err.message.includes('\n'),
      );
    });
  }

  test('an empty WHATSAPP_EVENTS_URL points at HTTP_HOST and HTTP_PORT, as wasched listens', () => {
    const load = (env) =>
      loadConfig({
        env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, WHATSAPP_ENGINE: 'fake', ...env },
      }).eventsUrl;
    assert.equal(load({}), 'http://127.0.0.1:8001/whatsapp/events');
    assert.equal(load({ HTTP_PORT: '8101' }), 'http://127.0.0.1:8101/whatsapp/events');
    assert.equal(
      load({ HTTP_HOST: '0.0.0.0', HTTP_PORT: '8102' }),
      'http://127.0.0.1:8102/whatsapp/events',
    );
    assert.equal(
      load({ HTTP_PORT: '8101', WHATSAPP_EVENTS_URL: 'http://wasched:8001/whatsapp/events' }),
      'http://wasched:8001/whatsapp/events',
    );
  });

  test('the session lives in WASCHED_DATA_DIR/whatsapp unless WHATSAPP_DATA_DIR is set', () => {
    const load = (env) =>
      loadConfig({
        env: { WHATSAPP_ENV_FILE: '', WHATSAPP_API_KEY: KEY, WHATSAPP_ENGINE: 'fake', ...env },
      }).dataDir;
    assert.equal(load({ WASCHED_DATA_DIR: '/srv/wasched' }), '/srv/wasched/whatsapp');
    assert.equal(load({ WASCHED_DATA_DIR: 'state' }), join(REPO_ROOT, 'state', 'whatsapp'));
    assert.equal(
      load({ WASCHED_DATA_DIR: '/srv/wasched', WHATSAPP_DATA_DIR: '/srv/session' }),
      '/srv/session',
    );
    assert.equal(load({}), join(REPO_ROOT, 'data', 'whatsapp'));
  });
});

describe('parseDotenv', () => {
  test('reads quotes, comments, export and empty values', () => {
    assert.deepEqual(
      parseDotenv('A=1\n# c\nexport B="two words"\nC=\nD=x # trailing\nnot a line\nE="a\\nb"\n'),
      { A: '1', B: 'two words', C: '', D: 'x', E: 'a\nb' },
    );
  });
});
