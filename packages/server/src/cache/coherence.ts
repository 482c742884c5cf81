import type { Logger } from 'pino';
import type { ChangeLog } from '../changelog/log.js';
import { LogTail } from '../changelog/tail.js';
import type { CacheMetrics } from './cacheMetrics.js';
import type { TieredCache } from './tieredCache.js';

/** What keeps one node's cache coherent with the log. */
export interface Coherence {
  /** The node's cache consumer: its cursor is the position this node's reads reflect at least. */
  tail: LogTail;
  stop(): Promise<void>;
}

/**
 * Drives the cache from the change log, and only from it: a consumer applies each change's cache
 * keys in seq order from `from` (the warm-up position); changes this process commits are also
 * applied right after their commit, so the writing node never serves the value it replaced. When
 * the log was pruned past the cursor, L1 is flushed. While the doorbell cannot hear other nodes the
 * cache is bypassed, and it serves again only after the consumer has caught up.
 */
export function startCoherence(opts: {
  log: ChangeLog;
  cache: TieredCache;
  from: number;
  pollMs: number;
  metrics: CacheMetrics;
  logger: Logger;
  onLag?(lag: number, cursor: number, head: number): void;
}): Coherence {
  const { log, cache, metrics, logger } = opts;
  const tail = new LogTail(log, {
    name: 'cache',
    from: opts.from,
    pollMs: opts.pollMs,
    apply: (changes) => {
      const now = Date.now();
      for (const change of changes) {
        cache.invalidate(change.cacheKeys, change.seq);
        metrics.invalidationLag.observe(Math.max(0, now - change.createdAt) / 1000);
      }
    },
    reset: ({ oldest }) => {
      logger.warn({ oldest }, 'cache consumer fell behind the retained log; flushing L1');
      cache.flush(oldest - 1, 'pruned');
      return oldest - 1;
    },
    onLag: opts.onLag,
    onError: (err) => logger.warn({ err }, 'cache consumer failed; retrying on the next ring'),
  });
  const offCommit = log.onCommit((changes) => {
    for (const c of changes) cache.invalidate(c.cacheKeys, c.seq);
  });
  const offConnection = log.doorbell.onConnection((up) => {
    if (!up) {
      logger.warn('doorbell lost: reading through to the database until caught up');
      cache.suspend('doorbell');
      return;
    }
    const resumeWhenCaughtUp = (): void => {
      tail
        .catchUp()
        .then(() => {
          if (!log.doorbell.connected) return;
          cache.resume();
          logger.info({ cursor: tail.cursor }, 'doorbell back and caught up: serving from the cache again');
        })
        .catch((err: unknown) => {
          logger.warn({ err }, 'catching up after the doorbell returned failed; retrying');
          setTimeout(resumeWhenCaughtUp, 500).unref();
        });
    };
    resumeWhenCaughtUp();
  });
  tail.start();
  return {
    tail,
    async stop() {
      offCommit();
      offConnection();
      await tail.stop();
    },
  };
}
