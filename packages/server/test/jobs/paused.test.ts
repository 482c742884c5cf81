import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { backends } from '../support/backends.js';
import type { WorkerChild } from './children.js';
import { spawnWorker } from './children.js';
import type { JobDb, StopAt } from './fixture.js';
import { freshJobDb, testOptions, until } from './fixture.js';
import type { PagesPayload } from './pages.js';
import { PAGES_JOB, createJobData, jobData, pageRows } from './pages.js';

/** The workers' PostgreSQL write transactions end after this long without a statement. */
const IDLE_MS = 1500;
const options = { leaseMs: 3000, reaperMs: 100, concurrency: 1, backoffMs: 0 };
/** How long the test waits for other writers while the worker stays stopped before it gives up. */
const GIVE_UP_MS = 20_000;

/** Whether `pid` is stopped (state T in /proc/<pid>/stat). */
function isStopped(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
}

/**
 * A worker process stopped (SIGSTOP; a debugger, a frozen VM or container behaves alike) in the
 * middle of a job, at its worst moment — inside a fenced write, holding the write lock — and
 * between two writes. Measures how long the other writers of the database (a command such as
 * "sync now", another worker claiming and finishing jobs) wait while it stays stopped, then
 * resumes it: every write it attempts is rejected and the job's result is the other worker's.
 */
describe.each(backends())('a worker stopped in the middle of a job (%s)', (backend) => {
  let db: JobDb;
  let runner: JobRunner;
  const workers: WorkerChild[] = [];
  let seed = 0;

  beforeAll(async () => {
    db = await freshJobDb(backend);
    await createJobData(db.log);
    runner = new JobRunner({ log: db.log, realmId: db.realmId, options: testOptions(options) });
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await db?.cleanup();
  });

  /**
   * Enqueues a job as a command would ("sync now"), giving up after {@link GIVE_UP_MS}: how long
   * it took, or how it was refused (SQLite: "database is locked" after its busy timeout).
   */
  async function enqueueAsACommand(payload: PagesPayload) {
    const t0 = performance.now();
    const attempt = runner.enqueue({ kind: PAGES_JOB, payload });
    const gaveUp = sleep(GIVE_UP_MS).then(() => null);
    try {
      const result = await Promise.race([attempt, gaveUp]);
      if (result === null) attempt.catch(() => {});
      return { jobId: result?.job.id ?? null, ms: performance.now() - t0, refusal: null };
    } catch (err) {
      const refusal = err instanceof Error ? err.message : String(err);
      return { jobId: null, ms: performance.now() - t0, refusal };
    }
  }

  const cases: { where: StopAt['where']; blocks: boolean }[] = [
    { where: 'after', blocks: false },
    // SQLite's one write lock is held by a stopped process until it runs again or dies (README,
    // "Jobs"); PostgreSQL ends the stopped session after its idle-in-transaction timeout.
    { where: 'inside', blocks: backend === 'sqlite' },
  ];

  it.each(cases)(
    'stopped $where its fenced write: other writers get on while it stays stopped (or, SQLite inside a write, once it runs again); its later writes are rejected',
    async ({ where, blocks }) => {
      const stop: StopAt = { page: 1, attempt: 1, where };
      const extra = { stop, store: { idleInTransactionMs: IDLE_MS } };
      // Both ready before the stop: a worker starting while the first holds SQLite's write lock
      // could not even migrate. Whichever claims the job stops at its page 1; the other takes over.
      const pair = [spawnWorker(db, options, 'stubborn', extra), spawnWorker(db, options, 'stubborn', extra)];
      workers.push(...pair);
      await Promise.all(pair.map((w) => w.ready));
      const payload = { pages: 4, rows: 4, pageMs: 20, seed: ++seed };
      const { job } = await runner.enqueue({ kind: PAGES_JOB, payload });
      const first = await until(
        () => pair.find((w) => w.lines.includes(`stopping ${job.id} 1 1`)),
        20_000,
        'a worker to stop itself',
      );
      const second = pair.find((w) => w !== first)!;
      await until(() => isStopped(first.child.pid!), 5000, 'the worker to be stopped');
      const stoppedAt = performance.now();

      // A command, as "sync now" makes one; then another worker claims and finishes its job.
      const other = { pages: 1, rows: 2, pageMs: 0, seed: ++seed };
      const command = await enqueueAsACommand(other);
      let resumedAt: number | null = null;
      let linesAtResume: number | null = null;
      if (blocks) {
        expect(command.jobId).toBeNull();
        expect(command.refusal).toMatch(/database is locked/);
        linesAtResume = first.lines.length;
        first.child.kill('SIGCONT');
        resumedAt = performance.now();
      } else {
        expect(command.jobId).not.toBeNull();
      }
      const enqueued = command.jobId ?? (await runner.enqueue({ kind: PAGES_JOB, payload: other })).job.id;
      const commandMs = performance.now() - (resumedAt ?? stoppedAt);
      await until(
        async () => (await runner.status(enqueued))?.state === 'succeeded',
        GIVE_UP_MS,
        'the other job',
      );
      const otherJobMs = performance.now() - (resumedAt ?? stoppedAt);
      await until(
        async () => (await runner.status(job.id))?.state === 'succeeded',
        GIVE_UP_MS,
        'the takeover',
      );
      const takeoverMs = performance.now() - (resumedAt ?? stoppedAt);
      if (!blocks) expect(isStopped(first.child.pid!)).toBe(true);
      // The other worker, or (SQLite, resumed before anyone could take the job over) itself.
      expect([...second.lines, ...first.lines]).toContain(`claimed ${job.id} 2`);
      const secondsResult = await jobData(db.log, job.id);

      linesAtResume ??= first.lines.length;
      first.child.kill('SIGCONT');
      await until(
        () => first.lines.includes(`done ${job.id} 1`),
        20_000,
        'the first worker to run out of pages',
      );
      const after = first.lines.slice(linesAtResume);
      console.log(
        `[paused ${backend} ${where}] ${
          resumedAt === null
            ? `while stopped: a command waited ${command.ms.toFixed(0)} ms`
            : `while stopped: a command was refused after ${command.ms.toFixed(0)} ms (${command.refusal}); after SIGCONT it took ${commandMs.toFixed(0)} ms`
        }; the other worker finished a job ${otherJobMs.toFixed(0)} ms and took the stopped one over ${takeoverMs.toFixed(0)} ms ${
          resumedAt === null ? 'after the stop' : 'after SIGCONT'
        } (idle-in-transaction ${IDLE_MS} ms, lease ${options.leaseMs} ms); resumed worker: ${after.join(', ')}`,
      );

      // Resumed: nothing it attempts lands. Its page 1 was either committed before the stop
      // (`after`; only its progress is then refused), lost with its ended session (PostgreSQL
      // `inside`), or committed when it resumed (SQLite `inside`: no one could take the lock
      // from it meanwhile, so no one took the job over before that commit).
      expect(after.filter((l) => l.startsWith(`page ${job.id} 1 `))).toEqual([]);
      expect(after).toEqual(expect.arrayContaining([2, 3].map((p) => `rejected ${job.id} 1 ${p}`)));
      const final = await jobData(db.log, job.id);
      expect(final).toEqual(secondsResult);
      expect(final.every((r) => r.attempt === 2)).toBe(true);
      const expected = Array.from({ length: payload.pages }, (_, p) => pageRows(job.id, payload, p)).flat();
      expect(final.map(({ page, item, value }) => ({ page, item, value }))).toEqual(
        expected.map(({ page, item, value }) => ({ page, item, value })),
      );
      expect(await runner.status(job.id)).toMatchObject({ state: 'succeeded', attempt: 2 });
      await Promise.all(pair.map((w) => w.stop()));
    },
  );

  it('a fenced write that awaits anything but its statements is refused on SQLite (it would hold the write lock across the wait)', async () => {
    const kind = 'test.awaits-in-write';
    const awaiting = new JobRunner({
      log: db.log,
      realmId: db.realmId,
      options: testOptions({ ...options, maxAttempts: 1 }),
    });
    awaiting.register(kind, async (run) => {
      await run.fenced(async (ctx) => {
        await sql`INSERT INTO job_data (job_id, page, item, value, attempt)
          VALUES (${run.jobId}, 0, 0, 'written', ${run.attempt})`.execute(ctx.trx);
        await sleep(5);
      });
    });
    awaiting.start();
    try {
      const { job } = await awaiting.enqueue({ kind, payload: null });
      const status = await until(async () => {
        const s = await awaiting.status(job.id);
        return s && ['succeeded', 'failed'].includes(s.state) && s;
      });
      if (backend === 'sqlite') {
        expect(status).toMatchObject({ state: 'failed' });
        expect(status.error).toMatch(/awaited something other than its statements/);
        expect(await jobData(db.log, job.id)).toEqual([]);
      } else {
        // PostgreSQL bounds such a wait by the idle-in-transaction timeout instead.
        expect(status).toMatchObject({ state: 'succeeded' });
        expect(await jobData(db.log, job.id)).toHaveLength(1);
      }
    } finally {
      await awaiting.stop();
    }
  });
});
