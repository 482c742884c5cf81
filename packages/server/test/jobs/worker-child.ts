import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { JobHandler } from '../../src/jobs/job.js';
import { FencedOffError } from '../../src/jobs/job.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import type { RunnerOptions } from '../../src/jobs/runner/options.js';
import type { JobStoreOptions, StopAt } from './fixture.js';
import { openJobLog } from './fixture.js';
import type { PagesPayload } from './pages.js';
import { PAGES_JOB, pageRows } from './pages.js';

/**
 * A job worker process for the kill, fencing, pause and property tests: a runner over the database
 * in argv[2] (JSON: where, options, mode, stop, store) with the multi-page test job. It prints one
 * line per event the parent watches for: `ready`, `claimed <job> <attempt>`,
 * `page <job> <attempt> <page>`, `rejected <job> <attempt> <page>`, `error <job> <attempt> <page>`,
 * `stopping <job> <attempt> <page>`, `done <job> <attempt>`.
 * Mode `stubborn`: the handler ignores its signal, rejections and errors and tries every page
 * anyway (to count what a worker that lost its lease attempts).
 * `stop`: the attempt that reaches that page SIGSTOPs its own process there — `inside` its fenced
 * write (after the page's rows, before the commit: the write lock held), or `after` its commit
 * (no transaction open) — so the parent knows exactly where it stopped.
 */
const args = JSON.parse(process.argv[2]!) as {
  where: { databaseUrl?: string; sqliteFile?: string };
  options: Partial<RunnerOptions>;
  mode: 'normal' | 'stubborn';
  stop?: StopAt;
  store?: JobStoreOptions;
};
// Pipes are written synchronously on Linux: a line is out before a self-SIGSTOP that follows it.
const say = (line: string) => process.stdout.write(`${line}\n`);
const { log, realmId } = await openJobLog(args.where, args.store);
let stopped = false;
const stopHere = (where: StopAt['where'], job: number, attempt: number, page: number) => {
  const at = args.stop;
  if (stopped || at?.where !== where || at.page !== page || at.attempt !== attempt) return;
  stopped = true;
  say(`stopping ${job} ${attempt} ${page}`);
  process.kill(process.pid, 'SIGSTOP');
};

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
        stopHere('inside', run.jobId, run.attempt, page);
      });
      stopHere('after', run.jobId, run.attempt, page);
      await run.progress(page + 1, pages, { created: (page + 1) * run.payload.rows });
      say(`page ${run.jobId} ${run.attempt} ${page}`);
    } catch (err) {
      say(`${err instanceof FencedOffError ? 'rejected' : 'error'} ${run.jobId} ${run.attempt} ${page}`);
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
