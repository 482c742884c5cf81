import { createHash, randomBytes } from 'node:crypto';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/store/migrate.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Database } from '../../src/store/schema.js';
import { backends, freshDatabase } from '../support/backends.js';

/**
 * Migration 009 (avatar lookups) over a database an older Concord left with avatars in it: every
 * upload is still there, byte for byte, and is found by its SHA-256.
 */
describe.each(backends())('avatar lookups migration (%s)', (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('keeps every uploaded avatar through the table rebuild and the new index', async () => {
    const db = await freshDatabase(backend);
    cleanups.push(db.cleanup);
    const file = `${db.dataDir}/concord.db`;
    // The database as Concord left it before 009.
    const old = new Kysely<Database>({
      dialect: db.databaseUrl
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: db.databaseUrl, max: 1 }) })
        : new SqliteDialect({ database: new SqliteDatabase(file) }),
    });
    await migrateToLatest(old as Kysely<unknown>, backend, '008-job-retention-indexes');
    // Sizes on both sides of SQLite's page size, so some rows have overflow pages and some not.
    const uploads = [10, 5_000, 300_000].map((n, i) => {
      const content = randomBytes(n);
      return {
        user_id: i + 1,
        content,
        format: 'png',
        sha256: createHash('sha256').update(content).digest('hex'),
        uploaded_at: 1_700_000_000_000 + i,
      };
    });
    await old.insertInto('avatars').values(uploads).execute();
    await old.destroy();

    const store = db.databaseUrl ? await openPostgresStore(db.databaseUrl) : await openSqliteStore(file);
    cleanups.push(() => store.close());
    const rows = await store.db.selectFrom('avatars').selectAll().orderBy('user_id').execute();
    expect(
      rows.map((r) => ({ ...r, content: Buffer.from(r.content), uploaded_at: Number(r.uploaded_at) })),
    ).toEqual(uploads);
    for (const u of uploads) {
      const found = await store.db
        .selectFrom('avatars')
        .select('user_id')
        .where('sha256', '=', u.sha256)
        .execute();
      expect(found).toEqual([{ user_id: u.user_id }]);
    }
    // The rebuilt table is the one Concord writes to: a new upload and a replacement still work.
    await store.db
      .insertInto('avatars')
      .values({
        user_id: 4,
        content: Buffer.from('x'),
        format: 'png',
        sha256: 'a'.repeat(64),
        uploaded_at: 0,
      })
      .execute();
    await expect(
      store.db
        .insertInto('avatars')
        .values({
          user_id: 4,
          content: Buffer.from('y'),
          format: 'png',
          sha256: 'b'.repeat(64),
          uploaded_at: 0,
        })
        .execute(),
    ).rejects.toThrow(/unique|duplicate/i);
  });
});
