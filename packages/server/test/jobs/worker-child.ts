import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { JobHandler } from '../../src/jobs/job.js';
import { FencedOffError } from '../../src/jobs/job.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import type { RunnerOptions } from '../../src/jobs/runner/options.js';
import { openJobLog } from './fixture.js';
import type { PagesPayload } from './pages.js';
import { PAGES_JOB, pageRows } from './pages.js';

/**
 * A job worker process for the kill, fencing and property tests: a runner over the database in
 * argv[2] (JSON: where, options, mode) with the multi-page test job. It prints one line per event
 * the parent watches for: `ready`, `claimed <job> <attempt>`, `page <job> <attempt> <page>`,
 * `rejected <job> <attempt> <page>`, `done <job> <attempt>`.
 * Mode `stubborn`: the handler ignores its signal and rejections and tries every page anyway (to
 * count what a worker that lost its lease attempts).
 */
const args = JSON.parse(process.argv[2]!) as {
  where: { databaseUrl?: string; sqliteFile?: string };
  options: Partial<RunnerOptions>;
  mode: 'normal' | 'stubborn';
};
const say = (line: string) => process.stdout.write(`${line}\n`);
const { log, realmId } = await openJobLog(args.where);

const handler: JobHandler<PagesPayload> = async (run) => {
  say(`claimed ${run.jobId} ${run.attempt}`);
  const { pages, pageMs } = run.payload;
  for (let page = 0; page < pages; page++) {
    if (args.mode === 'stubborn') await sleep(pageMs);
    else await sleep(pageMs, undefined, { signal: run.signal });
    try {
      await run.fenced(async (ctx) => {
        for (const r of pageRows(run.jobId, run.payload, page))
          await sql`INSERT INTO job_data (job_id, page, item, value, attempt)
            VALUES (${r.jobId}, ${r.page}, ${r.item}, ${r.value}, ${run.attempt})
            ON CONFLICT (job_id, page, item) DO UPDATE SET value = excluded.value, attempt = excluded.attempt`.execute(
            ctx.trx,
          );
      });
      await run.progress(page + 1, pages, { created: (page + 1) * run.payload.rows });
      say(`page ${run.jobId} ${run.attempt} ${page}`);
    } catch (err) {
      if (!(err instanceof FencedOffError)) throw err;
      say(`rejected ${run.jobId} ${run.attempt} ${page}`);
      if (args.mode !== 'stubborn') throw err;
    }
  }
  say(`done ${run.jobId} ${run.attempt}`);
};

const runner = new JobRunner({
  log,
  realmId,
  options: {
    workerId: `child-${process.pid}`,
    leaseMs: 300,
    reaperMs: 100,
    concurrency: 2,
    maxAttempts: 10,
    deadlineMs: 60_000,
    backoffMs: 0,
    maxBackoffMs: 0,
    unclaimedAfterMs: 60_000,
    pollMs: 50,
    clock: Date.now,
    ...args.options,
  },
});
runner.register(PAGES_JOB, handler);
runner.start();
// The runner's timers do not hold a process open (a server has its HTTP port for that); a worker does.
const keepAlive = setInterval(() => {}, 1 << 30);
say('ready');
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  void runner
    .stop(0)
    .then(() => log.store.close())
    .then(() => process.exit(0));
});
