import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { LocalDoorbell } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { ensureRealm } from '../../src/domain/realm/ensureRealm.js';
import type { RunnerOptions } from '../../src/jobs/runner/options.js';
import type { JobMetrics } from '../../src/observability/metrics.js';
import { createJobMetrics } from '../../src/observability/metrics.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Backend } from '../support/backends.js';
import { freshDatabase } from '../support/backends.js';

/** A job database for one test file: where it is (for child processes) and one process's view of it. */
export interface JobDb {
  backend: Backend;
  /** What a child process needs to open the same database. */
  where: { databaseUrl?: string; sqliteFile?: string };
  log: ChangeLog;
  realmId: number;
  cleanup(): Promise<void>;
}

/** How a worker process opens its store (PostgreSQL: see openPostgresStore). */
export interface JobStoreOptions {
  idleInTransactionMs?: number;
}

/**
 * Where a worker process stops itself (SIGSTOP): at `page` of a job's `attempt`, inside its fenced
 * write or after it.
 */
export interface StopAt {
  page: number;
  attempt: number;
  where: 'inside' | 'after';
}

/** Opens the database `where` names, as a runner process would (in-process doorbell: runners poll). */
export async function openJobLog(
  where: JobDb['where'],
  storeOptions: JobStoreOptions = {},
): Promise<{ log: ChangeLog; realmId: number }> {
  const store = where.databaseUrl
    ? await openPostgresStore(where.databaseUrl, 4, storeOptions)
    : await openSqliteStore(where.sqliteFile!);
  const log = new ChangeLog(store, new LocalDoorbell());
  const realmId = await ensureRealm(log, 'Jobs');
  return { log, realmId };
}

/** A fresh database on `backend`. */
export async function freshJobDb(backend: Backend): Promise<JobDb> {
  const db = await freshDatabase(backend);
  const where = db.databaseUrl
    ? { databaseUrl: db.databaseUrl }
    : { sqliteFile: join(db.dataDir, 'concord.sqlite') };
  const { log, realmId } = await openJobLog(where);
  return {
    backend,
    where,
    log,
    realmId,
    async cleanup() {
      await log.store.close();
      await db.cleanup();
    },
  };
}

/** A clock the test moves by hand; it starts a little ahead, so jobs enqueued now are due. */
export function manualClock(start = Date.now() + 1000) {
  let t = start;
  const clock = () => t;
  clock.advance = (ms: number) => void (t += ms);
  clock.set = (ms: number) => void (t = ms);
  return clock;
}

/**
 * Runner options for tests: short everything, overridable. The lease is not that short: on two
 * cores shared with a whole suite a live worker's heartbeat can be late by a second; tests about
 * expiry set their own lease or drive the clock.
 */
export function testOptions(overrides: Partial<RunnerOptions> = {}): RunnerOptions {
  return {
    workerId: 'test',
    leaseMs: 2000,
    reaperMs: 100,
    concurrency: 2,
    maxAttempts: 3,
    deadlineMs: 60_000,
    backoffMs: 50,
    maxBackoffMs: 1000,
    unclaimedAfterMs: 60_000,
    pollMs: 50,
    clock: Date.now,
    ...overrides,
  };
}

/** Fresh job metrics on a registry of their own. */
export function testMetrics(): JobMetrics {
  return createJobMetrics(new Registry());
}

/** The current value of a counter or gauge (summed over labels). */
export async function metricValue(m: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  const { values } = await m.get();
  return values.reduce((n, v) => n + v.value, 0);
}

/** Polls `check` until it returns a truthy value (or throws after `ms`). */
export async function until<T>(
  check: () => Promise<T> | T,
  ms = 20_000,
  what = 'condition',
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
