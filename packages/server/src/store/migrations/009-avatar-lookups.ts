import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * Avatar lookups that read no image bytes but the one asked for.
 *
 * Every transform request asks whether its source is still stored (`sha256 = ?`), and a cold one
 * reads it by the same key. There was no index on `sha256`, so each of those read every row of the
 * table; on SQLite, where `sha256` was stored after `content`, reaching it meant walking the blob's
 * chain of overflow pages, so every request read every uploaded avatar: with 55 avatars of 0.5 MB,
 * 13 ms of the event loop per request (27 MB of preads), with 18 about 3 ms, which was most of
 * Concord's overhead over a bare 20 ms transform in the benchmark.
 *
 * - `avatars_sha256`: those two queries become one index lookup (the existence check reads only the
 *   index).
 * - SQLite: the table is rebuilt with `content` last, so that reading the other columns of a row
 *   (the avatar route reads a user's `sha256`) stops at the row's first page. PostgreSQL stores a
 *   large value out of line (TOAST) whatever its position, so only the index is added there.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  if (dialect === 'sqlite') {
    await db.schema
      .createTable('avatars_by_lookup')
      .addColumn('user_id', 'integer', (c) => c.primaryKey())
      .addColumn('format', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('uploaded_at', 'bigint', (c) => c.notNull())
      .addColumn('content', 'blob', (c) => c.notNull())
      .execute();
    await sql`INSERT INTO avatars_by_lookup (user_id, format, sha256, uploaded_at, content)
      SELECT user_id, format, sha256, uploaded_at, content FROM avatars`.execute(db);
    await sql`DROP TABLE avatars`.execute(db);
    await sql`ALTER TABLE avatars_by_lookup RENAME TO avatars`.execute(db);
  }
  await sql`CREATE INDEX avatars_sha256 ON avatars (sha256)`.execute(db);
}
