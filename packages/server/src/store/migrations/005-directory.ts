import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * Directory sources (LDAP, CSV) and what links them to Concord: which user an external id is,
 * and which channel a directory group is. A sync compares a source's snapshot with these links.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const id =
    dialect === 'postgres'
      ? db.schema.createTable('directory_sources').addColumn('id', 'serial', (c) => c.primaryKey())
      : db.schema
          .createTable('directory_sources')
          .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
  await id
    .addColumn('realm_id', 'integer', (c) => c.notNull().references('realms.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('connector', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('schedule', 'integer')
    .addColumn('deactivate_missing', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await sql`CREATE UNIQUE INDEX directory_sources_name ON directory_sources (realm_id, name)`.execute(db);

  await db.schema
    .createTable('directory_links')
    .addColumn('source_id', 'integer', (c) =>
      c.notNull().references('directory_sources.id').onDelete('cascade'),
    )
    .addColumn('external_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addPrimaryKeyConstraint('directory_links_pk', ['source_id', 'external_id'])
    .execute();
  await sql`CREATE UNIQUE INDEX directory_links_user ON directory_links (source_id, user_id)`.execute(db);

  await db.schema
    .createTable('directory_groups')
    .addColumn('source_id', 'integer', (c) =>
      c.notNull().references('directory_sources.id').onDelete('cascade'),
    )
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('stream_id', 'integer', (c) => c.notNull().references('streams.id'))
    .addPrimaryKeyConstraint('directory_groups_pk', ['source_id', 'name'])
    .execute();
}
