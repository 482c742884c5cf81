import type { ChangeLog } from '../../changelog/log.js';
import { enqueueJob } from '../runner/enqueue.js';
import { cancelJob } from '../runner/cancel.js';
import type { CancelResult } from '../runner/cancel.js';
import type { RunnerOptions } from '../runner/options.js';
import type { JobRunStatus, JobStatus } from '../runner/status.js';
import { deriveStatus, readJobRuns } from '../runner/status.js';
import type { DirectorySyncPayload } from './sync.js';
import { DIRECTORY_SYNC_JOB, syncKey } from './sync.js';

/** One sync of a source as its history shows it: the job's status and each of its attempts. */
export interface SyncRun extends JobStatus {
  attempts: JobRunStatus[];
}

/**
 * What the directory API needs from the job runner: start a sync ("sync now", or when a schedule
 * is due), cancel it, and read the status and history, all derived from the job rows.
 */
export interface SyncScheduler {
  /** Enqueues a sync of the source, or returns the one already active (one per source). */
  syncNow(
    sourceId: number,
    payload: Omit<DirectorySyncPayload, 'sourceId'>,
  ): Promise<{ job: JobStatus; created: boolean }>;
  /** Cancels the source's active sync; `job` is null when there was none. */
  cancel(sourceId: number): Promise<{ result: CancelResult; job: JobStatus | null }>;
  /** The source's active sync, if any. */
  active(sourceId: number): Promise<JobStatus | null>;
  /** The source's syncs, newest first. */
  history(sourceId: number, limit: number): Promise<SyncRun[]>;
}

type Options = Pick<RunnerOptions, 'maxAttempts' | 'deadlineMs' | 'reaperMs' | 'unclaimedAfterMs' | 'clock'>;

/** The scheduler over the database job runner's tables (jobs/runner). */
export function runnerSyncScheduler(log: ChangeLog, realmId: number, options: Options): SyncScheduler {
  const db = log.store.db;
  const jobsOf = (sourceId: number) =>
    db
      .selectFrom('jobs')
      .selectAll()
      .where('realm_id', '=', realmId)
      .where('singleton_key', '=', syncKey(sourceId));
  const activeRow = (sourceId: number) =>
    jobsOf(sourceId)
      .where('state', 'in', ['queued', 'running', 'retrying'])
      .orderBy('id', 'desc')
      .executeTakeFirst();
  return {
    async syncNow(sourceId, payload) {
      const { value } = await log.run(realmId, (ctx) =>
        enqueueJob(
          ctx,
          { kind: DIRECTORY_SYNC_JOB, payload: { ...payload, sourceId }, singletonKey: syncKey(sourceId) },
          options,
        ),
      );
      return { job: deriveStatus(value.job, options.clock(), options), created: value.created };
    },
    async cancel(sourceId) {
      const row = await activeRow(sourceId);
      if (!row) return { result: 'not_found', job: null };
      const result = await cancelJob(log, realmId, row.id, options);
      const after = await db
        .selectFrom('jobs')
        .selectAll()
        .where('id', '=', row.id)
        .executeTakeFirstOrThrow();
      return { result, job: deriveStatus(after, options.clock(), options) };
    },
    async active(sourceId) {
      const row = await activeRow(sourceId);
      return row ? deriveStatus(row, options.clock(), options) : null;
    },
    async history(sourceId, limit) {
      const rows = await jobsOf(sourceId).orderBy('id', 'desc').limit(limit).execute();
      const now = options.clock();
      return Promise.all(
        rows.map(async (r) => ({ ...deriveStatus(r, now, options), attempts: await readJobRuns(db, r.id) })),
      );
    },
  };
}

/**
 * Enqueues a sync for every LDAP source whose schedule is due: no active sync, and the last one
 * created at least `schedule` seconds ago. One command, so nodes ticking at once cannot enqueue
 * twice (and the singleton key would refuse it anyway). CSV sources sync only on upload.
 */
export async function enqueueDueSyncs(log: ChangeLog, realmId: number, options: Options): Promise<number[]> {
  // Most workspaces have no scheduled source: then a tick takes no write lock at all.
  const any = await log.store.db
    .selectFrom('directory_sources')
    .select('id')
    .where('realm_id', '=', realmId)
    .where('schedule', 'is not', null)
    .executeTakeFirst();
  if (!any) return [];
  const { value } = await log.run(realmId, async (ctx) => {
    // The clock job rows are stamped with (enqueueJob writes created_at = ctx.now).
    const now = ctx.now;
    const sources = await ctx.trx
      .selectFrom('directory_sources')
      .select(['id', 'schedule'])
      .where('realm_id', '=', realmId)
      .where('connector', '=', 'ldap')
      .where('schedule', 'is not', null)
      .execute();
    const started: number[] = [];
    for (const s of sources) {
      const last = await ctx.trx
        .selectFrom('jobs')
        .select(['created_at', 'state'])
        .where('realm_id', '=', realmId)
        .where('singleton_key', '=', syncKey(s.id))
        .orderBy('id', 'desc')
        .executeTakeFirst();
      if (last && ['queued', 'running', 'retrying'].includes(last.state)) continue;
      if (last && Number(last.created_at) + s.schedule! * 1000 > now) continue;
      await enqueueJob(
        ctx,
        { kind: DIRECTORY_SYNC_JOB, payload: { sourceId: s.id }, singletonKey: syncKey(s.id) },
        options,
      );
      started.push(s.id);
    }
    return started;
  });
  return value;
}

/** Checks schedules every `everyMs` until the returned function is called. */
export function startDirectorySchedules(
  log: ChangeLog,
  realmId: number,
  options: Options,
  everyMs: number,
  onError: (err: unknown) => void,
): () => void {
  const timer = setInterval(() => void enqueueDueSyncs(log, realmId, options).catch(onError), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
