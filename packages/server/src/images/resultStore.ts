import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import {
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rmdir,
  stat,
  statfs,
  unlink,
  utimes,
} from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Transform results on disk, which can never serve a broken file (DESIGN.md incident 2).
 *
 * File layout: `CRS1` magic, body length (uint32 BE), SHA-256 of the body (32 bytes), body. A
 * result is written to a temporary file in the same directory, fsynced, renamed into place and the
 * directory fsynced, so a crash leaves either no result or a whole one; every read re-checks length
 * and checksum anyway (disks and operators corrupt files too) and a bad file is deleted, counted
 * and regenerated. Missing results are computed once: in-process by a promise map, across
 * processes sharing the directory by an O_EXCL lock file holding the owner's PID (on tmpfs when
 * there is one, see {@link defaultLockDir}), taken over when that process is dead or the lock is
 * older than `staleLockMs`.
 *
 * A result just computed is answered from memory while it is written: the two fsyncs cost 0.3 to
 * 10 ms on the benchmark machine's disk, up to half of a 20 ms transform, and a crash before they
 * finish loses only the file, never a response. The lock is held until the file is durable, so
 * another process waits for it rather than computing it again, and this process answers from the
 * in-flight entry meanwhile.
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
  /** Called when a computed result could not be written (it was still answered; it is recomputed). */
  onWriteError?: (err: unknown) => void;
  staleLockMs?: number;
  /**
   * Where the single-flight lock files go; every process sharing `dir` must use the same one.
   * Default: {@link defaultLockDir}.
   */
  lockDir?: string;
}

/**
 * The lock directory of a result directory: under /dev/shm (tmpfs) when there is one, named after
 * the result directory's absolute path, else the result directory itself. Creating and removing a
 * lock is a metadata write; on the benchmark machine's ext4 (shared with fsync-heavy databases)
 * that took 2.1 ms at the median and 21 ms at p90 for the create, read, unlink of a cold request,
 * against 0.44 ms on tmpfs — a tenth of a 20 ms transform. Processes sharing a result directory
 * share a machine (results are "local disk per node"), so they share /dev/shm too.
 */
export function defaultLockDir(dir: string): string {
  try {
    if (statSync('/dev/shm').isDirectory()) {
      const id = createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 32);
      return join('/dev/shm', `concord-result-locks-${id}`);
    }
  } catch {
    /* no /dev/shm (macOS, some containers): lock beside the results */
  }
  return dir;
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

/** An empty lock file older than this was left by a writer killed before it wrote its PID. */
const EMPTY_LOCK_MS = 1000;
/** How often a read moves a result's mtime (its recency for the sweeper). */
const TOUCH_MS = 60_000;
/** First read of a result: most results (avatars, thumbnails) fit, so one read suffices. */
const FIRST_READ = 64 * 1024;

/**
 * A whole file in open + read (+ read) + close: readFile's fstat is one more thread-pool round trip
 * per request, and the header says how long the file should be anyway. A file longer than its
 * header says is read whole too, so that decodeResult sees (and refuses) the extra bytes.
 */
async function readWhole(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    let buf = Buffer.allocUnsafe(FIRST_READ);
    let got = (await handle.read(buf, 0, buf.length, 0)).bytesRead;
    while (got === buf.length) {
      const declared = got >= HEADER ? HEADER + buf.readUInt32BE(4) : 0;
      const bigger = Buffer.allocUnsafe(Math.max(declared + 1, buf.length * 2));
      buf.copy(bigger, 0, 0, got);
      buf = bigger;
      const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await handle.close();
  }
}

const etagOf = (sha256: Buffer) => `"${sha256.subarray(0, 16).toString('hex')}"`;

export class ResultStore {
  private readonly inflight = new Map<string, Promise<StoredResult>>();
  /** Gets whose result may still be being written (see {@link ResultStore.settled}). */
  private readonly writing = new Set<Promise<void>>();
  /** When this process last moved each result's mtime. */
  private readonly touched = new Map<string, number>();
  private readonly staleLockMs: number;

  private readonly lockDir: string;
  /** Whether locks are on tmpfs (the default lock directory), where synchronous calls cannot block. */
  private readonly memoryLocks: boolean;

  constructor(private readonly opts: ResultStoreOptions) {
    this.staleLockMs = opts.staleLockMs ?? 30_000;
    this.lockDir = opts.lockDir ?? defaultLockDir(opts.dir);
    this.memoryLocks = this.lockDir.startsWith('/dev/shm/');
  }

  /** Creates the directories and removes temporary files left by crashed (dead) writers. */
  async start(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    await mkdir(this.lockDir, { recursive: true });
    for (const name of await readdir(this.opts.dir)) {
      if (!name.endsWith(TEMP)) continue;
      // `{key}.{pid}.{random}.tmp`: only a dead writer's. Another process sharing the directory may
      // be writing its own right now (the crash test caught a start removing a live server's).
      const pid = Number(name.split('.')[1]);
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) continue;
      await unlink(join(this.opts.dir, name)).catch(() => undefined);
    }
  }

  /** The lock file of `key` (in the lock directory, see {@link defaultLockDir}). */
  lockPath(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`invalid result key ${key}`);
    return join(this.lockDir, key + LOCK);
  }

  private path(key: string, ext: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`invalid result key ${key}`);
    return join(this.opts.dir, key + ext);
  }

  /**
   * The stored result for `key`, computing it with `produce` (once, across processes sharing the
   * directory) when missing or corrupt. A computed result is answered before its file is durable.
   * `prefetch`, if given, is called once when the result is found missing, before the lock is
   * taken: the caller starts reading its input there, overlapping the lock's file operations.
   */
  get(key: string, produce: () => Promise<Buffer>, prefetch?: () => void): Promise<StoredResult> {
    let pending = this.inflight.get(key);
    if (!pending) {
      const entry = this.load(key, produce, prefetch);
      pending = entry.result;
      this.inflight.set(key, pending);
      // Kept until the file is written, so that this process answers from memory meanwhile.
      const done = entry.written.finally(() => this.inflight.delete(key));
      this.writing.add(done);
      void done.finally(() => this.writing.delete(done));
    }
    return pending;
  }

  /** Whether a get of `key` is under way in this process (reading, computing or writing it). */
  inFlight(key: string): boolean {
    return this.inflight.has(key);
  }

  /** Resolves when every result computed so far is written (for shutdown and tests). */
  async settled(): Promise<void> {
    while (this.writing.size > 0) await Promise.allSettled([...this.writing]);
  }

  /** Waits for pending writes and removes the lock directory if no process has a lock in it. */
  async close(): Promise<void> {
    await this.settled();
    if (this.lockDir !== this.opts.dir) await rmdir(this.lockDir).catch(() => undefined);
  }

  /** Reads and verifies a result; a corrupt one is deleted and counted. Null when absent. */
  async read(key: string): Promise<StoredResult | null> {
    const file = this.path(key, RESULT);
    let bytes: Buffer;
    try {
      bytes = await readWhole(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const body = decodeResult(bytes);
    if (!body) {
      await unlink(file).catch(() => undefined);
      this.touched.delete(key);
      this.opts.onCorrupt?.();
      return null;
    }
    // Recency for the sweeper's LRU: atime is unreliable (noatime/relatime), so we move mtime, at
    // most once a minute per result (a utimes on every read cost ~2% of cached throughput).
    const now = Date.now();
    if (now - (this.touched.get(key) ?? 0) > TOUCH_MS) {
      if (this.touched.size >= 10_000) this.touched.clear();
      this.touched.set(key, now);
      await utimes(file, now / 1000, now / 1000).catch(() => undefined);
    }
    return { body, etag: etagOf(bytes.subarray(8, HEADER)) };
  }

  /** The result (as soon as it is read or computed) and the end of its write (if it was computed). */
  private load(
    key: string,
    produce: () => Promise<Buffer>,
    prefetch?: () => void,
  ): { result: Promise<StoredResult>; written: Promise<void> } {
    let written: Promise<void> = Promise.resolve();
    const result = (async () => {
      for (let attempt = 0; ; attempt++) {
        const found = await this.read(key);
        if (found) return found;
        if (attempt === 0) prefetch?.();
        if (!(await this.tryLock(key))) {
          await sleep(10);
          continue;
        }
        const unlock = async () => {
          try {
            if (this.memoryLocks) unlinkSync(this.lockPath(key));
            else await unlink(this.lockPath(key));
          } catch {
            /* taken over as stale meanwhile */
          }
        };
        let body: Buffer;
        try {
          // Another process may have finished between our read and our lock.
          const again = await this.read(key);
          if (again) {
            await unlock();
            return again;
          }
          body = await produce();
        } catch (err) {
          await unlock();
          throw err;
        }
        const file = encode(body);
        written = this.write(key, file)
          .catch((err: unknown) => this.opts.onWriteError?.(err))
          .finally(unlock);
        return { body, etag: etagOf(file.subarray(8, HEADER)) };
      }
    })();
    return {
      result,
      written: result.then(
        () => written,
        () => undefined,
      ),
    };
  }

  /** Takes the cross-process lock for `key`, or returns false when a live process holds it. */
  private async tryLock(key: string): Promise<boolean> {
    const file = this.lockPath(key);
    try {
      if (this.memoryLocks) {
        // tmpfs: microseconds, and three thread-pool round trips fewer on the path of a cold request
        // (each one several ms when the machine is saturated).
        const fd = openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY);
        try {
          writeSync(fd, String(process.pid));
        } finally {
          closeSync(fd);
        }
      } else {
        const handle = await open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY);
        await handle.writeFile(String(process.pid));
        await handle.close();
      }
      return true;
    } catch (err) {
      // Another process sharing the directory closed and removed the (then empty) lock directory.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        await mkdir(this.lockDir, { recursive: true });
        return false;
      }
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
      const pid = Number(text);
      const age = Date.now() - info.mtimeMs;
      // An empty lock is one being written right now, unless it is older than writing a PID takes:
      // its writer was killed between creating and filling it (the crash test finds such locks).
      const dead = text === '' ? age > EMPTY_LOCK_MS : Number.isSafeInteger(pid) && pid > 0 && !isAlive(pid);
      if (dead || age > this.staleLockMs) await unlink(file);
    } catch {
      /* the lock went away meanwhile: retry */
    }
    return false;
  }

  private async write(key: string, file: Buffer): Promise<void> {
    const temp = join(this.opts.dir, `${key}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP}`);
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(file);
      await handle.sync();
    } catch (err) {
      await handle.close();
      await unlink(temp).catch(() => undefined); // e.g. a full disk: leave no partial file behind
      throw err;
    }
    await handle.close();
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
