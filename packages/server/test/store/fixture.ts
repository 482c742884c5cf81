import { setTimeout as sleep } from 'node:timers/promises';
import type { ChangeLog, CommandContext } from '../../src/changelog/log.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import type { Backend } from '../support/backends.js';
import { freshDatabase } from '../support/backends.js';

export { sleep };

/** A store over a fresh database (SQLite directory or PostgreSQL schema) and how to remove it. */
export interface TestStore {
  store: Store;
  /** Where it lives: `databaseUrl` for PostgreSQL, `dataDir` always. Open more stores over it with {@link openStore}. */
  location: { databaseUrl?: string; dataDir: string; databasePoolSize: number };
  /** Closes the store (if still open) and drops the database. */
  cleanup(): Promise<void>;
}

/** Opens a store on a fresh database for `backend`. */
export async function openTestStore(backend: Backend, databasePoolSize = 4): Promise<TestStore> {
  const db = await freshDatabase(backend);
  const location = { databaseUrl: db.databaseUrl, dataDir: db.dataDir, databasePoolSize };
  let store: Store;
  try {
    store = await openStore(location);
  } catch (err) {
    await db.cleanup();
    throw err;
  }
  let closed = false;
  const close = store.close.bind(store);
  store = {
    ...store,
    close: async () => {
      if (closed) return;
      closed = true;
      await close();
    },
  };
  return {
    store,
    location,
    async cleanup() {
      await store.close();
      await db.cleanup();
    },
  };
}

/**
 * Waits until `condition` holds, checking every few milliseconds; fails with `what` after
 * `timeoutMs`. The bound only turns a hang into a readable failure: no assertion depends on it.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Rejects with `what` if `promise` has not settled within `timeoutMs`. */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Appends one command of `count` changes, tagged `${tag}/${i}` in their payload, and returns the
 * head it committed.
 */
export async function appendCommand(log: ChangeLog, tag: string, count = 1, realmId = 1): Promise<number> {
  const { seq } = await log.run(realmId, async (ctx) => {
    for (let i = 0; i < count; i++) recordTagged(ctx, `${tag}/${i}`);
  });
  if (seq === null) throw new Error('a command that recorded changes returned no seq');
  return seq;
}

/** Records one change whose payload carries `tag`, so a reader can tell which command wrote it. */
export function recordTagged(ctx: CommandContext, tag: string): void {
  ctx.record({
    kind: 'user.updated',
    payload: { userId: 1, field: 'timezone', value: tag, previous: null },
    cacheKeys: ['user:1'],
    audience: { scope: 'realm' },
  });
}

/** The tag {@link recordTagged} put in a change's payload. */
export function tagOf(change: { kind: string; payload: unknown }): string {
  return String((change.payload as { value?: unknown }).value);
}

/** 1, 2, …, n. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}
