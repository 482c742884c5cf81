import type { ExpressionBuilder, Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Store } from '../../store/store.js';
import type { Database } from '../../store/schema.js';
import type { RunnerOptions } from './options.js';

/**
 * "`table`'s job is finished": the states a job never leaves, written as the `jobs_finished`
 * partial index states them (with bound parameters SQLite would not see that the index applies).
 */
const finished = (table: 'jobs' | 'j' | 'n') =>
  sql.raw<boolean>(`${table}.state IN ('succeeded', 'failed', 'canceled')`);

export type RetentionOptions = Required<Pick<RunnerOptions, 'clock' | 'retentionMs' | 'retentionBatch'>>;

/** What one sweep deleted. */
export interface Sweep {
  jobs: number;
  runs: number;
  batches: number;
  /** Another node held the sweep's lock; this sweep deleted nothing more. */
  yielded: boolean;
}

/**
 * Deletes finished jobs (succeeded, failed, canceled) that finished more than `retentionMs` ago,
 * with their runs, oldest first, at most `retentionBatch` jobs per transaction and `maxBatches`
 * transactions per sweep. The newest finished job of each singleton key (a directory source's last
 * sync, which its status page and its schedule read) is kept however old it is, with its runs.
 * Queued, running and retrying jobs are never touched.
 *
 * Safe to run from several nodes at once: a finished row never changes again, so two sweeps can
 * only try to delete the same rows, and the second deletes nothing. One node at a time does the
 * work: on PostgreSQL each batch takes a transaction-scoped advisory lock and a sweep that finds it
 * taken stops (the holder sweeps this round). The deletes record nothing in the change log (no
 * client state holds finished jobs) and so take no change-log write lock: on PostgreSQL they lock
 * only the rows they delete; on SQLite a batch is one short write transaction.
 */
export async function sweepFinishedJobs(
  store: Pick<Store, 'db' | 'caps'>,
  realmId: number,
  opts: RetentionOptions,
  maxBatches = 20,
): Promise<Sweep> {
  const sweep: Sweep = { jobs: 0, runs: 0, batches: 0, yielded: false };
  while (sweep.batches < maxBatches) {
    const cutoff = opts.clock() - opts.retentionMs;
    // A plain read first: a sweep with nothing to delete takes no write lock at all.
    const ids = (await oldestFinished(store.db, realmId, cutoff, opts.retentionBatch).execute()).map(
      (r) => r.id,
    );
    if (ids.length === 0) break;
    const done = await store.db.transaction().execute(async (trx) => {
      if (store.caps.multiNode) {
        const { rows } = await sql<{
          got: boolean;
        }>`SELECT pg_try_advisory_xact_lock(hashtext('concord-job-retention:' || current_schema())) AS got`.execute(
          trx,
        );
        if (!rows[0]?.got) return null;
      }
      // Runs first (they reference their job). Both deletes re-check that the job is finished,
      // so a row this sweep read can only be deleted whole or not at all.
      const stillFinished = trx
        .selectFrom('jobs')
        .select('id')
        .where('id', 'in', ids)
        .where(finished('jobs'));
      const runs = await trx.deleteFrom('job_runs').where('job_id', 'in', stillFinished).executeTakeFirst();
      const jobs = await trx
        .deleteFrom('jobs')
        .where('id', 'in', ids)
        .where(finished('jobs'))
        .executeTakeFirst();
      return { runs: Number(runs.numDeletedRows), jobs: Number(jobs.numDeletedRows) };
    });
    if (!done) {
      sweep.yielded = true;
      break;
    }
    sweep.batches++;
    sweep.jobs += done.jobs;
    sweep.runs += done.runs;
    if (ids.length < opts.retentionBatch) break;
    // Between batches, the commands that waited for the write lock go first.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return sweep;
}

/**
 * The ids of up to `limit` jobs the sweep may delete, oldest first: finished before `cutoff`, and
 * not the newest finished job of their singleton key.
 */
export function oldestFinished(db: Kysely<Database>, realmId: number, cutoff: number, limit: number) {
  return db
    .selectFrom('jobs as j')
    .select('j.id')
    .where('j.realm_id', '=', realmId)
    .where(finished('j'))
    .where('j.finished_at', '<', cutoff)
    .where((eb) => eb.or([eb('j.singleton_key', 'is', null), eb.exists(newerFinished(eb))]))
    .orderBy('j.finished_at')
    .limit(limit);
}

/** A finished job with the same key as `j`, newer than it (so `j` is not its key's last). */
function newerFinished(eb: ExpressionBuilder<Database & { j: Database['jobs'] }, 'j'>) {
  return eb
    .selectFrom('jobs as n')
    .select('n.id')
    .whereRef('n.realm_id', '=', 'j.realm_id')
    .whereRef('n.singleton_key', '=', 'j.singleton_key')
    .whereRef('n.id', '>', 'j.id')
    .where(finished('n'));
}
