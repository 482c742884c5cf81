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

/** How a PostgreSQL store treats its sessions. */
export interface PostgresStoreOptions {
  /**
   * A write transaction whose client sends nothing for this long is ended by the server, and its
   * locks with it (0: never). Default 5 s (config `databaseIdleInTransactionSeconds`).
   */
  idleInTransactionMs?: number;
}

/** Opens the PostgreSQL store at `url` (a `search_path` may be set through its `options`) and migrates it. */
export async function openPostgresStore(
  url: string,
  poolSize = 10,
  options: PostgresStoreOptions = {},
): Promise<Store> {
  // A write transaction holds the change-log head's row lock, which every command of the cluster
  // waits for. A process stopped inside one (SIGSTOP, a debugger, a frozen VM) or hung between its
  // statements would hold it for as long as it stays so (its kernel keeps the connection alive).
  // With this timeout the server ends that session and releases its locks; when the process
  // resumes its command fails (a job's write is then retried, or fenced off once its lease was
  // taken over: test/jobs/paused.test.ts). Set per transaction (SET LOCAL, in BEGIN's round trip:
  // no extra one, and no server CPU measurable over 10,000 transactions), so that read snapshots
  // are not cut short.
  const idleMs = Math.max(0, Math.round(options.idleInTransactionMs ?? 5000));
  const begin =
    idleMs > 0
      ? `BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${idleMs}; SELECT seq FROM changelog_head WHERE id = 1 FOR UPDATE`
      : 'BEGIN; SELECT seq FROM changelog_head WHERE id = 1 FOR UPDATE';
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
          await sql.raw(begin).execute(conn);
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
