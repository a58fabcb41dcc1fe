import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { DEBIAN_CHROMIUM_PATHS } from '../src/config.js';
import { WwebjsEngine, chromiumHoldingProfile, sessionPaths } from '../src/engines/wwebjs.js';
import { eventually, tempDir } from '../test-support/helpers.js';

// The real whatsapp-web.js Client on the system Chromium: proves the browser starts with our
// flags and profile, and is closed again. Skipped where no Chromium is installed. There is no
// WhatsApp network here, so the page load is expected to fail after the browser started;
// where the network exists, the engine reaches the QR instead.
const chromium = DEBIAN_CHROMIUM_PATHS.find((path) => existsSync(path));

test(
  'the real Client starts the system Chromium on the LocalAuth profile and stop() closes it',
  { skip: !chromium && 'no Chromium installed' },
  async () => {
    const dataDir = await tempDir();
    const errors = [];
    const log = {
      info() {},
      debug() {},
      warn() {},
      error(fields, message) {
        errors.push({ ...fields, message });
      },
      child() {
        return log;
      },
    };
    const engine = new WwebjsEngine({
      dataDir,
      chromiumPath: chromium,
      log,
      reconnect: { minMs: 60000, maxMs: 60000 },
    });
    after(() => engine.stop());
    await engine.start();
    const { profileDir } = sessionPaths(dataDir);

    await eventually(() => engine.state === 'SCAN_QR_CODE' || engine.state === 'FAILED', {
      what: 'the page to load or fail',
      attempts: 6000,
    });
    if (engine.state === 'FAILED') {
      const [failure] = errors;
      assert.match(failure.err, /^net::ERR_/, `the browser itself did not start: ${failure.err}`);
    }
    assert.ok(existsSync(profileDir), 'LocalAuth made the profile directory');

    await engine.stop();
    assert.equal(engine.state, 'STOPPED');
    assert.equal(
      await chromiumHoldingProfile(profileDir),
      null,
      'a Chromium still holds the profile',
    );
  },
);
