import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from './migrate.js';
import type { Database } from './schema.js';
import type { Store } from './store.js';

const INT8_OID = 20;

/**
 * pg settings shared by every connection Concord opens: bigint columns (times in ms, `seq`) are
 * parsed as numbers; they stay far below 2^53.
 */
export const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Opens the PostgreSQL store at `url` (a `search_path` may be set through its `options`) and migrates it. */
export async function openPostgresStore(url: string, poolSize = 10): Promise<Store> {
  // A bounded wait for a connection: with the server away, requests fail (503) instead of queueing.
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    types: pgTypes,
    connectionTimeoutMillis: 5000,
  });
  // An idle client that loses its server must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  // Nor may a checked-out one: pg-pool removes its own error listener while a client is lent out,
  // and a connection that ends then emits an 'error' nobody handles. The query in flight is
  // rejected anyway (and answered 503); the client is discarded when released with that error.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db as Kysely<unknown>, 'postgres');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const { rows } = await sql<{
    db: string;
    schema: string;
  }>`SELECT current_database() AS db, current_schema() AS schema`.execute(db);
  const scope = `${rows[0]!.db}.${rows[0]!.schema}`;

  return {
    dialect: 'postgres',
    caps: { notify: true, skipLocked: true, multiNode: true, writeCtes: true },
    db,
    scope,
    writeTransaction: (fn) =>
      db.connection().execute(async (conn) => {
        // The write lock: a row lock on the change-log head, held to commit. A transaction that
        // takes the next seq therefore cannot commit before one that took an earlier seq, so a
        // reader tailing `seq > cursor` never sees a later entry before an earlier one. BEGIN and
        // the lock go in one round trip (a query without parameters may hold several statements),
        // which is why this manages the transaction itself rather than through db.transaction().
        let result;
        try {
          await sql.raw('BEGIN; SELECT seq FROM changelog_head WHERE id = 1 FOR UPDATE').execute(conn);
          result = await fn(conn);
        } catch (err) {
          // Also when the lock failed after BEGIN: the connection must not go back to the pool
          // inside an aborted transaction. A broken connection cannot roll back; the server
          // discards its transaction anyway.
          await sql
            .raw('ROLLBACK')
            .execute(conn)
            .catch(() => {});
          throw err;
        }
        await sql.raw('COMMIT').execute(conn);
        return result;
      }),
    readSnapshot: (fn) =>
      db
        .transaction()
        .setIsolationLevel('repeatable read')
        .setAccessMode('read only')
        .execute((trx) => fn(trx)),
    close: () => db.destroy(),
  };
}
