import type { Kysely } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * Event queues. A queue's events are not stored: they are derived from the change log, from a
 * checkpoint (log position, next event id, the user's view) that only moves past events the
 * client has acknowledged. Any node can rebuild a queue from its row, so a queue survives the
 * restart of the node that created it and may be polled through any node.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('event_queues')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('realm_id', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('options', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_access_at', 'bigint', (c) => c.notNull())
    .addColumn('checkpoint_seq', 'bigint', (c) => c.notNull())
    .addColumn('checkpoint_event_id', 'bigint', (c) => c.notNull())
    .addColumn('checkpoint_view', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('event_queues_user').on('event_queues').column('user_id').execute();
  await db.schema.createIndex('event_queues_access').on('event_queues').column('last_access_at').execute();
}
