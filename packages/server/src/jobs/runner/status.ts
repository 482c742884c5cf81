import type { Kysely } from 'kysely';
import type { Database, JobRow, JobRunRow } from '../../store/schema.js';
import type { JobCounts, JobState, RowError } from '../job.js';

/**
 * What a job looks like to an administrator. `state` is derived from the row *and its lease*: a
 * `running` row whose lease has expired shows as `stalled` (with when it is expected to be retried
 * or failed), never as running.
 */
export interface JobStatus {
  id: number;
  kind: string;
  state: JobState | 'stalled';
  attempt: number;
  max_attempts: number;
  progress: { done: number; total: number | null };
  counts: JobCounts;
  error: string | null;
  /** Why the job is retrying or stalled. */
  retry_reason: string | null;
  /** When a retrying job becomes due, or when the reaper is expected to act on a stalled one. */
  retries_at: number | null;
  /** Due, yet no runner has claimed it within the configured bound. */
  unclaimed: boolean;
  cancel_requested: boolean;
  lease_expires_at: number | null;
  singleton_key: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** One attempt in a job's history. */
export interface JobRunStatus {
  attempt: number;
  worker: string;
  outcome: string;
  error: string | null;
  row_errors: RowError[];
  counts: JobCounts;
  started_at: number;
  finished_at: number | null;
}

export const zeroCounts: JobCounts = {
  created: 0,
  updated: 0,
  deactivated: 0,
  subscribed: 0,
  unsubscribed: 0,
  skipped: 0,
};

/** The bounds status derivation needs. */
export interface StatusBounds {
  reaperMs: number;
  unclaimedAfterMs: number;
}

/** Derives a job's status from its row at time `now`. */
export function deriveStatus(row: JobRow, now: number, bounds: StatusBounds): JobStatus {
  let state = row.state as JobStatus['state'];
  let retriesAt: number | null = null;
  let reason = row.retry_reason;
  if (state === 'running' && row.lease_expires_at !== null && row.lease_expires_at <= now) {
    state = 'stalled';
    retriesAt = Number(row.lease_expires_at) + bounds.reaperMs;
    reason = `lease of attempt ${row.attempt} expired at ${new Date(Number(row.lease_expires_at)).toISOString()} (worker lost)`;
  } else if (state === 'retrying') {
    retriesAt = Number(row.run_after);
  }
  const waiting = state === 'queued' || state === 'retrying';
  return {
    id: row.id,
    kind: row.kind,
    state,
    attempt: row.attempt,
    max_attempts: row.max_attempts,
    progress: { done: row.progress_done, total: row.progress_total },
    counts: { ...zeroCounts, ...(JSON.parse(row.counts) as Partial<JobCounts>) },
    error: row.error,
    retry_reason: state === 'queued' ? null : reason,
    retries_at: retriesAt,
    unclaimed: waiting && now - Number(row.run_after) > bounds.unclaimedAfterMs,
    cancel_requested: row.cancel_requested === 1,
    lease_expires_at: row.lease_expires_at === null ? null : Number(row.lease_expires_at),
    singleton_key: row.singleton_key,
    created_at: Number(row.created_at),
    started_at: row.started_at === null ? null : Number(row.started_at),
    finished_at: row.finished_at === null ? null : Number(row.finished_at),
  };
}

/** A job's status now, or null when there is no such job. */
export async function readJobStatus(
  db: Kysely<Database>,
  jobId: number,
  bounds: StatusBounds,
  now = Date.now(),
): Promise<JobStatus | null> {
  const row = await db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
  return row ? deriveStatus(row, now, bounds) : null;
}

/** A job's attempts, oldest first. */
export async function readJobRuns(db: Kysely<Database>, jobId: number): Promise<JobRunStatus[]> {
  const rows = await db
    .selectFrom('job_runs')
    .selectAll()
    .where('job_id', '=', jobId)
    .orderBy('attempt')
    .execute();
  return rows.map((r: JobRunRow) => ({
    attempt: r.attempt,
    worker: r.worker,
    outcome: r.outcome,
    error: r.error,
    row_errors: JSON.parse(r.row_errors) as RowError[],
    counts: { ...zeroCounts, ...(JSON.parse(r.counts) as Partial<JobCounts>) },
    started_at: Number(r.started_at),
    finished_at: r.finished_at === null ? null : Number(r.finished_at),
  }));
}
