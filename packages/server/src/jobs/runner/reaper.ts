import { sql } from 'kysely';
import type { ChangeLog } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { RunnerOptions } from './options.js';
import { backoffDelay } from './options.js';
import { closeAttempt } from './settle.js';

/** One job the reaper moved on, for the log line and the metrics. */
export interface Rescue {
  jobId: number;
  attempt: number;
  /** How long the lease had been expired when the reaper acted (ms). */
  expiredFor: number;
  to: 'retrying' | 'failed' | 'canceled';
}

type ReaperOptions = Pick<
  RunnerOptions,
  'clock' | 'reaperMs' | 'unclaimedAfterMs' | 'backoffMs' | 'maxBackoffMs'
>;

/**
 * Returns every job whose lease has expired to the queue (`retrying`, after backoff), or fails it
 * after its last attempt, or cancels it when a cancel was requested — whatever its row "says".
 * The expired attempt's run is closed as `expired`. One reaper at a time across the cluster: on
 * PostgreSQL a transaction-scoped advisory lock, skipped (not waited for) when another node holds
 * it; SQLite has one writer. A cheap read first spares the write lock when nothing expired.
 */
export async function reapExpired(log: ChangeLog, realmId: number, opts: ReaperOptions): Promise<Rescue[]> {
  const probe = opts.clock();
  const any = await log.store.db
    .selectFrom('jobs')
    .select('id')
    .where('realm_id', '=', realmId)
    .where('state', '=', 'running')
    .where('lease_expires_at', '<=', probe)
    .limit(1)
    .executeTakeFirst();
  if (!any) return [];
  const { value } = await log.run(realmId, async (ctx) => {
    if (log.store.caps.multiNode) {
      const { rows } = await sql<{
        got: boolean;
      }>`SELECT pg_try_advisory_xact_lock(hashtext('concord-job-reaper:' || current_schema())) AS got`.execute(
        ctx.trx,
      );
      if (!rows[0]?.got) return [];
    }
    const now = opts.clock();
    const expired = await ctx.trx
      .selectFrom('jobs')
      .selectAll()
      .where('realm_id', '=', realmId)
      .where('state', '=', 'running')
      .where('lease_expires_at', '<=', now)
      .orderBy('lease_expires_at')
      .limit(500)
      .execute();
    const rescues: Rescue[] = [];
    for (const row of expired) {
      const reason = `lease of attempt ${row.attempt} (${row.lease_token?.slice(0, 8)}) expired; worker lost`;
      let next: Partial<JobRow>;
      let to: Rescue['to'];
      if (row.cancel_requested === 1) {
        next = { state: 'canceled', finished_at: now };
        to = 'canceled';
      } else if (row.attempt >= row.max_attempts) {
        next = {
          state: 'failed',
          finished_at: now,
          error: `attempt ${row.attempt} of ${row.max_attempts}: ${reason}`,
        };
        to = 'failed';
      } else {
        next = { state: 'retrying', run_after: now + backoffDelay(opts, row.attempt), retry_reason: reason };
        to = 'retrying';
      }
      await closeAttempt(ctx, row, next, { outcome: 'expired', error: reason }, now, opts);
      rescues.push({
        jobId: row.id,
        attempt: row.attempt,
        expiredFor: now - Number(row.lease_expires_at),
        to,
      });
    }
    return rescues;
  });
  return value;
}

/** What the reaper reports each round besides rescues. */
export interface JobCensus {
  byState: Record<string, number>;
  /** Age of the oldest running attempt (ms), 0 when none runs. */
  oldestRunningMs: number;
  /** Due jobs no runner claimed within the bound. */
  unclaimed: number;
  /** Jobs still holding a lease expired for longer than lease + reaper interval (must stay 0). */
  invariantViolations: number;
}

/** Counts jobs by state and checks the lease invariant, from one read of the job table. */
export async function census(
  log: ChangeLog,
  realmId: number,
  opts: Pick<RunnerOptions, 'clock' | 'leaseMs' | 'reaperMs' | 'unclaimedAfterMs'>,
): Promise<JobCensus> {
  const now = opts.clock();
  const db = log.store.db;
  const states = await db
    .selectFrom('jobs')
    .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
    .where('realm_id', '=', realmId)
    .groupBy('state')
    .execute();
  const byState: Record<string, number> = {};
  for (const s of states) byState[s.state] = Number(s.n);
  const agg = await db
    .selectFrom('jobs')
    .select((eb) => [
      eb.fn.min('claimed_at').filterWhere('state', '=', 'running').as('oldest'),
      eb.fn
        .countAll<number>()
        .filterWhere((w) =>
          w.and([w('state', 'in', ['queued', 'retrying']), w('run_after', '<', now - opts.unclaimedAfterMs)]),
        )
        .as('unclaimed'),
      eb.fn
        .countAll<number>()
        .filterWhere((w) =>
          w.and([w('state', '=', 'running'), w('lease_expires_at', '<', now - opts.leaseMs - opts.reaperMs)]),
        )
        .as('violations'),
    ])
    .where('realm_id', '=', realmId)
    .executeTakeFirst();
  return {
    byState,
    oldestRunningMs: agg?.oldest == null ? 0 : now - Number(agg.oldest),
    unclaimed: Number(agg?.unclaimed ?? 0),
    invariantViolations: Number(agg?.violations ?? 0),
  };
}
