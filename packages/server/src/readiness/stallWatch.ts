import type { Logger } from 'pino';
import type { ChangeLog } from '../changelog/log.js';
import type { LogTail } from '../changelog/tail.js';
import type { Readiness } from './readiness.js';

/**
 * After warm-up, keeps readiness honest: the node is unready while the database does not answer,
 * or while its cache consumer has not advanced for `stallMs` although the head is ahead of it (it
 * would serve ever older data); it is ready again once the database answers and the consumer has
 * caught up. Returns the function that stops watching.
 */
export function watchTail(opts: {
  tail: LogTail;
  log: ChangeLog;
  readiness: Readiness;
  stallMs: number;
  logger: Logger;
}): () => void {
  const { tail, log, readiness, stallMs } = opts;
  let behindSince: number | null = null;
  let behindAt = 0;
  let checking = false;
  const check = async () => {
    if (checking) return;
    checking = true;
    try {
      let head: number;
      try {
        head = await log.head();
      } catch (err) {
        readiness.unready(`database unavailable: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      const cursor = tail.cursor;
      const now = Date.now();
      if (head <= cursor) {
        behindSince = null;
        readiness.ready();
        return;
      }
      if (behindSince === null || cursor !== behindAt) {
        behindSince = now;
        behindAt = cursor;
      }
      if (now - behindSince > stallMs)
        readiness.unready(
          `change-log consumer '${tail.name}' stalled at ${cursor} for ${Math.round((now - behindSince) / 1000)} s while the head is at ${head}`,
        );
      else if (readiness.status().reason?.startsWith('database unavailable')) readiness.ready();
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), Math.min(1000, Math.max(50, stallMs / 3)));
  timer.unref();
  return () => clearInterval(timer);
}
