import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Which database a store runs on. Code outside `store/` branches only on {@link StoreCapabilities}. */
export type Dialect = 'sqlite' | 'postgres';

/** Real differences between the backends, as flags. */
export interface StoreCapabilities {
  /** Commits can ring other processes through the database (PostgreSQL LISTEN/NOTIFY). */
  readonly notify: boolean;
  /** `FOR UPDATE SKIP LOCKED` is available for claiming rows. */
  readonly skipLocked: boolean;
  /** Several processes may write concurrently (otherwise one process owns the file). */
  readonly multiNode: boolean;
  /**
   * Data-modifying common table expressions and `unnest` of parallel arrays: several writes (and
   * a NOTIFY) in one statement, one round trip.
   */
  readonly writeCtes: boolean;
}

/**
 * The source of truth. Every write goes through {@link Store.writeTransaction}, which admits one
 * writer at a time per workspace on both backends: that is what makes the change log's `seq`
 * order equal commit order, and it lets commands read-check-write without row locks.
 */
export interface Store {
  readonly dialect: Dialect;
  readonly caps: StoreCapabilities;
  /** For reads. Never write through it: writes outside a write transaction skip the change log. */
  readonly db: Kysely<Database>;
  /** Name that scopes cross-process signals (NOTIFY channel) to this database and schema. */
  readonly scope: string;
  /**
   * Runs `fn` in a transaction that holds the workspace's write lock from its first statement to
   * its commit. Rolls back if `fn` throws.
   */
  writeTransaction<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` on one consistent snapshot of the database: everything it reads reflects exactly
   * the transactions committed before it began, including the change-log head.
   */
  readSnapshot<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T>;
  /** Closes every connection. */
  close(): Promise<void>;
}
