import { sql } from 'kysely';
import type { ChangeLog } from '../../src/changelog/log.js';

/** The multi-page test job: `pages` pages of `rows` rows each, written under the fence. */
export const PAGES_JOB = 'test.pages';

export interface PagesPayload {
  pages: number;
  rows: number;
  pageMs: number;
  /** Varies the data between jobs. */
  seed: number;
}

/** The rows one page writes: a pure function of the payload, so every attempt writes the same. */
export function pageRows(jobId: number, p: PagesPayload, page: number) {
  return Array.from({ length: p.rows }, (_, item) => ({
    jobId,
    page,
    item,
    value: `${p.seed}:${page}:${item}:${(p.seed * 31 + page * 7 + item) % 1009}`,
  }));
}

/** Creates the table the test job writes to. */
export async function createJobData(log: ChangeLog): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS job_data (
    job_id integer NOT NULL, page integer NOT NULL, item integer NOT NULL,
    value text NOT NULL, attempt integer NOT NULL, PRIMARY KEY (job_id, page, item))`.execute(log.store.db);
}

/** A job's data as (page, item, value) rows, in order: what an uninterrupted run would leave. */
export async function jobData(log: ChangeLog, jobId: number) {
  const { rows } = await sql<{ page: number; item: number; value: string; attempt: number }>`
    SELECT page, item, value, attempt FROM job_data WHERE job_id = ${jobId} ORDER BY page, item`.execute(
    log.store.db,
  );
  return rows;
}
