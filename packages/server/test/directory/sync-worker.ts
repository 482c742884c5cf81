import type { JobHandler } from '../../src/jobs/job.js';
import type { DirectorySyncPayload } from '../../src/jobs/directory/sync.js';
import { DIRECTORY_SYNC_JOB, directorySyncJob } from '../../src/jobs/directory/sync.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { openJobLog } from '../jobs/fixture.js';

/**
 * A worker process for the directory kill test: a job runner over the database in argv[2] with
 * the directory sync handler. Prints `ready`, `claimed <job> <attempt>`, `page <job> <attempt>`
 * after each committed page, and `done <job> <attempt>`. It claims nothing until sent SIGUSR2.
 */
const args = JSON.parse(process.argv[2]!) as {
  where: { databaseUrl?: string; sqliteFile?: string };
  pageSize: number;
};
const say = (line: string) => process.stdout.write(`${line}\n`);
const { log, realmId } = await openJobLog(args.where);
const sync = directorySyncJob({ store: log.store, pageSize: args.pageSize });

const handler: JobHandler<DirectorySyncPayload> = async (run) => {
  say(`claimed ${run.jobId} ${run.attempt}`);
  await sync({
    jobId: run.jobId,
    kind: run.kind,
    payload: run.payload,
    attempt: run.attempt,
    lease: run.lease,
    signal: run.signal,
    progress: (done, total, counts) => run.progress(done, total, counts),
    rowErrors: (errors) => run.rowErrors(errors),
    async fenced(fn) {
      const result = await run.fenced(fn);
      say(`page ${run.jobId} ${run.attempt}`);
      return result;
    },
  });
  say(`done ${run.jobId} ${run.attempt}`);
};

const runner = new JobRunner({
  log,
  realmId,
  options: {
    workerId: `sync-${process.pid}`,
    leaseMs: 300,
    reaperMs: 100,
    concurrency: 1,
    maxAttempts: 200,
    deadlineMs: 120_000,
    backoffMs: 0,
    maxBackoffMs: 0,
    unclaimedAfterMs: 60_000,
    pollMs: 50,
    clock: Date.now,
  },
});
runner.register(DIRECTORY_SYNC_JOB, handler);
// Started by SIGUSR2, so that a spare worker can wait, warmed up, until the test lets it claim.
process.on('SIGUSR2', () => runner.start());
const keepAlive = setInterval(() => {}, 1 << 30);
say('ready');
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  void runner
    .stop(0)
    .then(() => log.store.close())
    .then(() => process.exit(0));
});
