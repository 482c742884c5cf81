import { sql } from 'kysely';
import type { CommandContext } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import { recordJob } from './record.js';
import type { RunnerOptions } from './options.js';
import { zeroCounts } from './status.js';

/** What to run. */
export interface JobSpec {
  kind: string;
  payload: unknown;
  /** At most one active job per key (a directory source's id): a second enqueue returns the first. */
  singletonKey?: string | null;
  maxAttempts?: number;
  deadlineMs?: number;
  /** Not before this time (a schedule); default now. */
  runAfter?: number;
}

/** The enqueued (or already active) job. */
export interface Enqueued {
  job: JobRow;
  /** False when an active job with the same singleton key existed; it is returned instead. */
  created: boolean;
}

/**
 * Enqueues a job inside the caller's command: the job exists if and only if the command commits.
 * Runs in the write transaction, so the check for an active job with the same key cannot race
 * another enqueue; the partial unique index on `(realm_id, singleton_key)` backs it up.
 */
export async function enqueueJob(
  ctx: CommandContext,
  spec: JobSpec,
  defaults: Pick<RunnerOptions, 'maxAttempts' | 'deadlineMs' | 'reaperMs' | 'unclaimedAfterMs'>,
): Promise<Enqueued> {
  const key = spec.singletonKey ?? null;
  if (key !== null) {
    const active = await ctx.trx
      .selectFrom('jobs')
      .selectAll()
      .where('realm_id', '=', ctx.realmId)
      .where('singleton_key', '=', key)
      // As the partial unique index states it, so that SQLite searches it rather than every job.
      .where(sql<boolean>`state IN ('queued', 'running', 'retrying')`)
      .executeTakeFirst();
    if (active) return { job: active, created: false };
  }
  const job = await ctx.trx
    .insertInto('jobs')
    .values({
      realm_id: ctx.realmId,
      kind: spec.kind,
      payload: JSON.stringify(spec.payload ?? null),
      state: 'queued',
      attempt: 0,
      cancel_requested: 0,
      progress_done: 0,
      max_attempts: spec.maxAttempts ?? defaults.maxAttempts,
      run_after: spec.runAfter ?? ctx.now,
      deadline_ms: spec.deadlineMs ?? defaults.deadlineMs,
      counts: JSON.stringify(zeroCounts),
      singleton_key: key,
      created_at: ctx.now,
      updated_at: ctx.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  recordJob(ctx, job, defaults, ctx.now);
  return { job, created: true };
}
