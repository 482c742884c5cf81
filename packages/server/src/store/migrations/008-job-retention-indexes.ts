import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * Indexes for the retention sweep (jobs/runner/retention.ts) and for reading a key's history.
 *
 * The sweep deletes the oldest finished jobs first: `jobs_finished` holds only finished rows, in
 * the order it takes them, so a sweep reads the batch it deletes and stops, however many jobs
 * wait, run or are still young. `jobs_by_key` answers "is there a newer finished job with this
 * key?" (the sweep keeps the newest of each key) and a directory source's history (newest first),
 * which read every job before; jobs without a key (no-op jobs, most of a benchmark) add no entry.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await sql`CREATE INDEX jobs_finished ON jobs (realm_id, finished_at)
    WHERE state IN ('succeeded', 'failed', 'canceled')`.execute(db);
  await sql`CREATE INDEX jobs_by_key ON jobs (realm_id, singleton_key, id)
    WHERE singleton_key IS NOT NULL`.execute(db);
}
