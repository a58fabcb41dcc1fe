import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The parsed JSON in `path`, or `fallback` when the file does not exist yet. */
export async function readJson(path, fallback) {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return fallback;
    throw err;
  }
  return JSON.parse(text);
}

/**
 * Writes `value` to `path` so that a crash leaves either the old or the new file, never half
 * of one: write a temporary file beside it, flush it to disk, then rename it over the old one.
 */
export async function writeJsonAtomic(path, value) {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(JSON.stringify(value));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/**
 * Keeps one JSON file in step with some state: writes run one after another (two renames never
 * race), and saves asked while a write is running share the next one, which takes a fresh
 * snapshot, so a burst of changes costs two writes, not one per change.
 */
export class SnapshotFile {
  #running = Promise.resolve();
  #queued = null;

  constructor(path, snapshot) {
    this.path = path;
    this.snapshot = snapshot;
  }

  /** Resolves once the state as it is now (or later) is on disk. */
  save() {
    if (this.#queued) return this.#queued;
    const queued = this.#running
      .catch(() => {})
      .then(() => {
        this.#queued = null;
        return writeJsonAtomic(this.path, this.snapshot());
      });
    this.#queued = queued;
    this.#running = queued;
    return queued;
  }
}
