import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, REPO_ROOT, loadConfig, parseDotenv } from '../src/config.js';
import { tempDir } from '../test-support/helpers.js';

const chromiumEverywhere = () => true;
const noChromium = () => false;

describe('loadConfig', () => {
  test('defaults: loopback, port 3001, wwebjs, data under the repo, wasched events URL', () => {
    const config = loadConfig({ env: { WHATSAPP_ENV_FILE: '' }, fileExists: chromiumEverywhere });
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 3001);
    assert.equal(config.apiKey, null);
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
      env: { WHATSAPP_ENV_FILE: '', CHROMIUM_PATH: '/opt/chrome/chrome' },
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
  ];
  for (const [env, name] of bad) {
    test(`a bad ${name} stops start-up with one line naming it`, () => {
      assert.throws(
        () =>
          loadConfig({ env: { WHATSAPP_ENV_FILE: '', ...env }, fileExists: chromiumEverywhere }),
        (err) =>
          err instanceof ConfigError && err.message.startsWith(name) && !err.message.includes('\n'),
      );
    });
  }

  test('the wwebjs engine without any Chromium names CHROMIUM_PATH', () => {
    assert.throws(
      () => loadConfig({ env: { WHATSAPP_ENV_FILE: '' }, fileExists: noChromium }),
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
          env: { WHATSAPP_ENV_FILE: '', CHROMIUM_PATH: '/nowhere/chrome' },
          fileExists: noChromium,
        }),
      (err) => err instanceof ConfigError && err.message.startsWith('CHROMIUM_PATH'),
    );
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
