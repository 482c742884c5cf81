import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runnerSyncScheduler } from '../../src/jobs/directory/scheduler.js';
import { syncKey } from '../../src/jobs/directory/sync.js';
import { noopJob, NOOP_JOB } from '../../src/jobs/runner/noop.js';
import type { RetentionOptions } from '../../src/jobs/runner/retention.js';
import { oldestFinished, sweepFinishedJobs } from '../../src/jobs/runner/retention.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { backends } from '../support/backends.js';
import type { JobDb } from './fixture.js';
import { freshJobDb, testOptions, until } from './fixture.js';

const HOUR = 3_600_000;
const NOW = Date.now();
const clock = () => NOW;
const retention = (over: Partial<RetentionOptions> = {}): RetentionOptions => ({
  clock,
  retentionMs: 24 * HOUR,
  retentionBatch: 500,
  ...over,
});

type State = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'canceled';

describe.each(backends())('job retention (%s)', (backend) => {
  let db: JobDb;

  beforeAll(async () => {
    db = await freshJobDb(backend);
  });
  afterAll(async () => {
    await db?.cleanup();
  });
  beforeEach(async () => {
    await db.log.store.db.deleteFrom('job_runs').execute();
    await db.log.store.db.deleteFrom('jobs').execute();
  });

  /** A job row as the runner leaves it, `ageMs` after it was created (finished then, if it is). */
  const job = async (state: State, ageMs: number, opts: { key?: string; runs?: number } = {}) => {
    const at = NOW - ageMs;
    const done = ['succeeded', 'failed', 'canceled'].includes(state);
    const runs = opts.runs ?? (state === 'queued' ? 0 : 1);
    const { id } = await db.log.store.db
      .insertInto('jobs')
      .values({
        realm_id: db.realmId,
        kind: 'test.retention',
        payload: '{}',
        state,
        attempt: runs,
        max_attempts: 5,
        lease_token: state === 'running' ? 'token' : null,
        lease_expires_at: state === 'running' ? NOW + HOUR : null,
        run_after: at,
        deadline_ms: HOUR,
        cancel_requested: 0,
        progress_done: 0,
        counts: '{}',
        singleton_key: opts.key ?? null,
        created_at: at,
        started_at: runs > 0 ? at : null,
        finished_at: done ? at : null,
        updated_at: at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (let attempt = 1; attempt <= runs; attempt++)
      await db.log.store.db
        .insertInto('job_runs')
        .values({
          job_id: id,
          attempt,
          worker: 'w',
          outcome: attempt < runs || !done ? 'failed' : state,
          row_errors: '[]',
          counts: '{}',
          started_at: at,
          finished_at: at,
        })
        .execute();
    return id;
  };
  const jobIds = async () =>
    (await db.log.store.db.selectFrom('jobs').select('id').orderBy('id').execute()).map((r) => r.id);
  const runJobIds = async () =>
    [
      ...new Set(
        (await db.log.store.db.selectFrom('job_runs').select('job_id').execute()).map((r) => r.job_id),
      ),
    ].sort((a, b) => a - b);

  it('deletes old finished jobs with their runs; keeps recent ones and every queued, running or retrying job', async () => {
    const old = [
      await job('succeeded', 48 * HOUR, { runs: 2 }),
      await job('failed', 30 * HOUR, { runs: 3 }),
      await job('canceled', 25 * HOUR, { runs: 0 }),
    ];
    const kept = [
      await job('succeeded', 23 * HOUR),
      await job('failed', HOUR),
      await job('canceled', 0),
      // Created long ago, never finished: whatever their age, not retention's business.
      await job('queued', 100 * HOUR),
      await job('running', 100 * HOUR),
      await job('retrying', 100 * HOUR, { runs: 2 }),
    ];

    const swept = await sweepFinishedJobs(db.log.store, db.realmId, retention());

    expect(swept).toEqual({ jobs: 3, runs: 5, batches: 1, yielded: false });
    expect(await jobIds()).toEqual(kept);
    expect(await runJobIds()).toEqual(kept.filter((_, i) => i !== 3));
    expect(old.some((id) => kept.includes(id))).toBe(false);
    // Nothing more to do: a second sweep deletes nothing (and takes no write lock).
    expect(await sweepFinishedJobs(db.log.store, db.realmId, retention())).toMatchObject({
      jobs: 0,
      batches: 0,
    });
  });

  it('keeps the newest finished job of each singleton key, with its runs, however old', async () => {
    // k1: three old syncs: the newest stays.
    await job('failed', 72 * HOUR, { key: 'k1' });
    await job('succeeded', 60 * HOUR, { key: 'k1' });
    const k1Last = await job('failed', 50 * HOUR, { key: 'k1', runs: 3 });
    // k2: an old finished sync and a queued one: the finished one is still "the last sync".
    const k2Last = await job('succeeded', 50 * HOUR, { key: 'k2' });
    const k2Active = await job('queued', 0, { key: 'k2' });
    // k3: an old sync and a recent one: the old one goes.
    await job('succeeded', 50 * HOUR, { key: 'k3' });
    const k3Last = await job('canceled', HOUR, { key: 'k3' });

    const swept = await sweepFinishedJobs(db.log.store, db.realmId, retention());

    expect(swept.jobs).toBe(3);
    expect(await jobIds()).toEqual([k1Last, k2Last, k2Active, k3Last]);
    expect(await runJobIds()).toEqual([k1Last, k2Last, k3Last]);
    const runs = await db.log.store.db
      .selectFrom('job_runs')
      .select('attempt')
      .where('job_id', '=', k1Last)
      .execute();
    expect(runs).toHaveLength(3);
  });

  it('leaves a directory source its last sync: the history the status page reads still shows it', async () => {
    const sourceId = 4242;
    for (let i = 0; i < 5; i++) await job('succeeded', (100 - i) * HOUR, { key: syncKey(sourceId) });
    const last = await job('failed', 90 * HOUR, { key: syncKey(sourceId), runs: 2 });
    const scheduler = runnerSyncScheduler(db.log, db.realmId, { ...testOptions(), clock });

    await sweepFinishedJobs(db.log.store, db.realmId, retention());

    const history = await scheduler.history(sourceId, 10);
    expect(history.map((h) => ({ id: h.id, state: h.state, finished_at: h.finished_at }))).toEqual([
      { id: last, state: 'failed', finished_at: NOW - 90 * HOUR },
    ]);
    expect(history[0]!.attempts.map((a) => a.attempt)).toEqual([1, 2]);
  });

  it('deletes in bounded batches, oldest first, and a sweep stops after its batches', async () => {
    const ids: number[] = [];
    // Inserted newest first, so that id order is not age order.
    for (let i = 0; i < 23; i++) ids.push(await job('succeeded', (100 - i) * HOUR));
    const byAge = [...ids]; // ages 100 h, 99 h, …: oldest first already

    const first = await sweepFinishedJobs(db.log.store, db.realmId, retention({ retentionBatch: 5 }), 2);
    expect(first).toEqual({ jobs: 10, runs: 10, batches: 2, yielded: false });
    expect(await jobIds()).toEqual(byAge.slice(10));

    // The next sweep goes on where it stopped; the last batch is a partial one.
    const second = await sweepFinishedJobs(db.log.store, db.realmId, retention({ retentionBatch: 5 }));
    expect(second).toEqual({ jobs: 13, runs: 13, batches: 3, yielded: false });
    expect(await jobIds()).toEqual([]);
  });

  it('measures a batch: 2,000 old jobs with 2 runs each, in batches of 500', async () => {
    const insert = async (n: number) => {
      const values = Array.from({ length: n }, (_, i) => ({
        realm_id: db.realmId,
        kind: 'test.retention',
        payload: '{}',
        state: 'succeeded',
        attempt: 2,
        max_attempts: 5,
        run_after: NOW - 48 * HOUR,
        deadline_ms: HOUR,
        cancel_requested: 0,
        progress_done: 0,
        counts: '{}',
        created_at: NOW - 48 * HOUR,
        finished_at: NOW - 48 * HOUR + i,
        updated_at: NOW - 48 * HOUR,
      }));
      const rows = await db.log.store.db.insertInto('jobs').values(values).returning('id').execute();
      const runs = rows.flatMap(({ id }) =>
        [1, 2].map((attempt) => ({
          job_id: id,
          attempt,
          worker: 'w',
          outcome: attempt === 1 ? 'failed' : 'succeeded',
          row_errors: '[]',
          counts: '{}',
          started_at: NOW - 48 * HOUR,
          finished_at: NOW - 48 * HOUR,
        })),
      );
      await db.log.store.db.insertInto('job_runs').values(runs).execute();
    };
    for (let i = 0; i < 4; i++) await insert(500);
    const t0 = performance.now();
    const swept = await sweepFinishedJobs(db.log.store, db.realmId, retention());
    const ms = performance.now() - t0;
    console.log(
      `[retention ${backend}] ${swept.jobs} jobs + ${swept.runs} runs in ${swept.batches} batches: ${ms.toFixed(0)} ms (${(ms / swept.batches).toFixed(1)} ms per batch)`,
    );
    expect(swept).toEqual({ jobs: 2000, runs: 4000, batches: 4, yielded: false });
  });

  it('is safe when several nodes sweep at once: each job is deleted once, nothing fails', async () => {
    let runs = 0;
    for (let i = 0; i < 40; i++) {
      await job(i % 2 ? 'failed' : 'succeeded', 48 * HOUR, { runs: 1 + (i % 3) });
      runs += 1 + (i % 3);
    }
    const young = await job('succeeded', HOUR);
    // On PostgreSQL, three nodes. SQLite has one writing process (one connection in one process:
    // two in the same thread would wait on each other's write lock), so the sweeps interleave on
    // it, reading the same candidates.
    const others = db.where.databaseUrl
      ? await Promise.all([1, 2].map(() => openPostgresStore(db.where.databaseUrl!, 2)))
      : [];
    const stores = others.length > 0 ? [db.log.store, ...others] : [1, 2, 3].map(() => db.log.store);
    try {
      const sweeps = await Promise.all(
        stores.map((store) => sweepFinishedJobs(store, db.realmId, retention({ retentionBatch: 7 }))),
      );
      console.log(`[retention ${backend}] three concurrent sweeps: ${JSON.stringify(sweeps)}`);
      expect(sweeps.reduce((n, s) => n + s.jobs, 0)).toBe(40);
      expect(sweeps.reduce((n, s) => n + s.runs, 0)).toBe(runs);
      expect(await jobIds()).toEqual([young]);
    } finally {
      await Promise.all(others.map((s) => s.close()));
    }
  });

  it('reads its batch by the finished-jobs index, not by scanning every job', async () => {
    if (backend !== 'sqlite') return;
    const query = oldestFinished(db.log.store.db, db.realmId, NOW, 500).compile();
    const { rows } = await db.log.store.db.executeQuery<{ detail: string }>({
      ...query,
      sql: `EXPLAIN QUERY PLAN ${query.sql}`,
    });
    const plan = rows.map((r) => r.detail).join('\n');
    expect(plan).toMatch(/SEARCH j USING INDEX jobs_finished/);
    expect(plan).toMatch(/SEARCH n USING (COVERING )?INDEX jobs_by_key/);
    expect(plan).not.toMatch(/TEMP B-TREE/);
  });

  it('runs on the runner’s own timer, beside the reaper', async () => {
    const runner = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ retentionMs: 200, retentionSweepMs: 50 }),
    });
    runner.register(NOOP_JOB, noopJob);
    const old = await job('succeeded', 48 * HOUR);
    runner.start();
    try {
      const { job: fresh } = await runner.enqueue({ kind: NOOP_JOB, payload: null });
      await until(async () => (await runner.status(fresh.id))?.state === 'succeeded', 20_000, 'the job');
      // First the old job goes, then (once it is 200 ms old) the one that just ran.
      await until(async () => !(await jobIds()).includes(old), 20_000, 'the old job to be swept');
      await until(async () => (await jobIds()).length === 0, 20_000, 'the new job to be swept');
      expect(await runJobIds()).toEqual([]);
    } finally {
      await runner.stop();
    }
  });
});
