import type { ChangeLog } from '../../changelog/log.js';
import type { RunnerOptions } from './options.js';
import { recordJob } from './record.js';

/** What a cancel did: a waiting job ends at once; a running one is asked to stop. */
export type CancelResult = 'canceled' | 'requested' | 'finished' | 'not_found';

/**
 * Cancels a job. A queued or retrying job is canceled at once. A running job is marked; its
 * runner aborts the attempt's signal (at once in this process, at its next heartbeat elsewhere)
 * and ends it canceled — or the reaper does, if its worker is gone.
 */
export async function cancelJob(
  log: ChangeLog,
  realmId: number,
  jobId: number,
  opts: Pick<RunnerOptions, 'clock' | 'reaperMs' | 'unclaimedAfterMs'>,
): Promise<CancelResult> {
  const { value } = await log.run(realmId, async (ctx) => {
    const now = opts.clock();
    const row = await ctx.trx
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', jobId)
      .where('realm_id', '=', realmId)
      .executeTakeFirst();
    if (!row) return 'not_found' as const;
    if (row.state === 'queued' || row.state === 'retrying') {
      const updated = await ctx.trx
        .updateTable('jobs')
        .set({ state: 'canceled', finished_at: now, updated_at: now })
        .where('id', '=', jobId)
        .returningAll()
        .executeTakeFirstOrThrow();
      recordJob(ctx, updated, opts, now);
      return 'canceled' as const;
    }
    if (row.state !== 'running') return 'finished' as const;
    if (row.cancel_requested === 1) return 'requested' as const;
    const updated = await ctx.trx
      .updateTable('jobs')
      .set({ cancel_requested: 1, updated_at: now })
      .where('id', '=', jobId)
      .returningAll()
      .executeTakeFirstOrThrow();
    recordJob(ctx, updated, opts, now);
    return 'requested' as const;
  });
  return value;
}
