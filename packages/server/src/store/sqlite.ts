import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { migrateToLatest } from './migrate.js';
import type { Database } from './schema.js';
import type { Store } from './store.js';

/**
 * Opens (creating if needed) the embedded SQLite store at `file` and migrates it.
 * WAL with `synchronous=FULL`: an acknowledged commit survives a crash of the process or the
 * machine, at the price of one fsync per commit.
 */
export async function openSqliteStore(file: string): Promise<Store> {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const connection = new SqliteDatabase(file);
  connection.pragma('journal_mode = WAL');
  connection.pragma('synchronous = FULL');
  connection.pragma('foreign_keys = ON');
  // Another process (the CLI) may briefly hold the write lock; wait for it instead of failing.
  connection.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: connection }) });
  await migrateToLatest(db as Kysely<unknown>, 'sqlite');

  return {
    dialect: 'sqlite',
    caps: { notify: false, skipLocked: false, multiNode: false, writeCtes: false },
    db,
    scope: file,
    // Kysely's SQLite driver serialises all statements on its single connection, so holding the
    // connection for the transaction makes it the only writer in this process; BEGIN IMMEDIATE
    // takes SQLite's write lock up front so that another process cannot interleave.
    writeTransaction: (fn) =>
      db.connection().execute(async (conn) => {
        await sql`BEGIN IMMEDIATE`.execute(conn);
        try {
          const result = await fn(conn);
          await sql`COMMIT`.execute(conn);
          return result;
        } catch (err) {
          await sql`ROLLBACK`.execute(conn);
          throw err;
        }
      }),
    // A read transaction in WAL mode sees one snapshot; holding the connection keeps this
    // process's writers out until it ends, which is brief (a register's reads).
    readSnapshot: (fn) =>
      db.connection().execute(async (conn) => {
        await sql`BEGIN`.execute(conn);
        try {
          return await fn(conn);
        } finally {
          await sql`COMMIT`.execute(conn);
        }
      }),
    close: () => db.destroy(),
  };
}
