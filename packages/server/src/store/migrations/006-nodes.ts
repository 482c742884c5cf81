import type { Kysely } from 'kysely';
import type { Dialect } from '../store.js';

/**
 * The nodes of a cluster and what each last reported of itself (readiness, cursor, lag, cache
 * statistics), for the cluster status endpoint. Operational state, not workspace data: written
 * outside the change log, overwritten every few seconds.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('concord_nodes')
    .addColumn('node_id', 'text', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('report', 'text', (c) => c.notNull())
    .execute();
}
