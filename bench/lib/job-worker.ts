import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import type { Doorbell } from '../../packages/server/src/changelog/doorbell.js';
import {
  LocalDoorbell,
  PostgresDoorbell,
  notifyChannel,
} from '../../packages/server/src/changelog/doorbell.js';
import { ChangeLog } from '../../packages/server/src/changelog/log.js';
import { ensureRealm } from '../../packages/server/src/domain/realm/ensureRealm.js';
import { runnerOptions } from '../../packages/server/src/jobs/runner/options.js';
import { JobRunner } from '../../packages/server/src/jobs/runner/runner.js';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { openSqliteStore } from '../../packages/server/src/store/sqlite.js';

/**
 * A job worker process for bench/jobs-recovery: a runner configured as a node would be (options
 * from the CONCORD_JOB_* values, the cluster doorbell on PostgreSQL) with one job kind that
 * prints `claimed <job> <attempt>` and then works until it is stopped.
 */
const args = JSON.parse(process.argv[2]!) as {
  databaseUrl?: string;
  sqliteFile?: string;
  leaseSeconds: number;
  reaperSeconds: number;
};
const quiet = pino({ level: 'silent' });
const store = args.databaseUrl
  ? await openPostgresStore(args.databaseUrl, 4)
  : await openSqliteStore(args.sqliteFile!);
let doorbell: Doorbell = new LocalDoorbell();
if (args.databaseUrl) {
  const bell = new PostgresDoorbell(args.databaseUrl, notifyChannel(store.scope), quiet);
  await bell.start();
  doorbell = bell;
}
const log = new ChangeLog(store, doorbell);
const realmId = await ensureRealm(log, 'Bench');
const runner = new JobRunner({
  log,
  realmId,
  options: runnerOptions({
    nodeId: `bench-${process.pid}`,
    jobLeaseSeconds: args.leaseSeconds,
    jobReaperSeconds: args.reaperSeconds,
    jobConcurrency: 1,
    jobMaxAttempts: 100,
    jobDeadlineSeconds: 3600,
  }),
});
runner.register('bench.long', async (run) => {
  process.stdout.write(`claimed ${run.jobId} ${run.attempt}\n`);
  await sleep(3_600_000, undefined, { signal: run.signal });
});
runner.start();
setInterval(() => {}, 1 << 30);
process.stdout.write('ready\n');
