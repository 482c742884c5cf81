import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/changelog/change.js';
import { Role } from '../../src/domain/roles.js';
import { eventsFor } from '../../src/events/rules/index.js';
import type { Lease } from '../../src/jobs/job.js';
import { FencedOffError } from '../../src/jobs/job.js';
import { cancelJob } from '../../src/jobs/runner/cancel.js';
import { claimJobs } from '../../src/jobs/runner/claim.js';
import { enqueueJob } from '../../src/jobs/runner/enqueue.js';
import { assertHeld, heartbeat } from '../../src/jobs/runner/lease.js';
import { census, reapExpired } from '../../src/jobs/runner/reaper.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { readJobStatus } from '../../src/jobs/runner/status.js';
import { endAttempt } from '../../src/jobs/runner/transitions.js';
import type { JobRow } from '../../src/store/schema.js';
import { backends } from '../support/backends.js';
import type { JobDb } from './fixture.js';
import { freshJobDb, manualClock, metricValue, testMetrics, testOptions, until } from './fixture.js';

const leaseOf = (row: JobRow): Lease => ({
  jobId: row.id,
  attempt: row.attempt,
  token: row.lease_token!,
  expiresAt: Number(row.lease_expires_at),
});

describe.each(backends())('job runner contract (%s)', (backend) => {
  let db: JobDb;
  let kindSeq = 0;
  /** A kind of its own per test, so tests never claim each other's jobs. */
  const freshKind = () => `test.kind${++kindSeq}`;

  beforeAll(async () => {
    db = await freshJobDb(backend);
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  const enqueue = async (kind: string, opts: Parameters<typeof testOptions>[0] = {}, extra = {}) =>
    (
      await db.log.run(db.realmId, (ctx) =>
        enqueueJob(ctx, { kind, payload: { n: 1 }, ...extra }, testOptions(opts)),
      )
    ).value;

  it('enqueues inside the caller’s command: rolled back with it, and recorded as a change for administrators', async () => {
    const kind = freshKind();
    await expect(
      db.log.run(db.realmId, async (ctx) => {
        await enqueueJob(ctx, { kind, payload: {} }, testOptions());
        throw new Error('the command fails');
      }),
    ).rejects.toThrow('the command fails');
    expect(await db.log.store.db.selectFrom('jobs').select('id').where('kind', '=', kind).execute()).toEqual(
      [],
    );

    const head = await db.log.head();
    const { job } = await enqueue(kind);
    const changes = await db.log.readSince(head);
    expect(changes).toHaveLength(1);
    const change = changes[0]! as Extract<Change, { kind: 'job.updated' }>;
    expect(change.kind).toBe('job.updated');
    expect(change.audience).toEqual({ scope: 'administrators' });
    expect(change.payload.job).toMatchObject({ id: job.id, state: 'queued', attempt: 0 });
    // Administrators get it as an event (test/events/job-events.test.ts); members get nothing, and
    // a kind this node does not know (a newer node's) yields no event instead of an error.
    const member = { view: { role: Role.MEMBER } } as never;
    expect(eventsFor(change, member)).toEqual({ events: [] });
    expect(eventsFor({ ...change, kind: 'job.something_new' } as never, member)).toEqual({ events: [] });
  });

  it('a claim increments the attempt and issues a fresh token with an expiry; heartbeats renew only that lease', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, leaseMs: 1000 });
    const { job } = await enqueue(kind);
    const [claimed] = await claimJobs(db.log, db.realmId, [kind], 5, opts);
    expect(claimed).toMatchObject({
      id: job.id,
      state: 'running',
      attempt: 1,
      lease_expires_at: clock() + 1000,
    });
    expect(claimed!.lease_token).toMatch(/^[0-9a-f]{32}$/);
    // Nothing else to claim: a running job is not claimed again, even by another runner.
    expect(await claimJobs(db.log, db.realmId, [kind], 5, opts)).toEqual([]);

    const lease = leaseOf(claimed!);
    clock.advance(600);
    const beat = await heartbeat(db.log.store.db, lease, Number(claimed!.deadline_at), 1000, clock());
    expect(beat).toEqual({ held: true, expiresAt: clock() + 1000, cancelRequested: false });
    expect(
      await heartbeat(db.log.store.db, { ...lease, token: 'f'.repeat(32) }, Infinity, 1000, clock()),
    ).toEqual({
      held: false,
    });
    expect(await heartbeat(db.log.store.db, { ...lease, attempt: 2 }, Infinity, 1000, clock())).toEqual({
      held: false,
    });
    // Past its expiry a lease cannot be renewed: a paused worker does not come back to life.
    clock.advance(1001);
    expect(await heartbeat(db.log.store.db, lease, Number(claimed!.deadline_at), 1000, clock())).toEqual({
      held: false,
    });
    const runs = await db.log.store.db
      .selectFrom('job_runs')
      .selectAll()
      .where('job_id', '=', job.id)
      .execute();
    expect(runs).toMatchObject([{ attempt: 1, outcome: 'running', worker: 'test' }]);
  });

  it('fencing: a write checks state, attempt, token and expiry; after a takeover the old attempt changes nothing', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, leaseMs: 1000, backoffMs: 0 });
    const { job } = await enqueue(kind);
    const [first] = await claimJobs(db.log, db.realmId, [kind], 1, opts);
    const write = (lease: Lease, value: string) =>
      db.log.run(db.realmId, async (ctx) => {
        await assertHeld(ctx.trx, lease, clock());
        await ctx.trx.updateTable('jobs').set({ error: value }).where('id', '=', job.id).execute();
      });
    await write(leaseOf(first!), 'first');
    await expect(write({ ...leaseOf(first!), token: '0'.repeat(32) }, 'forged')).rejects.toBeInstanceOf(
      FencedOffError,
    );
    clock.advance(1000);
    // Expired but not yet reaped: already fenced off.
    await expect(write(leaseOf(first!), 'late')).rejects.toBeInstanceOf(FencedOffError);
    expect(await readJobStatus(db.log.store.db, job.id, opts, clock())).toMatchObject({
      state: 'stalled',
      retries_at: Number(first!.lease_expires_at) + opts.reaperMs,
    });
    expect((await reapExpired(db.log, db.realmId, opts)).filter((r) => r.jobId === job.id)).toEqual([
      { jobId: job.id, attempt: 1, expiredFor: 0, to: 'retrying' },
    ]);
    const [second] = await claimJobs(db.log, db.realmId, [kind], 1, opts);
    expect(second).toMatchObject({ id: job.id, attempt: 2 });
    await write(leaseOf(second!), 'second');
    await expect(write(leaseOf(first!), 'stale')).rejects.toBeInstanceOf(FencedOffError);
    await expect(
      endAttempt(db.log, db.realmId, leaseOf(first!), { outcome: 'succeeded' }, opts),
    ).rejects.toBeInstanceOf(FencedOffError);
    await endAttempt(db.log, db.realmId, leaseOf(second!), { outcome: 'succeeded' }, opts);
    const row = await db.log.store.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.id)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ state: 'succeeded', attempt: 2, error: null, lease_token: null });
    const runs = await db.log.store.db
      .selectFrom('job_runs')
      .selectAll()
      .where('job_id', '=', job.id)
      .orderBy('attempt')
      .execute();
    expect(runs.map((r) => r.outcome)).toEqual(['expired', 'succeeded']);
  });

  it('reaper: expired leases retry with exponential backoff, then fail with the reason after the last attempt', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, leaseMs: 1000, backoffMs: 500, maxBackoffMs: 10_000 });
    const { job } = await enqueue(kind, { maxAttempts: 4 });
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const [row] = await claimJobs(db.log, db.realmId, [kind], 1, opts);
      expect(row).toMatchObject({ id: job.id, attempt });
      clock.advance(1500);
      const rescues = (await reapExpired(db.log, db.realmId, opts)).filter((r) => r.jobId === job.id);
      expect(rescues).toEqual([
        { jobId: job.id, attempt, expiredFor: 500, to: attempt < 4 ? 'retrying' : 'failed' },
      ]);
      const status = (await readJobStatus(db.log.store.db, job.id, opts, clock()))!;
      if (attempt < 4) {
        expect(status.state).toBe('retrying');
        expect(status.retry_reason).toMatch(/lease of attempt \d .* expired; worker lost/);
        delays.push(status.retries_at! - clock());
        // Not claimable before its backoff is over.
        if (status.retries_at! > clock())
          expect(await claimJobs(db.log, db.realmId, [kind], 1, opts)).toEqual([]);
        clock.set(status.retries_at!);
      } else {
        expect(status).toMatchObject({ state: 'failed', finished_at: clock() });
        expect(status.error).toMatch(/attempt 4 of 4: lease of attempt 4 .* expired; worker lost/);
      }
    }
    // The first retry is immediate (a lost worker says nothing about the job), then 500, 1000 ms.
    expect(delays).toEqual([0, 500, 1000]);
    // Nothing left for the reaper; a failed job is never revived.
    expect((await reapExpired(db.log, db.realmId, opts)).filter((r) => r.jobId === job.id)).toEqual([]);
  });

  it('a failing handler retries with backoff and fails with its error after the last attempt', async () => {
    const kind = freshKind();
    const metrics = testMetrics();
    const runner = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ maxAttempts: 2 }),
      metrics,
    });
    let calls = 0;
    runner.register(kind, async (run) => {
      calls++;
      throw new Error(`source answered garbage on attempt ${run.attempt}`);
    });
    runner.start();
    const { job } = await runner.enqueue({ kind, payload: null });
    const status = await until(async () => {
      const s = await runner.status(job.id);
      return s?.state === 'failed' && s;
    });
    await runner.stop();
    expect(calls).toBe(2);
    expect(status.error).toBe('attempt 2 of 2: source answered garbage on attempt 2');
    expect((await runner.runs(job.id)).map((r) => [r.outcome, r.error])).toEqual([
      ['failed', 'source answered garbage on attempt 1'],
      ['failed', 'source answered garbage on attempt 2'],
    ]);
  });

  it('progress, counts and row errors are recorded under the fence and shown in the status and history', async () => {
    const kind = freshKind();
    const runner = new JobRunner({ log: db.log, realmId: db.realmId, options: testOptions() });
    runner.register(kind, async (run) => {
      await run.progress(1, 2, { created: 3 });
      await run.rowErrors([{ row: 'line 7', message: 'missing e-mail' }]);
      await run.progress(2, 2, { updated: 1, skipped: 1 });
    });
    runner.start();
    const head = await db.log.head();
    const { job } = await runner.enqueue({ kind, payload: null });
    const status = await until(async () => {
      const s = await runner.status(job.id);
      return s?.state === 'succeeded' && s;
    });
    await runner.stop();
    expect(status.progress).toEqual({ done: 2, total: 2 });
    expect(status.counts).toMatchObject({ created: 3, updated: 1, skipped: 1 });
    const [run] = await runner.runs(job.id);
    expect(run).toMatchObject({
      outcome: 'succeeded',
      row_errors: [{ row: 'line 7', message: 'missing e-mail' }],
    });
    // Every transition and progress step is a change in the log: queued, running, 1/2, 2/2, succeeded.
    const states = (await db.log.readSince(head))
      .filter(
        (c): c is Extract<Change, { kind: 'job.updated' }> =>
          c.kind === 'job.updated' && c.payload.job.id === job.id,
      )
      .map((c) => `${c.payload.job.state}:${c.payload.job.progress.done}`);
    expect(states).toEqual(['queued:0', 'running:0', 'running:1', 'running:2', 'succeeded:2']);
  });

  it('cancel: a queued job ends canceled at once; a running one has its signal aborted and ends canceled', async () => {
    const kind = freshKind();
    const { job: waiting } = await enqueue(kind, {}, { runAfter: Date.now() + 3_600_000 });
    expect(await cancelJob(db.log, db.realmId, waiting.id, testOptions())).toBe('canceled');
    expect((await readJobStatus(db.log.store.db, waiting.id, testOptions()))!.state).toBe('canceled');

    const runner = new JobRunner({ log: db.log, realmId: db.realmId, options: testOptions() });
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let abortedWith: unknown = null;
    runner.register(kind, async (run) => {
      started();
      await sleep(60_000, undefined, { signal: run.signal }).catch((err: unknown) => (abortedWith = err));
      throw new Error('stopped');
    });
    runner.start();
    const { job } = await runner.enqueue({ kind, payload: null });
    await running;
    expect(await runner.cancel(job.id)).toBe('requested');
    const status = await until(async () => {
      const s = await runner.status(job.id);
      return s?.state === 'canceled' && s;
    });
    await runner.stop();
    expect(abortedWith).not.toBeNull();
    expect(status.cancel_requested).toBe(true);
    expect((await runner.runs(job.id)).map((r) => r.outcome)).toEqual(['canceled']);
  });

  it('a cancel reaches a worker in another runner through its heartbeat', async () => {
    const kind = freshKind();
    const worker = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ leaseMs: 600 }),
    });
    const admin = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ concurrency: 0 }),
    });
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    worker.register(kind, async (run) => {
      started();
      await sleep(60_000, undefined, { signal: run.signal });
    });
    worker.start();
    const { job } = await admin.enqueue({ kind, payload: null });
    await running;
    expect(await admin.cancel(job.id)).toBe('requested');
    await until(async () => (await admin.status(job.id))?.state === 'canceled');
    await worker.stop();
  });

  it('the hard deadline aborts an attempt that runs too long, and it is retried', async () => {
    const kind = freshKind();
    const runner = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ backoffMs: 10 }),
    });
    runner.register(kind, async (run) => {
      if (run.attempt === 1) await sleep(60_000, undefined, { signal: run.signal });
    });
    runner.start();
    const { job } = await runner.enqueue({ kind, payload: null, deadlineMs: 200 });
    await until(async () => (await runner.status(job.id))?.state === 'succeeded');
    await runner.stop();
    expect((await runner.runs(job.id)).map((r) => [r.outcome, r.error])).toEqual([
      ['failed', 'deadline of 0.2 s exceeded'],
      ['succeeded', null],
    ]);
  });

  it('graceful shutdown stops claiming and releases running jobs without using up an attempt', async () => {
    const kind = freshKind();
    const runner = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ concurrency: 1 }),
    });
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    runner.register(kind, async (run) => {
      started();
      await sleep(60_000, undefined, { signal: run.signal });
    });
    runner.start();
    const { job } = await runner.enqueue({ kind, payload: null, maxAttempts: 1 });
    const { job: other } = await runner.enqueue({ kind, payload: null });
    await running;
    await runner.stop(50);
    const status = (await runner.status(job.id))!;
    expect(status).toMatchObject({ state: 'retrying', attempt: 1, max_attempts: 2 });
    expect(status.retry_reason).toMatch(/released/);
    expect((await runner.status(other.id))!.state).toBe('queued');
    expect((await runner.runs(job.id)).map((r) => r.outcome)).toEqual(['released']);
    // Another runner picks it up and finishes it.
    const next = new JobRunner({ log: db.log, realmId: db.realmId, options: testOptions() });
    next.register(kind, async () => {});
    next.start();
    await until(
      async () =>
        (await next.status(job.id))?.state === 'succeeded' &&
        (await next.status(other.id))?.state === 'succeeded',
    );
    await next.stop();
  });

  it('a due job no runner claims is reported as unclaimed (status flag and metric), not silently queued', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, unclaimedAfterMs: 5000 });
    const { job } = await enqueue(kind, {}, { runAfter: clock() });
    expect((await readJobStatus(db.log.store.db, job.id, opts, clock()))!.unclaimed).toBe(false);
    clock.advance(5001);
    expect((await readJobStatus(db.log.store.db, job.id, opts, clock()))!).toMatchObject({
      state: 'queued',
      unclaimed: true,
    });
    const metrics = testMetrics();
    const runner = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: { ...opts, concurrency: 0 },
      metrics,
    });
    const round = await runner.reap();
    expect(round!.census.unclaimed).toBeGreaterThanOrEqual(1);
    expect(await metricValue(metrics.unclaimed)).toBeGreaterThanOrEqual(1);
    await db.log.run(db.realmId, (ctx) =>
      ctx.trx.updateTable('jobs').set({ state: 'canceled' }).where('id', '=', job.id).execute(),
    );
  });

  it('at most one active job per key: a second enqueue returns the first; the database refuses a duplicate', async () => {
    const kind = freshKind();
    const key = `source:${kind}`;
    const a = await enqueue(kind, {}, { singletonKey: key });
    const b = await enqueue(kind, {}, { singletonKey: key });
    expect(a.created).toBe(true);
    expect(b).toMatchObject({ created: false, job: { id: a.job.id } });
    await expect(
      db.log.run(db.realmId, (ctx) =>
        sql`INSERT INTO jobs (realm_id, kind, payload, state, max_attempts, run_after, deadline_ms, counts, singleton_key, created_at, updated_at)
            VALUES (${db.realmId}, ${kind}, 'null', 'retrying', 1, 0, 1000, '{}', ${key}, 0, 0)`.execute(
          ctx.trx,
        ),
      ),
    ).rejects.toThrow(/unique/i);
    expect(await cancelJob(db.log, db.realmId, a.job.id, testOptions())).toBe('canceled');
    const c = await enqueue(kind, {}, { singletonKey: key });
    expect(c.created).toBe(true);
    expect(c.job.id).not.toBe(a.job.id);
    await cancelJob(db.log, db.realmId, c.job.id, testOptions());
  });

  it('the census counts jobs by state and the lease invariant holds while a reaper runs', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, leaseMs: 1000, reaperMs: 100 });
    await enqueue(kind);
    await claimJobs(db.log, db.realmId, [kind], 1, opts);
    clock.advance(1000 + 1000 + 100 + 1);
    // Nobody reaped for longer than lease + reaper interval: a violation, counted.
    expect((await census(db.log, db.realmId, opts)).invariantViolations).toBe(1);
    await reapExpired(db.log, db.realmId, opts);
    const after = await census(db.log, db.realmId, opts);
    expect(after.invariantViolations).toBe(0);
    expect(after.byState.retrying).toBeGreaterThanOrEqual(1);
  });
});
