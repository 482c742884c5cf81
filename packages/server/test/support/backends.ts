import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The backends a contract suite runs against: SQLite always, PostgreSQL when reachable (always in CI). */
export type Backend = 'sqlite' | 'postgres';

export function backends(): Backend[] {
  return process.env.CONCORD_TEST_PG ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** The PostgreSQL server URL for tests (without a schema). */
export function pgServerUrl(): string {
  const url = process.env.CONCORD_TEST_PG;
  if (!url) throw new Error('PostgreSQL is not available for tests');
  return url;
}

/** A URL whose connections use `schema` as their search_path. */
export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

/** A fresh PostgreSQL schema; `drop` removes it with everything in it. */
export async function freshPgSchema(): Promise<{ url: string; schema: string; drop(): Promise<void> }> {
  const server = pgServerUrl();
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  return {
    url: withSearchPath(server, schema),
    schema,
    async drop() {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

/** A fresh temporary directory; `remove` deletes it. */
export function freshDir(prefix = 'concord-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Where a store for `backend` lives, and how to clean it up. */
export async function freshDatabase(
  backend: Backend,
): Promise<{ databaseUrl?: string; dataDir: string; cleanup(): Promise<void> }> {
  const tmp = freshDir();
  if (backend === 'sqlite') return { dataDir: tmp.dir, cleanup: async () => tmp.remove() };
  const pgSchema = await freshPgSchema();
  return {
    databaseUrl: pgSchema.url,
    dataDir: tmp.dir,
    cleanup: async () => {
      await pgSchema.drop();
      tmp.remove();
    },
  };
}
