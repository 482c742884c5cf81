import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { LocalDoorbell } from '../packages/server/src/changelog/doorbell.js';
import { ChangeLog } from '../packages/server/src/changelog/log.js';
import { ensureRealm } from '../packages/server/src/domain/realm/ensureRealm.js';
import { JobRunner } from '../packages/server/src/jobs/runner/runner.js';
import { runnerOptions } from '../packages/server/src/jobs/runner/options.js';
import { openPostgresStore } from '../packages/server/src/store/postgres.js';
import { openSqliteStore } from '../packages/server/src/store/sqlite.js';
import type { Store } from '../packages/server/src/store/store.js';
import type { Child } from './lib/processes.js';
import { startChild } from './lib/processes.js';
import type { BenchResult } from './lib/report.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * Time from a worker's SIGKILL to its job running again on another worker, against the bound the
 * configuration promises: lease + reaper interval. Two worker processes run a runner each (one
 * slot); the one holding the job is killed, the other one's reaper rescues the job and it claims
 * it. Measured from the kill to the second worker's `claimed` line.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const LEASE_S = Number(process.env.BENCH_LEASE_SECONDS ?? 2);
const REAPER_S = Number(process.env.BENCH_REAPER_SECONDS ?? 0.5);
const server = process.env.CONCORD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const worker = fileURLToPath(new URL('./lib/job-worker.ts', import.meta.url));
const bound = (LEASE_S + REAPER_S) * 1000;

interface Db {
  name: string;
  where: { databaseUrl?: string; sqliteFile?: string };
  store: Store;
  cleanup(): Promise<void>;
}

async function postgres(): Promise<Db> {
  const schema = `bench_recovery_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(server);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const store = await openPostgresStore(url.toString(), 2);
  return {
    name: 'postgres',
    where: { databaseUrl: url.toString() },
    store,
    async cleanup() {
      await store.close();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

async function sqlite(): Promise<Db> {
  const dir = mkdtempSync(join(tmpdir(), 'concord-bench-recovery-'));
  const file = join(dir, 'concord.sqlite');
  const store = await openSqliteStore(file);
  return {
    name: 'sqlite',
    where: { sqliteFile: file },
    store,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A worker and a way to wait for its next `claimed` line. */
async function spawnWorker(db: Db) {
  const args = JSON.stringify({ ...db.where, leaseSeconds: LEASE_S, reaperSeconds: REAPER_S });
  const child: Child = await startChild(worker, [args], /ready/);
  const claims: { job: number; attempt: number; at: number }[] = [];
  const waiters: (() => void)[] = [];
  child.child.stdout!.on('data', (chunk: Buffer) => {
    const at = performance.now();
    for (const m of chunk.toString().matchAll(/claimed (\d+) (\d+)/g)) {
      claims.push({ job: Number(m[1]), attempt: Number(m[2]), at });
      for (const w of waiters.splice(0)) w();
    }
  });
  const claimOf = async (job: number) => {
    for (;;) {
      const c = claims.find((x) => x.job === job);
      if (c) return c;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { child, claims, claimOf };
}

async function measure(db: Db): Promise<number[]> {
  const log = new ChangeLog(db.store, new LocalDoorbell());
  const realmId = await ensureRealm(log, 'Bench');
  const options = runnerOptions({
    nodeId: 'bench-enqueuer',
    jobLeaseSeconds: LEASE_S,
    jobReaperSeconds: REAPER_S,
    jobConcurrency: 0,
    jobMaxAttempts: 100,
    jobDeadlineSeconds: 3600,
  });
  const enqueuer = new JobRunner({ log, realmId, options });
  let a = await spawnWorker(db);
  let b = await spawnWorker(db);
  const samples: number[] = [];
  try {
    for (let r = 0; r < ROUNDS + 1; r++) {
      const { job } = await enqueuer.enqueue({ kind: 'bench.long', payload: null });
      const first = await Promise.race([a.claimOf(job.id), b.claimOf(job.id)]);
      const [holder, standby] = a.claims.includes(first) ? [a, b] : [b, a];
      // Let it heartbeat a few times: a kill at a random point of a long-running lease.
      await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * LEASE_S * 1000));
      const killedAt = performance.now();
      await holder.child.stop();
      const again = await standby.claimOf(job.id);
      if (r > 0) samples.push(again.at - killedAt); // the first round warms up
      await enqueuer.cancel(job.id);
      const fresh = await spawnWorker(db);
      [a, b] = [standby, fresh];
    }
  } finally {
    await Promise.all([a.child.stop(), b.child.stop()]);
  }
  return samples;
}

const results: BenchResult[] = [];
const rows: Record<string, string | number>[] = [];
for (const open of [postgres, sqlite]) {
  const db = await open();
  try {
    const samples = await measure(db);
    const s = summarize(samples);
    rows.push({
      backend: db.name,
      median_ms: Math.round(s.median),
      max_ms: Math.round(Math.max(...samples)),
      bound_ms: bound,
      rounds: samples.length,
    });
    results.push({
      name: `jobs-recovery-${db.name}`,
      metric: 'kill_to_running_again_ms',
      concord: s.median,
      reference: 'lease + reaper interval',
      reference_value: bound,
      ratio: s.median / bound,
      higher_is_better: false,
      goal: '<=1.0',
      rounds: samples.length,
      spread: s.spread,
    });
  } finally {
    await db.cleanup();
  }
}
printTable(
  `SIGKILL of the worker holding a job → the job running again on another worker (lease ${LEASE_S} s, reaper ${REAPER_S} s, ${cpus().length} cores shared)`,
  rows,
);
await report('jobs-recovery', results);
