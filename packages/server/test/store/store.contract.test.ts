import { migrationNames } from '../../src/store/migrate.js';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDoorbell } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { openStore } from '../../src/store/open.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { Database } from '../../src/store/schema.js';
import type { Store } from '../../src/store/store.js';
import { backends, freshPgSchema } from '../support/backends.js';
import type { TestStore } from './fixture.js';
import { appendCommand, openTestStore, range, recordTagged, sleep, until } from './fixture.js';

/** What a store looks like after migrating: one migration recorded, one head row. */
async function schemaState(store: Store) {
  const migrations = await sql<{ name: string }>`SELECT name FROM concord_migrations ORDER BY name`.execute(
    store.db,
  );
  const heads = await store.db.selectFrom('changelog_head').selectAll().execute();
  return { migrations: migrations.rows.map((r) => r.name), heads };
}

/** A doorbell whose announcement (made inside the transaction, after the append) fails. */
class FailingAnnounce extends LocalDoorbell {
  rings: (number | null)[] = [];
  override async announce(): Promise<void> {
    throw new Error('announce failed');
  }
  override ring(seq: number | null): void {
    this.rings.push(seq);
    super.ring(seq);
  }
}

/**
 * Checks that transaction bodies never overlapped: `spans` must read start i, end i, start j,
 * end j, … Returns the first violation, or null.
 */
function firstOverlap(spans: string[]): string | null {
  for (let k = 0; k < spans.length; k += 2) {
    const start = spans[k];
    const end = spans[k + 1];
    const id = start?.split(' ')[1];
    if (!start?.startsWith('start ') || end !== `end ${id}`) {
      return `at ${k}: ${start} was followed by ${end} (${spans.slice(Math.max(0, k - 2), k + 4).join(', ')})`;
    }
  }
  return null;
}

/**
 * `n` concurrent read-check-write increments of one counter through `transaction`, each pausing
 * between its read and its write. Returns the values each read, the final counter and the spans.
 */
async function concurrentIncrements(
  store: Store,
  transaction: <T>(fn: (trx: Kysely<Database>) => Promise<T>) => Promise<T>,
  n: number,
) {
  await sql`CREATE TABLE IF NOT EXISTS contract_counter (id integer PRIMARY KEY, n integer NOT NULL)`.execute(
    store.db,
  );
  await sql`DELETE FROM contract_counter`.execute(store.db);
  await sql`INSERT INTO contract_counter (id, n) VALUES (1, 0)`.execute(store.db);
  const spans: string[] = [];
  const read = await Promise.all(
    range(1, n).map((i) =>
      transaction(async (trx) => {
        spans.push(`start ${i}`);
        const { rows } = await sql<{ n: number }>`SELECT n FROM contract_counter WHERE id = 1`.execute(trx);
        const value = Number(rows[0]!.n);
        await sleep(1 + (i % 3));
        await sql`UPDATE contract_counter SET n = ${value + 1} WHERE id = 1`.execute(trx);
        spans.push(`end ${i}`);
        return value;
      }),
    ),
  );
  const { rows } = await sql<{ n: number }>`SELECT n FROM contract_counter WHERE id = 1`.execute(store.db);
  return { read, final: Number(rows[0]!.n), spans };
}

describe.each(backends())('store contract on %s', (backend) => {
  let t: TestStore;
  const extra: Store[] = [];

  beforeEach(async () => {
    t = await openTestStore(backend);
  });
  afterEach(async () => {
    await Promise.all(extra.splice(0).map((s) => s.close()));
    await t?.cleanup();
  });

  it('migrates a fresh database: every table, one recorded migration, the head row at 0', async () => {
    expect(await schemaState(t.store)).toEqual({
      migrations: [...migrationNames],
      heads: [{ id: 1, seq: 0 }],
    });
    for (const table of [
      'realms',
      'users',
      'sessions',
      'streams',
      'subscriptions',
      'changes',
      'consumer_cursors',
      'event_queues',
    ] as const) {
      const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(
        t.store.db,
      );
      expect(Number(rows[0]!.n), table).toBe(0);
    }
  });

  it('opens again over a migrated database without migrating twice or touching data', async () => {
    const log = new ChangeLog(t.store, new LocalDoorbell());
    await appendCommand(log, 'before', 3);

    // A second store while the first is open (a CLI beside the server), then a third after both close.
    const second = await openStore(t.location);
    extra.push(second);
    expect(await schemaState(second)).toEqual({
      migrations: [...migrationNames],
      heads: [{ id: 1, seq: 3 }],
    });
    await second.close();
    extra.splice(0);
    await t.store.close();

    const third = await openStore(t.location);
    extra.push(third);
    expect(await schemaState(third)).toEqual({ migrations: [...migrationNames], heads: [{ id: 1, seq: 3 }] });
    const again = new ChangeLog(third, new LocalDoorbell());
    expect((await again.readSince(0)).map((c) => c.seq)).toEqual([1, 2, 3]);
    expect(await appendCommand(again, 'after')).toBe(4);
  });

  it.runIf(backend === 'postgres')(
    'migrates exactly once when several nodes open a fresh schema at the same moment',
    async () => {
      // Three fresh schemas, four nodes racing on each: the race is on table creation and on
      // the migration itself, which Kysely guards with an advisory lock.
      for (let round = 0; round < 3; round++) {
        const schema = await freshPgSchema();
        const opened = await Promise.allSettled(range(1, 4).map(() => openPostgresStore(schema.url, 2)));
        const stores = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        try {
          const failures = opened.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
          expect(failures).toEqual([]);
          for (const store of stores) {
            expect(await schemaState(store)).toEqual({
              migrations: [...migrationNames],
              heads: [{ id: 1, seq: 0 }],
            });
          }
        } finally {
          await Promise.all(stores.map((s) => s.close()));
          await schema.drop();
        }
      }
    },
  );

  it('starts the change log at head 0 with nothing retained', async () => {
    const log = new ChangeLog(t.store, new LocalDoorbell());
    expect(await log.head()).toBe(0);
    expect(await log.oldest()).toBeNull();
    expect(await log.readSince(0)).toEqual([]);
    expect(await appendCommand(log, 'first')).toBe(1);
  });

  it('rolls back every row it wrote, the head and the changes included, when the function throws', async () => {
    const boom = new Error('boom');
    await expect(
      t.store.writeTransaction(async (trx) => {
        await trx.insertInto('realms').values({ string_id: 'r', name: 'R', date_created: 1 }).execute();
        await trx.updateTable('changelog_head').set({ seq: 1 }).where('id', '=', 1).execute();
        await trx
          .insertInto('changes')
          .values({
            seq: 1,
            realm_id: 1,
            kind: 'realm.created',
            payload: '{}',
            cache_keys: '[]',
            audience: '{"scope":"realm"}',
            created_at: 1,
          })
          .execute();
        expect(await trx.selectFrom('realms').select('name').execute()).toEqual([{ name: 'R' }]);
        throw boom;
      }),
    ).rejects.toBe(boom);

    // A statement that fails in the database rolls back what came before it, too.
    await expect(
      t.store.writeTransaction(async (trx) => {
        await trx.insertInto('realms').values({ string_id: 'dup', name: 'A', date_created: 1 }).execute();
        await trx.insertInto('realms').values({ string_id: 'dup', name: 'B', date_created: 1 }).execute();
      }),
    ).rejects.toThrow(/unique/i);

    expect(await t.store.db.selectFrom('realms').selectAll().execute()).toEqual([]);
    expect(await t.store.db.selectFrom('changes').selectAll().execute()).toEqual([]);
    expect(await schemaState(t.store)).toEqual({
      migrations: [...migrationNames],
      heads: [{ id: 1, seq: 0 }],
    });

    // The lock and the connection were released: the next write goes through.
    const log = new ChangeLog(t.store, new LocalDoorbell());
    expect(await appendCommand(log, 'after')).toBe(1);
  });

  it("rolls back a command's rows and its appended changes when it fails after appending", async () => {
    const bell = new FailingAnnounce();
    const failing = new ChangeLog(t.store, bell);
    await expect(
      failing.run(1, async (ctx) => {
        await ctx.trx
          .insertInto('realms')
          .values({ string_id: 'r', name: 'R', date_created: ctx.now })
          .execute();
        recordTagged(ctx, 'doomed/0');
        recordTagged(ctx, 'doomed/1');
      }),
    ).rejects.toThrow('announce failed');

    expect(bell.rings).toEqual([]);
    expect(await t.store.db.selectFrom('realms').selectAll().execute()).toEqual([]);
    const log = new ChangeLog(t.store, new LocalDoorbell());
    expect(await log.head()).toBe(0);
    expect(await log.readSince(0)).toEqual([]);
    // The seqs the failed command took were given back: the next command gets 1, not 3.
    expect(await appendCommand(log, 'after')).toBe(1);
  });

  it('admits the second of two concurrent write transactions only after the first commits', async () => {
    const events: string[] = [];
    let releaseA!: () => void;
    const aMayFinish = new Promise<void>((resolve) => (releaseA = resolve));
    let aStarted!: (pid: number | null) => void;
    const aRunning = new Promise<number | null>((resolve) => (aStarted = resolve));

    const a = t.store.writeTransaction(async (trx) => {
      events.push('A:start');
      const pid =
        t.store.dialect === 'postgres'
          ? (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx)).rows[0]!.pid
          : null;
      aStarted(pid);
      await aMayFinish;
      await trx
        .insertInto('realms')
        .values({ string_id: 'a', name: 'written by A', date_created: 1 })
        .execute();
      events.push('A:end');
    });
    const aPid = await aRunning;

    const b = t.store.writeTransaction(async (trx) => {
      events.push('B:start');
      const seen = await trx.selectFrom('realms').select('name').execute();
      events.push(`B:saw ${seen.map((r) => r.name).join(',')}`);
    });

    if (aPid !== null) {
      // PostgreSQL: B has really begun and is blocked behind A's transaction.
      await until(async () => {
        const { rows } = await sql<{ n: number }>`
          SELECT count(*) AS n FROM pg_stat_activity WHERE ${aPid} = ANY(pg_blocking_pids(pid))`.execute(
          t.store.db,
        );
        return Number(rows[0]!.n) > 0;
      }, 'the second transaction to block on the first');
    } else {
      // SQLite: B is queued on the store's one connection; give it every chance to jump the queue.
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
      await sleep(20);
    }
    expect(events).toEqual(['A:start']);
    releaseA();
    await Promise.all([a, b]);
    // B ran after A's commit: it saw A's row, which only a committed A could show it.
    expect(events).toEqual(['A:start', 'A:end', 'B:start', 'B:saw written by A']);
  });

  it('serializes many concurrent read-check-write transactions: no overlap, no lost update', async () => {
    const n = 16;
    const { read, final, spans } = await concurrentIncrements(
      t.store,
      (fn) => t.store.writeTransaction(fn),
      n,
    );
    expect(firstOverlap(spans)).toBeNull();
    expect([...read].sort((x, y) => x - y)).toEqual(range(0, n - 1));
    expect(final).toBe(n);
  });

  it.runIf(backend === 'postgres')(
    'negative control: the same check catches plain transactions that skip the write lock',
    async () => {
      const n = 16;
      const plain = <T>(fn: (trx: Kysely<Database>) => Promise<T>) => t.store.db.transaction().execute(fn);
      const { read, final, spans } = await concurrentIncrements(t.store, plain, n);
      expect(firstOverlap(spans)).not.toBeNull();
      expect(new Set(read).size).toBeLessThan(n);
      expect(final).toBeLessThan(n);
    },
  );
});
