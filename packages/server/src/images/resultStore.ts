import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, stat, statfs, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Transform results on disk, which can never serve a broken file (DESIGN.md incident 2).
 *
 * File layout: `CRS1` magic, body length (uint32 BE), SHA-256 of the body (32 bytes), body. A
 * result is written to a temporary file in the same directory, fsynced, renamed into place and the
 * directory fsynced, so a crash leaves either no result or a whole one; every read re-checks length
 * and checksum anyway (disks and operators corrupt files too) and a bad file is deleted, counted
 * and regenerated. Missing results are computed once: in-process by a promise map, across
 * processes sharing the directory by an O_EXCL lock file holding the owner's PID, taken over when
 * that process is dead or the lock is older than `staleLockMs`.
 */
const MAGIC = Buffer.from('CRS1');
const HEADER = 4 + 4 + 32;
const RESULT = '.res';
const TEMP = '.tmp';
const LOCK = '.lock';

export interface ResultStoreOptions {
  dir: string;
  /** Total size the sweeper keeps results under (least recently used removed first). */
  maxBytes: number;
  /** Free space the sweeper keeps on the file system holding `dir`. */
  minFreeBytes: number;
  /** Called once per corrupt result found (wire to a prom-client counter). */
  onCorrupt?: () => void;
  staleLockMs?: number;
}

export interface StoredResult {
  body: Buffer;
  /** Strong ETag: derived from the body's checksum. */
  etag: string;
}

/** The key of a result: what it is made from, what is done to it, and by which encoder. */
export function resultKey(sourceSha256: string, canonicalOps: string, encoderVersion: string): string {
  return createHash('sha256').update(`${sourceSha256}\n${canonicalOps}\n${encoderVersion}`).digest('hex');
}

function encode(body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(body.length, 4);
  createHash('sha256').update(body).digest().copy(header, 8);
  return Buffer.concat([header, body]);
}

/** The body of a stored file, or null when it is not a whole, intact result. */
export function decodeResult(file: Buffer): Buffer | null {
  if (file.length < HEADER || !file.subarray(0, 4).equals(MAGIC)) return null;
  const body = file.subarray(HEADER);
  if (file.readUInt32BE(4) !== body.length) return null;
  if (!createHash('sha256').update(body).digest().equals(file.subarray(8, HEADER))) return null;
  return body;
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ResultStore {
  private readonly inflight = new Map<string, Promise<StoredResult>>();
  private readonly staleLockMs: number;

  constructor(private readonly opts: ResultStoreOptions) {
    this.staleLockMs = opts.staleLockMs ?? 30_000;
  }

  /** Creates the directory and removes temporary files left by a crash. */
  async start(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    for (const name of await readdir(this.opts.dir)) {
      if (name.endsWith(TEMP)) await unlink(join(this.opts.dir, name)).catch(() => undefined);
    }
  }

  private path(key: string, ext: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`invalid result key ${key}`);
    return join(this.opts.dir, key + ext);
  }

  /** The stored result for `key`, computing it with `produce` (once) when missing or corrupt. */
  get(key: string, produce: () => Promise<Buffer>): Promise<StoredResult> {
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.load(key, produce).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** Reads and verifies a result; a corrupt one is deleted and counted. Null when absent. */
  async read(key: string): Promise<StoredResult | null> {
    const file = this.path(key, RESULT);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const body = decodeResult(bytes);
    if (!body) {
      await unlink(file).catch(() => undefined);
      this.opts.onCorrupt?.();
      return null;
    }
    // Recency for the sweeper's LRU: atime is unreliable (noatime/relatime), so we move mtime.
    const now = new Date();
    await utimes(file, now, now).catch(() => undefined);
    return { body, etag: `"${bytes.subarray(8, 24).toString('hex')}"` };
  }

  private async load(key: string, produce: () => Promise<Buffer>): Promise<StoredResult> {
    for (;;) {
      const found = await this.read(key);
      if (found) return found;
      const lock = await this.tryLock(key);
      if (!lock) {
        await sleep(10);
        continue;
      }
      try {
        // Another process may have finished between our read and our lock.
        const again = await this.read(key);
        if (again) return again;
        await this.write(key, await produce());
      } finally {
        await unlink(this.path(key, LOCK)).catch(() => undefined);
      }
    }
  }

  /** Takes the cross-process lock for `key`, or returns false when a live process holds it. */
  private async tryLock(key: string): Promise<boolean> {
    const file = this.path(key, LOCK);
    try {
      const handle = await open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
      const pid = Number(text);
      // An empty lock is one being written right now, unless it is old (its writer died mid-write).
      const dead = text !== '' && Number.isSafeInteger(pid) && pid > 0 && !isAlive(pid);
      if (dead || Date.now() - info.mtimeMs > this.staleLockMs) await unlink(file);
    } catch {
      /* the lock went away meanwhile: retry */
    }
    return false;
  }

  private async write(key: string, body: Buffer): Promise<void> {
    const temp = join(this.opts.dir, `${key}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP}`);
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(encode(body));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.path(key, RESULT));
    const dir = await open(this.opts.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /**
   * Removes least recently used results until the total is under `maxBytes` and the file system
   * has `minFreeBytes` free. Returns how many files it removed.
   */
  async sweep(): Promise<number> {
    const entries: { file: string; size: number; mtime: number }[] = [];
    for (const name of await readdir(this.opts.dir)) {
      if (!name.endsWith(RESULT)) continue;
      const file = join(this.opts.dir, name);
      const info = await stat(file).catch(() => null);
      if (info) entries.push({ file, size: info.size, mtime: info.mtimeMs });
    }
    entries.sort((a, b) => a.mtime - b.mtime);
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    const fs = await statfs(this.opts.dir);
    let free = fs.bavail * fs.bsize;
    let removed = 0;
    for (const e of entries) {
      if (total <= this.opts.maxBytes && free >= this.opts.minFreeBytes) break;
      await unlink(e.file).catch(() => undefined);
      total -= e.size;
      free += e.size;
      removed += 1;
    }
    return removed;
  }
}
