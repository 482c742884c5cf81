import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Database } from '../store/schema.js';
import type { Store } from '../store/store.js';
import type { Change, ChangeInput, ChangeKind } from './change.js';
import type { Doorbell } from './doorbell.js';

/** What a command sees: its transaction, its realm, one clock reading, and the log to append to. */
export interface CommandContext {
  readonly trx: Kysely<Database>;
  readonly realmId: number;
  /** The command's time; every row and change it writes carries the same value. */
  readonly now: number;
  /** Records a change; it is appended to the log in the same transaction, at commit. */
  record<K extends ChangeKind>(change: ChangeInput<K>): void;
}

/** A change this process just committed: its position and the cache keys it invalidates. */
export interface CommittedChange {
  seq: number;
  cacheKeys: readonly string[];
}

/** The result of a command and the log position it produced (null when it changed nothing). */
export interface Committed<T> {
  value: T;
  seq: number | null;
}

/** The change log: append inside a write transaction, read since a cursor, ring after commit. */
export class ChangeLog {
  private readonly commitListeners = new Set<(changes: readonly CommittedChange[]) => void>();
  private lastCommittedSeq = 0;

  constructor(
    readonly store: Store,
    readonly doorbell: Doorbell,
  ) {}

  /**
   * Runs `fn` as one command: one write transaction in which its rows change and its changes are
   * appended, then the doorbell rings with the new head. Either all of it commits or none does.
   */
  async run<T>(realmId: number, fn: (ctx: CommandContext) => Promise<T>): Promise<Committed<T>> {
    let seq: number | null = null;
    let pending: ChangeInput[] = [];
    const value = await this.store.writeTransaction(async (trx) => {
      pending = [];
      const now = Date.now();
      const ctx: CommandContext = { trx, realmId, now, record: (c) => void pending.push(c as ChangeInput) };
      const result = await fn(ctx);
      seq = await this.append(trx, realmId, now, pending);
      return result;
    });
    if (seq !== null) {
      const last: number = seq;
      if (last > this.lastCommittedSeq) this.lastCommittedSeq = last;
      const first = last - pending.length + 1;
      const committed = pending.map((c, i) => ({ seq: first + i, cacheKeys: c.cacheKeys }));
      for (const listener of this.commitListeners) listener(committed);
      this.doorbell.ring(last);
    }
    return { value, seq };
  }

  /**
   * The newest seq a command in this process has committed: every response to a write sent after
   * its commit can name a position at or after its own change (read-your-writes).
   */
  get lastCommitted(): number {
    return this.lastCommittedSeq;
  }

  /**
   * Calls `listener` in this process right after each commit, before the command returns, with the
   * changes it appended. The cache uses it so that the node that made a change never serves the old
   * value once the change is acknowledged; every other consumer reads the log.
   */
  onCommit(listener: (changes: readonly CommittedChange[]) => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  private async append(
    trx: Kysely<Database>,
    realmId: number,
    now: number,
    pending: ChangeInput[],
  ): Promise<number | null> {
    if (pending.length === 0) return null;
    const rows = pending.map((c) => ({
      kind: c.kind,
      payload: JSON.stringify(c.payload),
      cache_keys: JSON.stringify(c.cacheKeys),
      audience: JSON.stringify(c.audience),
    }));
    if (this.store.caps.writeCtes) return this.appendInOneStatement(trx, realmId, now, rows);
    const { last } = await trx
      .updateTable('changelog_head')
      .set({ seq: sql`seq + ${pending.length}` })
      .where('id', '=', 1)
      .returning('seq as last')
      .executeTakeFirstOrThrow();
    const first = last - pending.length + 1;
    await trx
      .insertInto('changes')
      .values(rows.map((r, i) => ({ ...r, seq: first + i, realm_id: realmId, created_at: now })))
      .execute();
    await this.doorbell.announce(trx as Kysely<unknown>, last);
    return last;
  }

  /**
   * The head's move, the entries and the doorbell's NOTIFY as one statement: one round trip where
   * the three statements took three, on every command (it is most of a small command's cost).
   */
  private async appendInOneStatement(
    trx: Kysely<Database>,
    realmId: number,
    now: number,
    rows: { kind: string; payload: string; cache_keys: string; audience: string }[],
  ): Promise<number> {
    const n = rows.length;
    const channel = this.doorbell.notifyChannel;
    const notify = channel === undefined ? sql`` : sql`, pg_notify(${channel}, head.seq::text)`;
    const result = await sql<{ last: number }>`
      WITH head AS (
        UPDATE changelog_head SET seq = seq + ${n}::bigint WHERE id = 1 RETURNING seq
      ), appended AS (
        INSERT INTO changes (seq, realm_id, kind, payload, cache_keys, audience, created_at)
        SELECT head.seq - ${n}::bigint + e.ord, ${realmId}::integer, e.kind, e.payload, e.cache_keys, e.audience, ${now}::bigint
        FROM head, unnest(
          ${rows.map((r) => r.kind)}::text[], ${rows.map((r) => r.payload)}::text[],
          ${rows.map((r) => r.cache_keys)}::text[], ${rows.map((r) => r.audience)}::text[]
        ) WITH ORDINALITY AS e(kind, payload, cache_keys, audience, ord)
      )
      SELECT head.seq AS last${notify} FROM head`.execute(trx);
    if (channel === undefined) await this.doorbell.announce(trx as Kysely<unknown>, result.rows[0]!.last);
    return Number(result.rows[0]!.last);
  }

  /** The seq of the newest committed change (0 for an empty log). */
  async head(): Promise<number> {
    const row = await this.store.db
      .selectFrom('changelog_head')
      .select('seq')
      .where('id', '=', 1)
      .executeTakeFirst();
    return row?.seq ?? 0;
  }

  /** The seq of the oldest retained change, or null when none is retained. */
  async oldest(): Promise<number | null> {
    const row = await this.store.db
      .selectFrom('changes')
      .select((eb) => eb.fn.min('seq').as('min'))
      .executeTakeFirst();
    return row?.min == null ? null : Number(row.min);
  }

  /** Up to `limit` committed changes with `seq > cursor`, in seq order. */
  async readSince(cursor: number, limit = 1000): Promise<Change[]> {
    const rows = await this.store.db
      .selectFrom('changes')
      .selectAll()
      .where('seq', '>', cursor)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map(
      (r) =>
        ({
          seq: Number(r.seq),
          realmId: r.realm_id,
          kind: r.kind,
          payload: JSON.parse(r.payload),
          cacheKeys: JSON.parse(r.cache_keys),
          audience: JSON.parse(r.audience),
          createdAt: Number(r.created_at),
        }) as Change,
    );
  }

  /**
   * Deletes changes older than `maxAgeMs` and all but the newest `maxCount`. Consumers whose
   * cursor falls behind what remains are told to reset by {@link LogTail}.
   */
  async prune(opts: { maxAgeMs: number; maxCount: number; now?: number }): Promise<number> {
    const head = await this.head();
    const cutoff = (opts.now ?? Date.now()) - opts.maxAgeMs;
    // Always a prefix of the log: entries carry their writer's clock, and with skewed clocks
    // between nodes a plain `created_at < cutoff` could punch a hole in the middle of the log.
    const aged = await this.store.db
      .selectFrom('changes')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .where('created_at', '<', cutoff)
      .executeTakeFirst();
    const bound = Math.max(head - opts.maxCount, Number(aged?.seq ?? 0));
    if (bound <= 0) return 0;
    const result = await this.store.db.deleteFrom('changes').where('seq', '<=', bound).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Saves a durable consumer's cursor. */
  async saveCursor(name: string, seq: number): Promise<void> {
    await this.store.db
      .insertInto('consumer_cursors')
      .values({ name, seq, updated_at: Date.now() })
      .onConflict((oc) => oc.column('name').doUpdateSet({ seq, updated_at: Date.now() }))
      .execute();
  }

  /** A durable consumer's saved cursor, if any. */
  async loadCursor(name: string): Promise<number | null> {
    const row = await this.store.db
      .selectFrom('consumer_cursors')
      .select('seq')
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? Number(row.seq) : null;
  }
}
