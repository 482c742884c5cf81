import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/changelog/change.js';
import type { Lease } from '../../src/jobs/job.js';
import { FencedOffError } from '../../src/jobs/job.js';
import { claimJobs, settleDialect } from '../../src/jobs/runner/claim.js';
import { enqueueJob } from '../../src/jobs/runner/enqueue.js';
import { reapExpired } from '../../src/jobs/runner/reaper.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { settle } from '../../src/jobs/runner/settle.js';
import type { JobRow } from '../../src/store/schema.js';
import { backends } from '../support/backends.js';
import type { JobDb } from './fixture.js';
import { freshJobDb, manualClock, testOptions, until } from './fixture.js';

const leaseOf = (row: JobRow): Lease => ({
  jobId: row.id,
  attempt: row.attempt,
  token: row.lease_token!,
  expiresAt: Number(row.lease_expires_at),
});

/**
 * The runner's batched transition: the ends of several attempts and the next claim in one command
 * (on PostgreSQL one prepared statement). Batching must not weaken the fence: each end in a batch
 * is checked on its own, and a claim in the same command takes only waiting jobs.
 */
describe.each(backends())('settle: batched ends and claims (%s)', (backend) => {
  let db: JobDb;
  let kindSeq = 0;
  const freshKind = () => `settle.kind${++kindSeq}`;

  beforeAll(async () => {
    db = await freshJobDb(backend);
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  const enqueueMany = async (kind: string, n: number, runAfter?: number) =>
    (
      await db.log.run(db.realmId, async (ctx) => {
        const jobs: JobRow[] = [];
        for (let i = 0; i < n; i++)
          jobs.push((await enqueueJob(ctx, { kind, payload: { i }, runAfter }, testOptions())).job);
        return jobs;
      })
    ).value;
  const rowOf = (id: number) =>
    db.log.store.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const runsOf = (id: number) =>
    db.log.store.db.selectFrom('job_runs').selectAll().where('job_id', '=', id).orderBy('attempt').execute();

  it('checks every end of a batch against its own fence; the claim in the same command takes only waiting jobs', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, leaseMs: 1000, backoffMs: 0 });
    const [a, b, c, d] = await enqueueMany(kind, 4);
    const [ca, cb, cc, cd] = await claimJobs(db.log, db.realmId, [kind], 4, opts);
    expect([ca, cb, cc, cd].map((r) => r!.id)).toEqual([a!.id, b!.id, c!.id, d!.id]);
    // c's lease is taken over: expired, reaped, claimed again (attempt 2).
    await db.log.run(db.realmId, (ctx) =>
      ctx.trx.updateTable('jobs').set({ lease_expires_at: clock() }).where('id', '=', c!.id).execute(),
    );
    await reapExpired(db.log, db.realmId, opts);
    const [cAgain] = await claimJobs(db.log, db.realmId, [kind], 1, opts);
    expect(cAgain).toMatchObject({ id: c!.id, attempt: 2 });
    const [e, f] = await enqueueMany(kind, 2);

    const head = await db.log.head();
    const { value } = await db.log.run(db.realmId, (ctx) =>
      settle(
        ctx,
        settleDialect(db.log.store),
        [
          { lease: leaseOf(ca!), end: { outcome: 'succeeded' } },
          // A forged token, a stale attempt, and a failure that still holds its lease.
          { lease: { ...leaseOf(cb!), token: '0'.repeat(32) }, end: { outcome: 'succeeded' } },
          { lease: leaseOf(cc!), end: { outcome: 'succeeded' } },
          { lease: leaseOf(cd!), end: { outcome: 'failed', error: 'boom' } },
        ],
        { kinds: [kind], limit: 5 },
        opts,
      ),
    );
    expect(value.results[0]).toMatchObject({ id: a!.id, state: 'succeeded', lease_token: null });
    expect(value.results[1]).toBeInstanceOf(FencedOffError);
    expect(value.results[2]).toBeInstanceOf(FencedOffError);
    expect(value.results[3]).toMatchObject({ id: d!.id, state: 'retrying' });
    // Only the two jobs that were waiting: not b (still running under its real lease), not c
    // (running under its second attempt), not a (just ended).
    expect(value.claimed.map((r) => r.id)).toEqual([e!.id, f!.id]);
    for (const row of value.claimed) {
      expect(row).toMatchObject({ state: 'running', attempt: 1, lease_expires_at: clock() + 1000 });
      expect(row.lease_token).toMatch(/^[0-9a-f]{32}$/);
      expect(await runsOf(row.id)).toMatchObject([{ attempt: 1, outcome: 'running', worker: 'test' }]);
    }

    // The rejected ends changed nothing.
    expect(await rowOf(b!.id)).toMatchObject({ state: 'running', attempt: 1, lease_token: cb!.lease_token });
    expect(await rowOf(c!.id)).toMatchObject({
      state: 'running',
      attempt: 2,
      lease_token: cAgain!.lease_token,
    });
    expect((await runsOf(c!.id)).map((r) => r.outcome)).toEqual(['expired', 'running']);
    expect((await runsOf(a!.id)).map((r) => [r.outcome, r.finished_at])).toEqual([['succeeded', clock()]]);

    // Every transition is in the log, ends before claims.
    const logged = (await db.log.readSince(head))
      .filter((ch): ch is Extract<Change, { kind: 'job.updated' }> => ch.kind === 'job.updated')
      .map((ch) => [ch.payload.job.id, ch.payload.job.state]);
    expect(logged).toEqual([
      [a!.id, 'succeeded'],
      [d!.id, 'retrying'],
      [e!.id, 'running'],
      [f!.id, 'running'],
    ]);
  });

  it('rejects a success whose lease expired even before the reaper ran, and claims in due order up to the limit', async () => {
    const kind = freshKind();
    const clock = manualClock();
    const opts = testOptions({ clock, leaseMs: 1000 });
    const [first] = await enqueueMany(kind, 1);
    const [claimed] = await claimJobs(db.log, db.realmId, [kind], 1, opts);
    // Later jobs due earlier come first; a job not yet due is not claimed.
    const late = await enqueueMany(kind, 2, clock() - 50);
    const early = await enqueueMany(kind, 1, clock() - 100);
    const notYet = await enqueueMany(kind, 1, clock() + 60_000);
    clock.advance(1000);
    const { value } = await db.log.run(db.realmId, (ctx) =>
      settle(
        ctx,
        settleDialect(db.log.store),
        [{ lease: leaseOf(claimed!), end: { outcome: 'succeeded' } }],
        { kinds: [kind], limit: 2 },
        opts,
      ),
    );
    expect(value.results[0]).toBeInstanceOf(FencedOffError);
    expect(value.claimed.map((r) => r.id)).toEqual([early[0]!.id, late[0]!.id]);
    expect(await rowOf(first!.id)).toMatchObject({ state: 'running', lease_token: claimed!.lease_token });
    const rest = await claimJobs(db.log, db.realmId, [kind], 10, opts);
    expect(rest.map((r) => r.id)).toEqual([late[1]!.id]);
    expect((await rowOf(notYet[0]!.id)).state).toBe('queued');
  });

  it.runIf(backend === 'postgres')(
    'runs as a prepared statement on PostgreSQL (parsed and planned once per connection)',
    async () => {
      const kind = freshKind();
      await enqueueMany(kind, 1);
      const names = await db.log.run(db.realmId, async (ctx) => {
        await settle(ctx, settleDialect(db.log.store), [], { kinds: [kind], limit: 1 }, testOptions());
        const { rows } = await sql<{ name: string }>`SELECT name FROM pg_prepared_statements`.execute(
          ctx.trx,
        );
        return rows.map((r) => r.name);
      });
      expect(names.value).toContain('concord_jobs_settle_1');
    },
  );

  it('a runner never runs more handlers at once than its concurrency, and runs every job once', async () => {
    const kind = freshKind();
    const runner = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ concurrency: 3, pollMs: 20 }),
    });
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    runner.register<{ i: number }>(kind, async (run) => {
      running++;
      most = Math.max(most, running);
      seen.push(run.payload.i);
      // Some end in the same turn (one batch), some later (batches of one or two).
      if (run.payload.i % 3 !== 0) await sleep(run.payload.i % 5);
      running--;
    });
    const jobs = await enqueueMany(kind, 30);
    runner.start();
    await until(async () => {
      const left = await db.log.store.db
        .selectFrom('jobs')
        .select('id')
        .where('kind', '=', kind)
        .where('state', '!=', 'succeeded')
        .execute();
      return left.length === 0;
    });
    await runner.stop();
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
    expect(seen.sort((x, y) => x - y)).toEqual(jobs.map((_, i) => i));
    const runs = await db.log.store.db
      .selectFrom('job_runs')
      .select(['job_id', 'attempt', 'outcome'])
      .where(
        'job_id',
        'in',
        jobs.map((j) => j.id),
      )
      .execute();
    expect(runs).toHaveLength(30);
    expect(runs.every((r) => r.attempt === 1 && r.outcome === 'succeeded')).toBe(true);
  });
});
