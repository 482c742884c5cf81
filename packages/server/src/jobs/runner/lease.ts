import type { Kysely } from 'kysely';
import type { Database, JobRow } from '../../store/schema.js';
import type { Lease } from '../job.js';
import { FencedOffError } from '../job.js';

/**
 * The fence. Inside a write transaction, checks that the job row is still `running` with this
 * attempt and lease token and that the lease has not expired (and, for data writes, that the
 * attempt's hard deadline has not passed); otherwise throws {@link FencedOffError}. Claims, the
 * reaper and every transition take the same write lock, so a row that passes this check stays this
 * attempt's until the transaction commits.
 */
export async function assertHeld(
  trx: Kysely<Database>,
  lease: Lease,
  now: number,
  use: 'write' | 'transition' = 'write',
): Promise<JobRow> {
  const row = await trx.selectFrom('jobs').selectAll().where('id', '=', lease.jobId).executeTakeFirst();
  if (!holds(row, lease, now, use)) throw new FencedOffError(lease.jobId, lease.attempt);
  return row!;
}

/** Whether `row` (read under the write lock) still belongs to `lease` at `now`; see {@link assertHeld}. */
export function holds(
  row: JobRow | undefined,
  lease: Lease,
  now: number,
  use: 'write' | 'transition' = 'write',
): boolean {
  return (
    row !== undefined &&
    row.state === 'running' &&
    row.attempt === lease.attempt &&
    row.lease_token === lease.token &&
    row.lease_expires_at !== null &&
    Number(row.lease_expires_at) > now &&
    !(use === 'write' && row.deadline_at !== null && Number(row.deadline_at) <= now)
  );
}

/** What a heartbeat found. */
export type HeartbeatResult = { held: true; expiresAt: number; cancelRequested: boolean } | { held: false };

/**
 * Renews a lease if (and only if) it is still held and unexpired, up to one lease past the
 * attempt's hard deadline: an attempt aborted at its deadline can still record its failure, and
 * one that ignores the abort loses its lease even if it keeps beating.
 * One conditional UPDATE, outside the command write lock: it changes nothing anyone else may
 * depend on, and the lock's holders re-read the row.
 */
export async function heartbeat(
  db: Kysely<Database>,
  lease: Lease,
  deadlineAt: number,
  leaseMs: number,
  now: number,
): Promise<HeartbeatResult> {
  const expiresAt = Math.min(now + leaseMs, deadlineAt + leaseMs);
  const row = await db
    .updateTable('jobs')
    .set({ lease_expires_at: expiresAt })
    .where('id', '=', lease.jobId)
    .where('state', '=', 'running')
    .where('attempt', '=', lease.attempt)
    .where('lease_token', '=', lease.token)
    .where('lease_expires_at', '>', now)
    .returning('cancel_requested')
    .executeTakeFirst();
  if (!row) return { held: false };
  return { held: true, expiresAt, cancelRequested: row.cancel_requested === 1 };
}
