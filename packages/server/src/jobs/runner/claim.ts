import { randomBytes } from 'node:crypto';
import type { ChangeLog, CommandContext } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { RunnerOptions } from './options.js';
import { recordJob } from './record.js';

/** Whether any job of these kinds is due now; a cheap read that spares idle runners the write lock. */
export async function nextDue(
  log: ChangeLog,
  realmId: number,
  kinds: readonly string[],
): Promise<number | null> {
  if (kinds.length === 0) return null;
  const row = await log.store.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.min('run_after').as('due'))
    .where('realm_id', '=', realmId)
    .where('state', 'in', ['queued', 'retrying'])
    .where('kind', 'in', [...kinds])
    .executeTakeFirst();
  return row?.due == null ? null : Number(row.due);
}

/**
 * Claims up to `limit` due jobs of these kinds. Each claim increments the job's attempt and issues
 * a fresh lease token with an expiry (the fence every later write checks) and the attempt's hard
 * deadline (data writes stop at it; heartbeats stop renewing one lease past it), opens its `job_runs` row, and records the transition in the log.
 *
 * Claims run as commands: the transition must be in the log, and taking the write lock is what
 * orders a claim after every fenced write of the attempt before it. On PostgreSQL the rows are
 * also taken `FOR UPDATE SKIP LOCKED`, so runners never wait on each other's candidate rows; the
 * batch amortises the lock over several jobs.
 */
export async function claimJobs(
  log: ChangeLog,
  realmId: number,
  kinds: readonly string[],
  limit: number,
  opts: Pick<RunnerOptions, 'leaseMs' | 'workerId' | 'clock' | 'reaperMs' | 'unclaimedAfterMs'>,
): Promise<JobRow[]> {
  if (kinds.length === 0 || limit <= 0) return [];
  const { value } = await log.run(realmId, (ctx) =>
    claimIn(ctx, kinds, limit, log.store.caps.skipLocked, opts),
  );
  return value;
}

/** {@link claimJobs} inside the caller's command (the runner claims as it records finished attempts). */
export async function claimIn(
  ctx: CommandContext,
  kinds: readonly string[],
  limit: number,
  skipLocked: boolean,
  opts: Pick<RunnerOptions, 'leaseMs' | 'workerId' | 'clock' | 'reaperMs' | 'unclaimedAfterMs'>,
): Promise<JobRow[]> {
  if (kinds.length === 0 || limit <= 0) return [];
  const now = opts.clock();
  let candidates = ctx.trx
    .selectFrom('jobs')
    .select('id')
    .where('realm_id', '=', ctx.realmId)
    .where('state', 'in', ['queued', 'retrying'])
    .where('run_after', '<=', now)
    .where('kind', 'in', [...kinds])
    .orderBy('run_after')
    .orderBy('id')
    .limit(limit);
  if (skipLocked) candidates = candidates.forUpdate().skipLocked();
  // One token per claim batch: the fence is (job id, attempt, token), so jobs sharing a token
  // still cannot impersonate each other, and one UPDATE serves the batch.
  const token = randomBytes(16).toString('hex');
  const claimed = await ctx.trx
    .updateTable('jobs')
    .set((eb) => ({
      state: 'running',
      attempt: eb('attempt', '+', 1),
      lease_token: token,
      claimed_at: now,
      deadline_at: eb('deadline_ms', '+', now),
      lease_expires_at: now + opts.leaseMs,
      started_at: eb.fn.coalesce('started_at', eb.val(now)),
      retry_reason: null,
      updated_at: now,
    }))
    // Picked and claimed in one statement (one round trip fewer per batch).
    .where('id', 'in', candidates)
    .returningAll()
    .execute();
  if (claimed.length === 0) return [];
  await ctx.trx
    .insertInto('job_runs')
    .values(
      claimed.map((row) => ({
        job_id: row.id,
        attempt: row.attempt,
        worker: opts.workerId,
        outcome: 'running',
        row_errors: '[]',
        counts: row.counts,
        started_at: now,
      })),
    )
    .execute();
  for (const row of claimed) recordJob(ctx, row, opts, now);
  return claimed;
}
