import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { makeWorkerUtils, run } from 'graphile-worker';
import pg from 'pg';
import pino from 'pino';
import { PostgresDoorbell, notifyChannel } from '../packages/server/src/changelog/doorbell.js';
import { ChangeLog } from '../packages/server/src/changelog/log.js';
import { ensureRealm } from '../packages/server/src/domain/realm/ensureRealm.js';
import { enqueueJob } from '../packages/server/src/jobs/runner/enqueue.js';
import { JobRunner } from '../packages/server/src/jobs/runner/runner.js';
import type { RunnerOptions } from '../packages/server/src/jobs/runner/options.js';
import { openPostgresStore } from '../packages/server/src/store/postgres.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * No-op jobs per second through Concord's runner on PostgreSQL against graphile-worker 0.16 on the
 * same database (its own schema), same concurrency, same pool size (kept connected across rounds
 * on both sides), in one process, alternating rounds. Each round enqueues JOBS jobs first, then
 * times a fresh runner from start until every job's completion is committed. Concord's figure
 * includes what graphile-worker does not do: a `job_runs` history row per attempt and a
 * change-log entry (with its NOTIFY) for every transition.
 */
const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const POOL = 10;
const server = process.env.CONCORD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const quiet = pino({ level: 'silent' });

const suffix = randomBytes(4).toString('hex');
const concordSchema = `bench_jobs_${suffix}`;
const gwSchema = `bench_gw_${suffix}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
await admin.query(`CREATE SCHEMA ${concordSchema}`);
const withPath = new URL(server);
withPath.searchParams.set('options', `-c search_path=${concordSchema}`);

const store = await openPostgresStore(withPath.toString(), POOL);
const doorbell = new PostgresDoorbell(withPath.toString(), notifyChannel(store.scope), quiet);
await doorbell.start();
const log = new ChangeLog(store, doorbell);
const realmId = await ensureRealm(log, 'Bench');
const options: RunnerOptions = {
  workerId: 'bench',
  leaseMs: 30_000,
  reaperMs: 10_000,
  concurrency: CONCURRENCY,
  maxAttempts: 5,
  deadlineMs: 60_000,
  backoffMs: 1000,
  maxBackoffMs: 60_000,
  unclaimedAfterMs: 60_000,
  pollMs: 1000,
  clock: Date.now,
};

async function concordRound(n: number): Promise<number> {
  await log.run(realmId, async (ctx) => {
    for (let i = 0; i < n; i++) await enqueueJob(ctx, { kind: 'noop', payload: null }, options);
  });
  let done = 0;
  const runner = new JobRunner({ log, realmId, options });
  runner.register('noop', async () => void done++);
  const t0 = performance.now();
  runner.start();
  while (done < n || runner.running.length > 0) await new Promise((r) => setTimeout(r, 2));
  const ms = performance.now() - t0;
  await runner.stop();
  const left = await store.db.selectFrom('jobs').select('id').where('state', '!=', 'succeeded').execute();
  if (left.length > 0) throw new Error(`${left.length} Concord jobs did not succeed`);
  return (n / ms) * 1000;
}

const utils = await makeWorkerUtils({ connectionString: server, schema: gwSchema, logger: gwLogger() });
await utils.migrate();
// graphile-worker gets a pool that stays connected across rounds, as Concord's store's does: a
// round measures running jobs, not opening connections.
const gwPool = new pg.Pool({ connectionString: server, max: POOL });

async function graphileRound(n: number): Promise<number> {
  await admin.query(`SELECT ${gwSchema}.add_job('noop', '{}'::json) FROM generate_series(1, $1)`, [n]);
  let done = 0;
  let finished!: () => void;
  const allDone = new Promise<void>((r) => (finished = r));
  const t0 = performance.now();
  const runner = await run({
    pgPool: gwPool,
    schema: gwSchema,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: gwLogger(),
    taskList: { noop: async () => {} },
  });
  // 'job:complete' comes after the job's row is deleted ('job:success' comes before): both sides
  // stop the clock once every job's completion is committed.
  runner.events.on('job:complete', () => {
    if (++done === n) finished();
  });
  await allDone;
  const ms = performance.now() - t0;
  await runner.stop();
  const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${gwSchema}._private_jobs`);
  if (Number(rows[0]!.n) !== 0) throw new Error(`${rows[0]!.n} graphile-worker jobs left`);
  return (n / ms) * 1000;
}

function gwLogger() {
  // graphile-worker's Logger: silence it like Concord's.
  return new (class {
    scope() {
      return this;
    }
    error() {}
    warn() {}
    info() {}
    debug() {}
  })() as never;
}

try {
  // Warm up both (JIT, connection pools, PostgreSQL caches).
  await concordRound(200);
  await graphileRound(200);
  const c: number[] = [];
  const g: number[] = [];
  const rows: Record<string, string | number>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const first = r % 2 === 0;
    const a = first ? await concordRound(JOBS) : 0;
    const b = await graphileRound(JOBS);
    const a2 = first ? a : await concordRound(JOBS);
    c.push(a2);
    g.push(b);
    rows.push({ round: r + 1, concord_jobs_per_s: Math.round(a2), graphile_jobs_per_s: Math.round(b) });
  }
  printTable(
    `no-op jobs per second, ${JOBS} per round, concurrency ${CONCURRENCY}, pool ${POOL}, PostgreSQL (${cpus().length} cores shared by both runners and the database)`,
    rows,
  );
  const cs = summarize(c);
  const gs = summarize(g);
  await report('jobs-throughput', [
    {
      name: 'jobs-throughput-noop',
      metric: 'jobs_per_s',
      concord: cs.median,
      reference: 'graphile-worker 0.16',
      reference_value: gs.median,
      ratio: cs.median / gs.median,
      higher_is_better: true,
      goal: '>=1.0',
      rounds: ROUNDS,
      spread: Math.max(cs.spread, gs.spread),
    },
  ]);
} finally {
  await utils.release();
  await gwPool.end();
  await doorbell.close();
  await store.close();
  await admin.query(`DROP SCHEMA ${concordSchema} CASCADE`);
  await admin.query(`DROP SCHEMA ${gwSchema} CASCADE`);
  await admin.end();
}
