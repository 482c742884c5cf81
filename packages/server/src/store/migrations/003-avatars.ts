import type { Kysely } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * Uploaded avatars: the original bytes as uploaded (every served size is derived from them), one
 * row per user. A user without a row gets the generated default avatar.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('avatars')
    .addColumn('user_id', 'integer', (c) => c.primaryKey())
    .addColumn('content', dialect === 'postgres' ? 'bytea' : 'blob', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('uploaded_at', 'bigint', (c) => c.notNull())
    .execute();
}
