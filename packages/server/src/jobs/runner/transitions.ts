import type { ChangeLog } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { Lease } from '../job.js';
import { assertHeld } from './lease.js';
import type { RunnerOptions } from './options.js';
import { backoffDelay } from './options.js';
import { recordJob } from './record.js';

/** How an attempt ended, as its worker saw it. */
export type AttemptEnd =
  | { outcome: 'succeeded' }
  | { outcome: 'failed'; error: string }
  | { outcome: 'canceled' }
  /** The runner is shutting down: the job goes back to the queue without using up an attempt. */
  | { outcome: 'released' };

type TransitionOptions = Pick<
  RunnerOptions,
  'clock' | 'reaperMs' | 'unclaimedAfterMs' | 'backoffMs' | 'maxBackoffMs'
>;

/**
 * Ends an attempt under the fence: only the attempt that still holds the lease can move the job
 * on (a late worker gets {@link FencedOffError} and changes nothing). A failure retries with
 * exponential backoff until the last attempt, which fails the job; a cancel request that arrived
 * meanwhile ends the job canceled whatever the attempt's outcome.
 */
export async function endAttempt(
  log: ChangeLog,
  realmId: number,
  lease: Lease,
  end: AttemptEnd,
  opts: TransitionOptions,
): Promise<JobRow> {
  const { value } = await log.run(realmId, async (ctx) => {
    const now = opts.clock();
    const row = await assertHeld(ctx.trx, lease, now, 'transition');
    const canceled = row.cancel_requested === 1 && end.outcome !== 'succeeded';
    let next: Partial<JobRow>;
    let runOutcome: string = end.outcome;
    let error: string | null = null;
    if (canceled || end.outcome === 'canceled') {
      next = { state: 'canceled', finished_at: now, error: null };
      runOutcome = 'canceled';
    } else if (end.outcome === 'succeeded') {
      next = { state: 'succeeded', finished_at: now, error: null };
    } else if (end.outcome === 'released') {
      next = {
        state: 'retrying',
        run_after: now,
        max_attempts: row.max_attempts + 1,
        retry_reason: `attempt ${row.attempt} released: its runner shut down`,
      };
    } else {
      error = end.error;
      next =
        row.attempt >= row.max_attempts
          ? {
              state: 'failed',
              finished_at: now,
              error: `attempt ${row.attempt} of ${row.max_attempts}: ${end.error}`,
            }
          : {
              state: 'retrying',
              run_after: now + backoffDelay(opts, row.attempt),
              retry_reason: `attempt ${row.attempt} failed: ${end.error}`,
            };
    }
    const updated = await ctx.trx
      .updateTable('jobs')
      .set({ ...next, lease_token: null, lease_expires_at: null, deadline_at: null, updated_at: now })
      .where('id', '=', row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await ctx.trx
      .updateTable('job_runs')
      .set({ outcome: runOutcome, error, finished_at: now, counts: row.counts })
      .where('job_id', '=', row.id)
      .where('attempt', '=', row.attempt)
      .execute();
    recordJob(ctx, updated, opts, now);
    return updated;
  });
  return value;
}
