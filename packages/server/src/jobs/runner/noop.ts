import { setTimeout as sleep } from 'node:timers/promises';
import type { JobHandler } from '../job.js';

/** The kind of {@link noopJob}. */
export const NOOP_JOB = 'concord.noop';

/** Payload of {@link noopJob}: `pages` steps of `pageMs` each, each recording progress. */
export interface NoopPayload {
  pages?: number;
  pageMs?: number;
}

/**
 * A job that does nothing but wait and report progress: for measuring the runner (benchmarks) and
 * for checking from outside that a node runs jobs at all (restart tests, operators).
 */
export const noopJob: JobHandler<NoopPayload | null> = async (run) => {
  const pages = run.payload?.pages ?? 0;
  for (let page = 0; page < pages; page++) {
    if (run.payload?.pageMs) await sleep(run.payload.pageMs, undefined, { signal: run.signal });
    await run.progress(page + 1, pages);
  }
};
