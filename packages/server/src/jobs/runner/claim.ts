import type { ChangeLog } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { SettleDialect, SettleOptions } from './settle.js';
import { settle, waiting } from './settle.js';

/** When the next job of these kinds is due (null: none waits); a cheap read that spares idle runners the write lock. */
export async function nextDue(
  log: ChangeLog,
  realmId: number,
  kinds: readonly string[],
): Promise<number | null> {
  if (kinds.length === 0) return null;
  // In index order (`jobs_claimable`), so it stops at the first waiting job of these kinds.
  const row = await log.store.db
    .selectFrom('jobs')
    .select('run_after')
    .where('realm_id', '=', realmId)
    .where(waiting)
    .where('kind', 'in', [...kinds])
    .orderBy('run_after')
    .limit(1)
    .executeTakeFirst();
  return row ? Number(row.run_after) : null;
}

/**
 * Claims up to `limit` due jobs of these kinds in a command of its own. Each claim increments the
 * job's attempt and issues a fresh lease token with an expiry (the fence every later write checks)
 * and the attempt's hard deadline (data writes stop at it; heartbeats stop renewing one lease past
 * it), opens its `job_runs` row, and records the transition in the log.
 *
 * Claims run as commands: the transition must be in the log, and taking the write lock is what
 * orders a claim after every fenced write of the attempt before it. On PostgreSQL the rows are
 * also taken `FOR UPDATE SKIP LOCKED`, so runners never wait on each other's candidate rows; the
 * batch amortises the lock over several jobs. (The runner claims as it records finished attempts,
 * in the same command: see {@link settle}.)
 */
export async function claimJobs(
  log: ChangeLog,
  realmId: number,
  kinds: readonly string[],
  limit: number,
  opts: SettleOptions,
): Promise<JobRow[]> {
  if (kinds.length === 0 || limit <= 0) return [];
  const { value } = await log.run(realmId, (ctx) =>
    settle(ctx, settleDialect(log.store), [], { kinds, limit }, opts),
  );
  return value.claimed;
}

/** The SQL {@link settle} can use on `store`. */
export function settleDialect(store: Pick<Store, 'caps'>): SettleDialect {
  // The one-statement settle is a chain of data-modifying CTEs over unnest()ed arrays.
  return { skipLocked: store.caps.skipLocked, oneStatement: store.caps.writeCtes };
}
