import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from './store.js';
import * as initial from './migrations/001-initial.js';
import * as eventQueues from './migrations/002-event-queues.js';
import * as avatars from './migrations/003-avatars.js';
import * as jobs from './migrations/004-jobs.js';
import * as directory from './migrations/005-directory.js';
import * as nodes from './migrations/006-nodes.js';
import * as jobClaimIndexes from './migrations/007-job-claim-indexes.js';
import * as jobRetentionIndexes from './migrations/008-job-retention-indexes.js';
import * as avatarLookups from './migrations/009-avatar-lookups.js';

type DialectMigration = { up(db: Kysely<unknown>, dialect: Dialect): Promise<void> };

const migrations: Record<string, DialectMigration> = {
  '001-initial': initial,
  '002-event-queues': eventQueues,
  '003-avatars': avatars,
  '004-jobs': jobs,
  '005-directory': directory,
  '006-nodes': nodes,
  '007-job-claim-indexes': jobClaimIndexes,
  '008-job-retention-indexes': jobRetentionIndexes,
  '009-avatar-lookups': avatarLookups,
};

/** The names of every migration, in the order they run. */
export const migrationNames: readonly string[] = Object.keys(migrations).sort();

/**
 * Brings the schema up to date, applying the migrations not yet recorded in `concord_migrations`,
 * in name order, each in its own transaction with its record. Safe to call from several nodes at
 * once: on PostgreSQL a transaction-scoped advisory lock keyed by the schema serialises them (a
 * node that waited finds the work done); SQLite has one writer. It looks only at its own schema —
 * Kysely's migrator introspects every schema in the database, which fails when another schema is
 * dropped meanwhile (several workspaces or test schemas in one database). `through`, the name of
 * the last migration to apply, leaves a database as an older Concord left it (tests of a migration
 * over existing data).
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  dialect: Dialect,
  through?: string,
): Promise<void> {
  if (through !== undefined && !migrationNames.includes(through)) throw new Error(`no migration ${through}`);
  for (const name of migrationNames) {
    if (through !== undefined && name > through) break;
    await db.transaction().execute(async (trx) => {
      if (dialect === 'postgres')
        await sql`SELECT pg_advisory_xact_lock(hashtext('concord-migrate:' || current_schema()))`.execute(
          trx,
        );
      // Under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide on PostgreSQL.
      await sql`CREATE TABLE IF NOT EXISTS concord_migrations (name text PRIMARY KEY, applied_at bigint NOT NULL)`.execute(
        trx,
      );
      const done = await sql<{
        name: string;
      }>`SELECT name FROM concord_migrations WHERE name = ${name}`.execute(trx);
      if (done.rows.length > 0) return;
      try {
        await migrations[name]!.up(trx, dialect);
      } catch (err) {
        throw new Error(`migration ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      await sql`INSERT INTO concord_migrations (name, applied_at) VALUES (${name}, ${Date.now()})`.execute(
        trx,
      );
    });
  }
}
