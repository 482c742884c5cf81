import type { ChangeLog, CommandContext } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { Lease } from '../job.js';
import { FencedOffError } from '../job.js';
import { holds } from './lease.js';
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

export type TransitionOptions = Pick<
  RunnerOptions,
  'clock' | 'reaperMs' | 'unclaimedAfterMs' | 'backoffMs' | 'maxBackoffMs'
>;

/** One attempt's end to record; the result is the job's row after it, or the rejection. */
export interface EndRequest {
  lease: Lease;
  end: AttemptEnd;
}
export type EndResult = JobRow | FencedOffError;

/**
 * Ends an attempt under the fence: only the attempt that still holds the lease can move the job
 * on (a late worker gets {@link FencedOffError} and changes nothing). A failure retries with
 * exponential backoff until the last attempt, which fails the job; a cancel request that arrived
 * meanwhile ends the job canceled unless the attempt succeeded.
 */
export async function endAttempt(
  log: ChangeLog,
  realmId: number,
  lease: Lease,
  end: AttemptEnd,
  opts: TransitionOptions,
): Promise<JobRow> {
  const { value } = await log.run(realmId, (ctx) => endAttempts(ctx, [{ lease, end }], opts));
  if (value[0] instanceof FencedOffError) throw value[0];
  return value[0]!;
}

/**
 * {@link endAttempt} for several attempts in the caller's command, one result per request. The
 * runner batches the ends of attempts that finish together into one transaction: on PostgreSQL
 * every write transaction waits for its own WAL flush, and the write lock keeps transactions from
 * sharing one, so a batch of ten costs about what one costs. Successes are recorded set-wise.
 */
export async function endAttempts(
  ctx: CommandContext,
  requests: readonly EndRequest[],
  opts: TransitionOptions,
): Promise<EndResult[]> {
  if (requests.length === 0) return [];
  const now = opts.clock();
  const results: EndResult[] = [];
  const succeeded = [...requests.keys()].filter((i) => requests[i]!.end.outcome === 'succeeded');
  if (succeeded.length > 0) {
    // One conditional UPDATE checks every success's fence: the rows it returns still held their
    // lease; any request whose row it did not return was fenced off.
    const leases = succeeded.map((i) => requests[i]!.lease);
    const updated = await ctx.trx
      .updateTable('jobs')
      .set({
        state: 'succeeded',
        finished_at: now,
        error: null,
        lease_token: null,
        lease_expires_at: null,
        deadline_at: null,
        updated_at: now,
      })
      .where('state', '=', 'running')
      .where('lease_expires_at', '>', now)
      .where((eb) =>
        eb.or(
          leases.map((l) =>
            eb.and([eb('id', '=', l.jobId), eb('attempt', '=', l.attempt), eb('lease_token', '=', l.token)]),
          ),
        ),
      )
      .returningAll()
      .execute();
    const after = new Map(updated.map((r) => [r.id, r]));
    if (updated.length > 0)
      // A job has one open run at a time (the reaper closes an expired one before a new claim).
      await ctx.trx
        .updateTable('job_runs')
        .set({ outcome: 'succeeded', finished_at: now })
        .where('job_id', 'in', [...after.keys()])
        .where('outcome', '=', 'running')
        .execute();
    for (const i of succeeded) {
      const { lease } = requests[i]!;
      const row = after.get(lease.jobId);
      if (row && row.attempt === lease.attempt) {
        results[i] = row;
        recordJob(ctx, row, opts, now);
      } else {
        results[i] = new FencedOffError(lease.jobId, lease.attempt);
      }
    }
  }
  const others = [...requests.keys()].filter((i) => requests[i]!.end.outcome !== 'succeeded');
  if (others.length > 0) {
    const ids = [...new Set(others.map((i) => requests[i]!.lease.jobId))];
    const rows = await ctx.trx.selectFrom('jobs').selectAll().where('id', 'in', ids).execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const i of others) {
      const { lease, end } = requests[i]!;
      const row = byId.get(lease.jobId);
      results[i] = holds(row, lease, now, 'transition')
        ? await endOne(ctx, row!, end as Exclude<AttemptEnd, { outcome: 'succeeded' }>, now, opts)
        : new FencedOffError(lease.jobId, lease.attempt);
      if (!(results[i] instanceof FencedOffError)) byId.set(lease.jobId, results[i] as JobRow);
    }
  }
  return results;
}

async function endOne(
  ctx: CommandContext,
  row: JobRow,
  end: Exclude<AttemptEnd, { outcome: 'succeeded' }>,
  now: number,
  opts: TransitionOptions,
): Promise<JobRow> {
  let next: Partial<JobRow>;
  let runOutcome: string = end.outcome;
  let error: string | null = null;
  if (row.cancel_requested === 1 || end.outcome === 'canceled') {
    next = { state: 'canceled', finished_at: now, error: null };
    runOutcome = 'canceled';
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
}
