import { FakeEngine } from './fake.js';

/** The engine WHATSAPP_ENGINE names. whatsapp-web.js (and Chromium) load only for wwebjs. */
export async function createEngine(config, log) {
  if (config.engine === 'fake') {
    return new FakeEngine({ dataDir: config.dataDir, log, ...config.fake });
  }
  const { WwebjsEngine } = await import('./wwebjs.js');
  return new WwebjsEngine({
    dataDir: config.dataDir,
    chromiumPath: config.chromiumPath,
    reconnect: config.reconnect,
    ...config.wwebjs,
    log,
  });
}
