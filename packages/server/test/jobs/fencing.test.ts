import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { backends } from '../support/backends.js';
import type { WorkerChild } from './children.js';
import { spawnWorker } from './children.js';
import type { JobDb } from './fixture.js';
import { freshJobDb, testOptions, until } from './fixture.js';
import { PAGES_JOB, createJobData, jobData, pageRows } from './pages.js';

const options = { leaseMs: 300, reaperMs: 100, concurrency: 1, backoffMs: 0 };

describe.each(backends())('fencing: a worker paused past its lease (%s)', (backend) => {
  let db: JobDb;
  const workers: WorkerChild[] = [];

  beforeAll(async () => {
    db = await freshJobDb(backend);
    await createJobData(db.log);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await db?.cleanup();
  });

  it('has every write it attempts after resuming rejected; the result is the second worker’s', async () => {
    // The first worker ignores its signal and every rejection, so it tries every remaining page.
    const first = spawnWorker(db, options, 'stubborn');
    workers.push(first);
    await first.ready;
    const runner = new JobRunner({ log: db.log, realmId: db.realmId, options: testOptions(options) });
    const payload = { pages: 6, rows: 4, pageMs: 150, seed: 7 };
    const { job } = await runner.enqueue({ kind: PAGES_JOB, payload });

    // Pause it between pages (not inside a transaction: a paused transaction would hold the write lock).
    await new Promise<void>((resolve) =>
      first.onLine((line) => {
        if (line === `page ${job.id} 1 0`) {
          first.child.kill('SIGSTOP');
          resolve();
        }
      }),
    );
    const linesAtPause = first.lines.length;

    const second = spawnWorker(db, options);
    workers.push(second);
    await until(
      async () => (await runner.status(job.id))?.state === 'succeeded',
      20_000,
      'the second worker to finish',
    );
    expect(second.lines).toContain(`claimed ${job.id} 2`);
    const secondsResult = await jobData(db.log, job.id);

    first.child.kill('SIGCONT');
    await until(
      () => first.lines.includes(`done ${job.id} 1`),
      20_000,
      'the first worker to run out of pages',
    );
    const after = first.lines.slice(linesAtPause);
    const rejected = after.filter((l) => l.startsWith(`rejected ${job.id} 1 `));
    const accepted = after.filter((l) => l.startsWith(`page ${job.id} 1 `));
    console.log(
      `[fencing ${backend}] first worker after resuming: ${rejected.length} writes rejected, ${accepted.length} accepted`,
    );
    expect(accepted).toEqual([]);
    expect(rejected).toEqual([1, 2, 3, 4, 5].map((p) => `rejected ${job.id} 1 ${p}`));

    // Nothing changed since the second worker finished: its rows, all written by attempt 2.
    const final = await jobData(db.log, job.id);
    expect(final).toEqual(secondsResult);
    expect(final.every((r) => r.attempt === 2)).toBe(true);
    const expected = Array.from({ length: payload.pages }, (_, p) => pageRows(job.id, payload, p)).flat();
    expect(final.map(({ page, item, value }) => ({ page, item, value }))).toEqual(
      expected.map(({ page, item, value }) => ({ page, item, value })),
    );
    expect(await runner.status(job.id)).toMatchObject({
      state: 'succeeded',
      attempt: 2,
      progress: { done: 6, total: 6 },
    });
    expect((await runner.runs(job.id)).map((r) => r.outcome)).toEqual(['expired', 'succeeded']);
    await Promise.all([first.stop(), second.stop()]);
  });
});
