import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * The job runner's tables. `jobs` is the single source of truth for a job's state: the runner's
 * claims, heartbeats, fenced writes and the reaper all check and change this row. `job_runs` keeps
 * one row per attempt (its outcome, error, per-row errors and counts) as the job's history.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const idColumn = (name: string) =>
    dialect === 'postgres'
      ? db.schema.createTable(name).addColumn('id', 'serial', (c) => c.primaryKey())
      : db.schema.createTable(name).addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());

  await idColumn('jobs')
    .addColumn('realm_id', 'integer', (c) => c.notNull().references('realms.id'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('lease_token', 'text')
    .addColumn('lease_expires_at', 'bigint')
    .addColumn('claimed_at', 'bigint')
    .addColumn('run_after', 'bigint', (c) => c.notNull())
    .addColumn('deadline_ms', 'bigint', (c) => c.notNull())
    .addColumn('deadline_at', 'bigint')
    .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('progress_done', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('progress_total', 'integer')
    .addColumn('counts', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('retry_reason', 'text')
    .addColumn('singleton_key', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('started_at', 'bigint')
    .addColumn('finished_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // At most one active job per key (one sync per directory source): the database refuses a second.
  await sql`CREATE UNIQUE INDEX jobs_one_active_per_key ON jobs (realm_id, singleton_key)
    WHERE singleton_key IS NOT NULL AND state IN ('queued', 'running', 'retrying')`.execute(db);
  // What a claim scans (the next due jobs) and what the reaper scans (running rows by expiry).
  await sql`CREATE INDEX jobs_due ON jobs (state, run_after)`.execute(db);
  await sql`CREATE INDEX jobs_lease ON jobs (state, lease_expires_at)`.execute(db);

  await idColumn('job_runs')
    .addColumn('job_id', 'integer', (c) => c.notNull().references('jobs.id'))
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('worker', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('row_errors', 'text', (c) => c.notNull())
    .addColumn('counts', 'text', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .addUniqueConstraint('job_runs_attempt', ['job_id', 'attempt'])
    .execute();
}
