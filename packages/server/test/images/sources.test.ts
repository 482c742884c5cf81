import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { CompiledQuery } from 'kysely';
import { Sources, sourceContentQuery, sourceExistsQuery } from '../../src/images/sources.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/store.js';
import { backends, freshDatabase } from '../support/backends.js';

/** Stored sources of transforms, the recently read ones in memory (images/sources.ts). */
describe.each(backends())('sources (%s)', (backend) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  const bytes = (n: number, fill: number) => Buffer.alloc(n, fill);
  const sha = (i: number) => String(i).repeat(64).slice(0, 64);
  const insert = (i: number, content: Buffer) =>
    store.db
      .insertInto('avatars')
      .values({ user_id: i, content, format: 'png', sha256: sha(i), uploaded_at: 0 })
      .execute();
  const remove = (i: number) => store.db.deleteFrom('avatars').where('sha256', '=', sha(i)).execute();

  beforeAll(async () => {
    const db = await freshDatabase(backend);
    cleanup = db.cleanup;
    store = db.databaseUrl
      ? await openPostgresStore(db.databaseUrl)
      : await openSqliteStore(`${db.dataDir}/concord.db`);
  });
  afterAll(async () => {
    await store?.close();
    await cleanup?.();
  });

  it('keeps what it read in memory, but asks the database whether a source is still stored', async () => {
    const sources = new Sources(() => store.db, 1000);
    await insert(1, bytes(400, 1));
    expect(sources.recent(sha(1))).toBeUndefined();
    expect((await sources.read(sha(1)))?.equals(bytes(400, 1))).toBe(true);
    await remove(1);
    expect(sources.recent(sha(1))?.equals(bytes(400, 1))).toBe(true); // from memory
    expect(await sources.exists(sha(1))).toBe(false);
    expect(await sources.read(sha(9))).toBeUndefined(); // never stored
  });

  it('holds at most its byte budget, least recently used out first', async () => {
    const sources = new Sources(() => store.db, 1000);
    for (const i of [2, 3, 4]) await insert(i, bytes(400, i));
    await sources.read(sha(2));
    await sources.read(sha(3));
    sources.recent(sha(2)); // 3 is now the least recently used
    await sources.read(sha(4)); // 1200 bytes > 1000: 3 goes
    expect(sources.recent(sha(3))).toBeUndefined();
    expect(sources.recent(sha(2))?.equals(bytes(400, 2))).toBe(true);
    expect(sources.recent(sha(4))?.equals(bytes(400, 4))).toBe(true);
    // A source larger than the whole budget is read but not kept.
    await insert(5, bytes(1001, 5));
    expect((await sources.read(sha(5)))?.length).toBe(1001);
    expect(sources.recent(sha(5))).toBeUndefined();
  });

  it('keeps nothing with a budget of 0 (CONCORD_IMAGE_SOURCE_MEMORY_BYTES=0)', async () => {
    const sources = new Sources(() => store.db, 0);
    await insert(6, bytes(10, 6));
    expect((await sources.read(sha(6)))?.equals(bytes(10, 6))).toBe(true);
    expect(sources.recent(sha(6))).toBeUndefined();
  });

  /** The plan of `query` as text; on PostgreSQL with sequential scans off, so that any usable index shows. */
  const plan = async (query: CompiledQuery): Promise<string> => {
    if (backend === 'sqlite') {
      const { rows } = await store.db.executeQuery<{ detail: string }>({
        ...query,
        sql: `EXPLAIN QUERY PLAN ${query.sql}`,
      });
      return rows.map((r) => r.detail).join('\n');
    }
    return store.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL enable_seqscan = off`.execute(trx);
      const { rows } = await trx.executeQuery<{ 'QUERY PLAN': string }>({
        ...query,
        sql: `EXPLAIN ${query.sql}`,
      });
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
  };

  it('finds a source by one index lookup, not by reading every stored avatar', async () => {
    const exists = await plan(sourceExistsQuery(store.db, sha(1)));
    const content = await plan(sourceContentQuery(store.db, sha(1)));
    if (backend === 'sqlite') {
      expect(exists).toMatch(/SEARCH avatars USING COVERING INDEX avatars_sha256/);
      expect(content).toMatch(/SEARCH avatars USING INDEX avatars_sha256/);
    } else {
      // An index scan or a bitmap scan of the index, as the planner likes; never the table alone.
      expect(exists).toMatch(/Scan (using|on) avatars_sha256/);
      expect(content).toMatch(/Scan (using|on) avatars_sha256/);
    }
    expect(`${exists}\n${content}`).not.toMatch(/SCAN avatars|Seq Scan/);
  });

  it('stores the bytes last on SQLite, so reading the other columns of a row skips them', async () => {
    if (backend !== 'sqlite') return; // PostgreSQL keeps large values out of line (TOAST)
    const { rows } = await sql<{
      name: string;
    }>`SELECT name FROM pragma_table_info('avatars') ORDER BY cid`.execute(store.db);
    expect(rows.map((r) => r.name)).toEqual(['user_id', 'format', 'sha256', 'uploaded_at', 'content']);
  });
});
