import pg from 'pg';

/**
 * Runs once before the suite: says which backends the contract suites will use. PostgreSQL is
 * required in CI (CI=true) and optional on a developer machine without it.
 */
export default async function setup(): Promise<void> {
  const url = process.env.CONCORD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    process.env.CONCORD_TEST_PG = url;
  } catch (err) {
    if (process.env.CI)
      throw new Error(`PostgreSQL is required in CI but ${url} did not answer: ${String(err)}`);
    console.warn(`PostgreSQL at ${url} did not answer; PostgreSQL contract runs are skipped.`);
    process.env.CONCORD_TEST_PG = '';
  } finally {
    await client.end().catch(() => {});
  }
}
