import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../store.js';

/** Creates the realm, people, channel and change-log tables. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const idColumn = (name: string) =>
    dialect === 'postgres'
      ? db.schema.createTable(name).addColumn('id', 'serial', (c) => c.primaryKey())
      : db.schema.createTable(name).addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());

  await idColumn('realms')
    .addColumn('string_id', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('date_created', 'bigint', (c) => c.notNull())
    .execute();

  await idColumn('users')
    .addColumn('realm_id', 'integer', (c) => c.notNull().references('realms.id'))
    .addColumn('delivery_email', 'text')
    .addColumn('email_key', 'text')
    .addColumn('full_name', 'text', (c) => c.notNull())
    .addColumn('role', 'integer', (c) => c.notNull())
    .addColumn('is_active', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('is_bot', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('password_hash', 'text')
    .addColumn('api_key', 'text', (c) => c.notNull())
    .addColumn('avatar_version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('timezone', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('date_joined', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('users_realm_email_key', ['realm_id', 'email_key'])
    .execute();

  await db.schema
    .createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('realm_id', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();

  await idColumn('streams')
    .addColumn('realm_id', 'integer', (c) => c.notNull().references('realms.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('name_key', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('invite_only', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('history_public_to_subscribers', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('is_archived', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('creator_id', 'integer')
    .addColumn('date_created', 'bigint', (c) => c.notNull())
    .execute();
  // Names are unique among live channels only: an archived channel frees its name.
  await sql`CREATE UNIQUE INDEX streams_live_name ON streams (realm_id, name_key) WHERE is_archived = 0`.execute(
    db,
  );

  await idColumn('subscriptions')
    .addColumn('realm_id', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('stream_id', 'integer', (c) => c.notNull().references('streams.id'))
    .addColumn('color', 'text', (c) => c.notNull())
    .addColumn('is_muted', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pin_to_top', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('date_created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('subscriptions_user_stream', ['user_id', 'stream_id'])
    .execute();
  await db.schema.createIndex('subscriptions_stream').on('subscriptions').column('stream_id').execute();

  await db.schema
    .createTable('changes')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('realm_id', 'integer', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('cache_keys', 'text', (c) => c.notNull())
    .addColumn('audience', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('changes_created_at').on('changes').column('created_at').execute();

  await db.schema
    .createTable('changelog_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .execute();
  await sql`INSERT INTO changelog_head (id, seq) VALUES (1, 0)`.execute(db);

  await db.schema
    .createTable('consumer_cursors')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
}
